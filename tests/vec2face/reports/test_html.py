"""Self-contained HTML report pages."""

from __future__ import annotations

import base64
import re

import pytest

from vec2face.reports.html import (
    dataset_page,
    embed_png,
    format_value,
    html_table,
    index_page,
)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)
MODEL = {"backbone": "r100", "checkpoint": "/w/judge <b>.pth", "sha256": "ab" * 32}
HEADLINE = {
    "images": 12345,
    "identities": 50,
    "intra_class_outlier_rate": 0.0125,
    "inter_class_noise_rate": 0.5,
    "eer": 0.03,
    "overlap": 0.1,
    "leakage_rate": None,
}


def _summary(**extra):
    summary = {
        "path": "/data/hsface",
        "format": "lmdb",
        "sample": {"sampled": False, "seed": 0, "images": 12345, "images_total": 12345,
                   "identities": 50, "identities_total": 50},
        "headline": HEADLINE,
        "judge": {"model": MODEL, "figures": {"intra_class": {"outlier_rate": 0.0125},
                                               "leakage": None}},
        "teacher": None,
        "exclusions": {"notes": ["2 identities with a single image: excluded"]},
        "attributes": None,
    }
    summary.update(extra)
    return summary


def _external(page: str) -> list[str]:
    return [
        ref for ref in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
        if not ref.startswith("data:")
    ]


def test_format_value_shows_rates_counts_and_missing_figures():
    assert format_value(0.0125, "pct") == "1.25%"
    assert format_value(12345, "int") == "12,345"
    assert format_value(None, "pct") == "–"
    assert format_value(True) == "yes"
    assert format_value(0.123456) == "0.1235"


def test_table_escapes_cells_and_refuses_ragged_rows():
    table = html_table(["a", "b"], [["<script>", "x&y"]])
    assert "&lt;script&gt;" in table and "x&amp;y" in table and "<script>" not in table
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        html_table(["a", "b", "c"], [[1, 2]])


def test_embed_png_inlines_the_bytes(tmp_path):
    (tmp_path / "f.png").write_bytes(PNG)
    fig = embed_png(tmp_path / "f.png", "a 'caption'")
    data = re.search(r'src="data:image/png;base64,([^"]+)"', fig).group(1)
    assert base64.b64decode(data) == PNG
    assert "a &#x27;caption&#x27;" in fig


def test_dataset_page_is_self_contained_and_names_the_judge(tmp_path):
    (tmp_path / "f.png").write_bytes(PNG)
    page = dataset_page("hsface", _summary(), {"Intra-class": tmp_path / "f.png"}, ["report.json"])
    assert page.startswith("<!DOCTYPE html>")
    assert _external(page) == []
    assert "judge" in page and "/w/judge &lt;b&gt;.pth" in page and "r100" in page
    assert "1.25%" in page and "12,345" in page and "single image" in page
    assert "<td>teacher</td>" not in page and "<b>teacher" not in page


def test_index_page_puts_the_teacher_beside_the_judge(tmp_path):
    (tmp_path / "c.png").write_bytes(PNG)
    teacher = {**MODEL, "checkpoint": "/w/teacher.pth"}
    page = index_page(
        {"webface": HEADLINE, "hsface": {**HEADLINE, "eer": 0.2}},
        MODEL,
        teacher,
        {"Inter-class": tmp_path / "c.png"},
        {"webface": {**HEADLINE, "eer": 0.07}, "hsface": HEADLINE},
    )
    assert _external(page) == []
    assert page.index("Headline figures (judge)") < page.index("Headline figures (teacher")
    assert "20.00%" in page and "7.00%" in page and "/w/teacher.pth" in page
    assert page.count("data:image/png;base64,") == 1
