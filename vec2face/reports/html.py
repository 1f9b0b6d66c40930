"""Self-contained HTML pages of dataset reports: one per dataset and a comparison index.

Pages are plain strings built from JSON-ready dicts (no metric code here): every figure
is embedded as a base64 PNG and the style sheet is inline, so a page opened on its own,
mailed or archived, shows everything. No page refers to another file (no external
``src`` or ``href``), and every value is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "HEADLINE_COLUMNS",
    "dataset_page",
    "embed_png",
    "format_value",
    "html_table",
    "index_page",
    "render_page",
]

# (key in a headline dict, column title, how to show it)
HEADLINE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("images", "images", "int"),
    ("identities", "identities", "int"),
    ("intra_class_outlier_rate", "intra-class outlier rate", "pct"),
    ("inter_class_noise_rate", "inter-class noise rate", "pct"),
    ("eer", "EER", "pct"),
    ("overlap", "genuine/impostor overlap", "pct"),
    ("leakage_rate", "identity leakage rate", "pct"),
)

_RATE_KEYS = {"outlier_rate", "rate", "eer", "overlap"}

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #1d1d1f; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .92rem; }
th, td { border: 1px solid #d0d0d0; padding: .3rem .6rem; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
.meta { color: #555; font-size: .92rem; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .4rem .8rem; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; border: 1px solid #e3e3e3; }
figcaption { color: #555; font-size: .9rem; }
code { background: #f5f5f5; padding: 0 .2rem; }
"""


