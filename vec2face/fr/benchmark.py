"""The benchmark table of several FR models on the same verification sets: what the
pipeline's ``benchmark_accuracies`` step and ``vec2face fr benchmark`` write.

Per model ``<name>.json`` (:func:`vec2face.fr.evaluate.evaluate_bins`' results), and for
all of them ``accuracies.parquet`` (a row per model and set) and ``table.md`` (a row per
model, the paper's layout). A model folder exported from the toy zoo carries the figures its
manifest recorded on the benchmark sets of a given config; on those very sets they are
reused rather than measured again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from vec2face.fr.evaluate import evaluate_bins, load_verification_sets, markdown_table
from vec2face.fr.extract import load_trained_backbone
from vec2face.toyfaces.benchmarks import BenchmarksConfig
from vec2face.tracking import NullTracker, Tracker
from vec2face.training.precision import Bf16Setting, resolve_bf16
from vec2face.utils.io import write_bytes_atomic

#: the file a zoo export holds its manifest in (vec2face.zoo.export writes it)
ZOO_MANIFEST = "zoo_manifest.json"

Results = dict[str, dict[str, float]]


def recorded_results(model_dir: Path, benchmarks: BenchmarksConfig | None) -> Results | None:
    """The accuracies a zoo model's manifest recorded, when it was measured on the sets
    ``benchmarks`` makes (the same seeded config): evaluating it again would give the same
    figures. None for any other model or sets."""
    path = Path(model_dir) / ZOO_MANIFEST
    if benchmarks is None or not path.is_file():
        return None
    meta = json.loads(path.read_text())
    measured_on = (meta["data"].get("heldout") or {}).get("benchmarks")
    if measured_on != benchmarks.model_dump(mode="json", exclude={"workers"}):
        return None
    return {name: {"accuracy": value} for name, value in meta["figures"].items()}


def accuracy_table(results: Mapping[str, Results]) -> pd.DataFrame:
    """One row per (model, set) with accuracy and its std (``average`` has no std)."""
    rows = [
        (model, name, float(r["accuracy"]), float(r.get("accuracy_std", float("nan"))))
        for model, sets in results.items()
        for name, r in sets.items()
    ]
    return pd.DataFrame(rows, columns=["model", "set", "accuracy", "accuracy_std"])


def combined_table(results: Mapping[str, Results]) -> str:
    """One Markdown table, a row per model (the paper's table layout)."""
    lines: list[str] = []
    for name, sets in results.items():
        rows = markdown_table(sets, name).splitlines()
        lines += rows if not lines else rows[2:]
    return "\n".join(lines)


def benchmark_models(
    models: Mapping[str, str | Path],
    bins: str | Path,
    out: str | Path,
    *,
    benchmarks: BenchmarksConfig | None = None,
    tracker: Tracker | None = None,
    batch_size: int = 128,
    bf16: Bf16Setting = "auto",
) -> dict[str, Any]:
    """Score each model on every ``.bin`` set of ``bins`` and write the tables into ``out``.

    Args:
        models: row name -> an FR model folder (``fr train`` output or zoo export).
        bins: folder of ``.bin`` sets (decoded once for every model).
        out: folder for ``<name>.json``, ``accuracies.parquet`` and ``table.md``.
        benchmarks: the config ``bins`` was made with; a zoo model measured on it keeps its
            recorded figures.
        tracker: receives ``<model>/<set>/accuracy`` and ``table.md``.
        batch_size: images per forward pass.
        bf16: bfloat16 autocast; ``auto``: where this CPU runs it faster than fp32 (without
            AMX the `tiny_patch4` models ran at 0.64x, bench/bench_precision.py).

    Returns:
        ``{"results": {name: results}, "recorded": [names whose figures were recorded]}``.
    """
    tracker = tracker or NullTracker()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sets = load_verification_sets(bins)
    results: dict[str, Results] = {}
    recorded = []
    for name, folder in models.items():
        found = recorded_results(Path(folder), benchmarks)
        if found is not None:
            recorded.append(name)
            results[name] = found
        else:
            model = load_trained_backbone(folder)
            device = next(model.parameters()).device
            results[name] = evaluate_bins(model, sets, batch_size=batch_size,
                                          autocast=resolve_bf16(bf16, device))
        text = json.dumps(results[name], indent=2) + "\n"
        write_bytes_atomic(out / f"{name}.json", text.encode())
    table = accuracy_table(results)
    table.to_parquet(out / "accuracies.parquet", index=False)
    write_bytes_atomic(out / "table.md", (combined_table(results) + "\n").encode())
    tracker.log_metrics({f"{m}/{s}/accuracy": a for m, s, a, _ in table.itertuples(index=False)})
    tracker.log_artifact(out / "table.md")
    return {"results": results, "recorded": recorded}


__all__ = [
    "accuracy_table",
    "benchmark_models",
    "combined_table",
    "recorded_results",
]
