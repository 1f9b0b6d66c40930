"""How often would the blocking HSFace noise check fail on a healthy pipeline?

Reruns the HSFace writer of a finished main job with other seeds (the variation vectors and
the generator's masks; same generator, identity vectors and settings), reports each result
beside the real WebFace subset with the judge (the main job's ``dataset_reports`` settings),
and prints, per seed, both inter-class noise rates, the bootstrap margin, the check's bound
and its verdict -- with the allowance and the margin (``compare_rates``), with the margin
alone, and with neither (the bound the check used before: the subset's rate alone).

Usage::

    python bench/bench_noise_check_seeds.py --out outputs/tiny --params params.yaml \
        --seeds 1 2 3 4 5 --work /tmp/noise_seeds
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from vec2face.config import load_step_config, read_params
from vec2face.hsface.merge import find_shards, merge_shards
from vec2face.hsface.writer import HSFaceConfig, generate_hsface
from vec2face.reports.dataset_report import ReportConfig, write_report
from vec2face.reports.metrics import compare_rates


def _flags(report_dir: Path, name: str) -> pd.Series:
    return pd.read_parquet(report_dir / name / "identities.parquet")["same_person"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="outputs/tiny", help="the main job's output root")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--work", required=True, help="folder for the regenerated datasets")
    args = ap.parse_args()
    out, work = Path(args.out), Path(args.work)
    params = read_params(args.params)
    hsface = load_step_config(HSFaceConfig, "hsface", params)
    expectations = params.get("expectations") or {}
    level = float(expectations.get("hsface_inter_noise_level", 0.95))
    fixed = float(expectations.get("hsface_max_inter_noise_rate", 0.0))
    allowance = float(expectations.get("hsface_inter_noise_allowance", 0.0))
    report = load_step_config(
        ReportConfig,
        "dataset_reports",
        params,
        {
            "judge": str(out / "fr_judge"),
            "teacher": str(out / "fr_teacher"),
            "attribute_estimator": {"checkpoint": str(out / "attribute_estimator" / "model.pt")},
        },
    )
    rows = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        dataset = work / f"seed_{seed}"
        generate_hsface(
            hsface.model_copy(update={"seed": seed}),
            out / "fmae_generator" / "generator.pt",
            out / "identity_vectors" / "identities.npy",
            dataset / "hsface",
            progress=False,
        )
        merged = dataset / "merged"
        if not merged.exists():
            merge_shards(find_shards(dataset / "hsface"), merged)
        reports = dataset / "reports"
        heads = write_report(
            {"webface_subset": out / "webface_subset", "hsface": merged},
            report,
            reports,
            cache_dir=work / "cache",  # the subset's features are computed once
        )["datasets"]
        cmp = compare_rates(
            _flags(reports, "hsface"), _flags(reports, "webface_subset"), level, seed=0
        )
        bound = max(fixed, cmp.reference + allowance + cmp.margin)
        rows.append(
            {
                "seed": seed,
                "hsface_inter_noise": cmp.observed,
                "webface_inter_noise": cmp.reference,
                "margin": round(cmp.margin, 4),
                "bound": round(bound, 4),
                "verdict": "pass" if cmp.observed <= bound else "FAIL",
                "verdict_without_allowance": "pass"
                if cmp.observed <= max(fixed, cmp.reference + cmp.margin)
                else "FAIL",
                "verdict_without_margin": "pass"
                if cmp.observed <= max(fixed, cmp.reference)
                else "FAIL",
                "hsface_eer": heads["hsface"]["eer"],
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