def format_value(value: Any, kind: str = "auto") -> str:
    """Readable text of one table value.

    Args:
        value: a number, string, bool or None.
        kind: ``"pct"`` (a rate in [0, 1] shown as a percentage), ``"int"`` (thousands
            separators), ``"float"`` (4 significant digits) or ``"auto"``.

    Returns:
        The text; ``None`` becomes an en dash (a figure that does not apply, e.g. leakage
        without a reference set).
    """
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if kind == "pct":
        return f"{float(value):.2%}"
    if kind == "int":
        return f"{int(value):,}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def html_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table; cells are escaped (pre-format numbers with :func:`format_value`).

    Args:
        columns: header titles.
        rows: one sequence of cell values per row, as long as ``columns``.

    Raises:
        ValueError: a row whose length differs from the header's.
    """
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"table row has {len(row)} cells for {len(columns)} columns: {row!r}")
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def embed_png(path: str | os.PathLike, caption: str) -> str:
    """A ``<figure>`` with the PNG at ``path`` inlined as a base64 data URI.

    Raises:
        FileNotFoundError: no such file.
    """
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    alt = html.escape(caption, quote=True)
    return (
        f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def render_page(title: str, sections: Sequence[str]) -> str:
    """A complete HTML document with the inline style sheet.

    Args:
        title: page title (escaped).
        sections: body fragments, already HTML.
    """
    body = "\n".join(sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _headline_cells(headline: Mapping[str, Any]) -> list[str]:
    return [format_value(headline.get(key), kind) for key, _, kind in HEADLINE_COLUMNS]


def _model_line(role: str, model: Mapping[str, Any]) -> str:
    return (
        f"<p class=\"meta\"><b>{html.escape(role)}:</b> backbone "
        f"<code>{html.escape(str(model['backbone']))}</code>, checkpoint "
        f"<code>{html.escape(str(model['checkpoint']))}</code> "
        f"(sha256 <code>{html.escape(str(model['sha256'])[:16])}</code>)</p>"
    )


def _figures(figures: Mapping[str, str | os.PathLike]) -> str:
    return "\n".join(embed_png(path, caption) for caption, path in figures.items())


def dataset_page(
    name: str,
    summary: Mapping[str, Any],
    figures: Mapping[str, str | os.PathLike],
    files: Sequence[str] = (),
) -> str:
    """The report page of one dataset.

    Args:
        name: the dataset's report name.
        summary: the dataset's ``report.json`` content (see
            :meth:`vec2face.reports.dataset_report.DatasetReport.summary`).
        figures: caption -> PNG path, embedded in order.
        files: names of the other files written beside the page (listed as text).

    Returns:
        The HTML document.
    """
    judge = summary["judge"]
    teacher = summary.get("teacher")
    sections = [
        f"<h1>Dataset report: {html.escape(name)}</h1>",
        f"<p class=\"meta\">{html.escape(str(summary['path']))} "
        f"({html.escape(str(summary['format']))})</p>",
        "<p>Judged by the independent FR model (the judge), never the generator's teacher.</p>",
        _model_line("judge", judge["model"]),
    ]
    if teacher is not None:
        sections.append(_model_line("teacher (figures shown beside the judge's)", teacher["model"]))
    columns = ["model"] + [title for _, title, _ in HEADLINE_COLUMNS]
    rows = [["judge"] + _headline_cells(summary["headline"])]
    if teacher is not None:
        rows.append(["teacher"] + _headline_cells(summary["teacher_headline"]))
    sections += ["<h2>Headline figures</h2>", html_table(columns, rows)]

    sample = summary["sample"]
    if sample["sampled"]:
        sections.append(
            f"<p class=\"note\">Seeded sample of whole identities: {sample['images']:,} of "
            f"{sample['images_total']:,} images, {sample['identities']:,} of "
            f"{sample['identities_total']:,} identities (seed {sample['seed']}).</p>"
        )
    notes = summary.get("exclusions", {}).get("notes", [])
    if notes:
        sections.append(
            "<h2>Exclusions</h2><ul>"
            + "".join(f"<li>{html.escape(note)}</li>" for note in notes)
            + "</ul>"
        )

    detail_rows = []
    for role, block in (("judge", judge), ("teacher", teacher)):
        if block is None:
            continue
        for metric, values in block["figures"].items():
            if values is None:
                continue
            for key, value in values.items():
                kind = "pct" if key in _RATE_KEYS else "auto"
                detail_rows.append([role, metric, key, format_value(value, kind)])
    sections += [
        "<h2>Every figure</h2>",
        html_table(["model", "metric", "figure", "value"], detail_rows),
    ]

    attributes = summary.get("attributes")
    if attributes:
        attr_rows = [
            [attr, format_value(s["mean"]), format_value(s["std"]), format_value(s["median"]),
             format_value(s["n"], "int"), format_value(s["n_non_finite"], "int")]
            for attr, s in attributes["statistics"].items()
        ]
        sections += [
            "<h2>Attributes</h2>",
            f"<p class=\"meta\">estimated by {html.escape(str(attributes['estimator']))}</p>",
            html_table(["attribute", "mean", "std", "median", "images", "non-finite"], attr_rows),
        ]
    sections += ["<h2>Figures</h2>", _figures(figures)]
    if files:
        sections.append(
            "<p class=\"meta\">Files beside this page: "
            + ", ".join(f"<code>{html.escape(f)}</code>" for f in files)
            + "</p>"
        )
    return render_page(f"Dataset report: {name}", sections)


def index_page(
    headlines: Mapping[str, Mapping[str, Any]],
    judge: Mapping[str, Any],
    teacher: Mapping[str, Any] | None,
    figures: Mapping[str, str | os.PathLike],
    teacher_headlines: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The comparison page of several datasets.

    Args:
        headlines: dataset name -> the judge's headline dict.
        judge: the judge's model description (backbone, checkpoint, sha256).
        teacher: the teacher's description, or None.
        figures: caption -> comparison PNG path, embedded in order.
        teacher_headlines: dataset name -> the teacher's headline dict (shown beside).

    Returns:
        The HTML document.
    """
    columns = ["dataset"] + [title for _, title, _ in HEADLINE_COLUMNS]
    sections = [
        "<h1>Dataset comparison</h1>",
        "<p>All datasets judged by the same independent FR model (the judge).</p>",
        _model_line("judge", judge),
        "<h2>Headline figures (judge)</h2>",
        html_table(columns, [[name] + _headline_cells(h) for name, h in headlines.items()]),
    ]
    if teacher is not None and teacher_headlines:
        sections += [
            _model_line("teacher", teacher),
            "<h2>Headline figures (teacher, beside the judge's)</h2>",
            html_table(
                columns, [[name] + _headline_cells(h) for name, h in teacher_headlines.items()]
            ),
        ]
    if figures:
        sections += ["<h2>Figures (same axes)</h2>", _figures(figures)]
    sections.append(
        "<p class=\"meta\">Per-dataset pages: "
        + ", ".join(f"<code>{html.escape(name)}/report.html</code>" for name in headlines)
        + "</p>"
    )
    return render_page("Dataset comparison", sections)
