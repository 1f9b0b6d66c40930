"""The main job through Dagster, in-process: ``python -m orchestration.main_job``.

Materializes the whole chain (every asset with its checks) into ``--out``, phase by
phase (:data:`orchestration.jobs.PHASES`: what the shards need, each HSFace shard, what
is made from the shards), records the outputs in the project's DVC repo, tracks them in
MLflow, keeps the run history in ``DAGSTER_HOME`` (default ``<repo>/.dagster_home``) so
``dagster dev`` shows it, and ends with the benchmark table, the dataset-report headline
figures and where everything is.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from assets_defs.steps import STEPS
from orchestration.definitions import make_definitions
from orchestration.jobs import MAIN_JOB_TAG, PHASES, generate_hsface_shards
from vec2face.utils.signals import restore_interrupt_signals

INSTANCE_YAML = Path(__file__).with_name("dagster.yaml")


def dagster_instance(repo_dir: Path) -> dg.DagsterInstance:
    """The persistent instance in ``DAGSTER_HOME`` (created with the project's dagster.yaml)."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(repo_dir / ".dagster_home"))).resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(INSTANCE_YAML, home / "dagster.yaml")
    return dg.DagsterInstance.get()


@dataclass
class ChainResult:
    """The runs of one pass over the chain, in order."""

    runs: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return bool(self.runs) and all(r.success for r in self.runs)

    def materializations(self) -> list[dg.AssetMaterialization]:
        return [
            e.step_materialization_data.materialization
            for r in self.runs
            for e in r.get_asset_materialization_events()
        ]

    def check_evaluations(self) -> list:
        return [c for r in self.runs for c in r.get_asset_check_evaluations()]


def run_main_job(
    params: str | Path,
    out: str | Path,
    repo_dir: str | Path = ".",
    instance: dg.DagsterInstance | None = None,
    log=print,
) -> ChainResult:
    """Materialize the whole chain in-process, phase by phase (a failed run stops the chain;
    never raises on a failed step: the runs say which steps and checks failed)."""
    repo_dir = Path(repo_dir).resolve()
    defs = make_definitions(str(Path(out).resolve()), str(Path(params).resolve()), str(repo_dir))
    defs.resources["dvc"].ensure_repo()
    instance = instance if instance is not None else dagster_instance(repo_dir)
    tags = dict([MAIN_JOB_TAG])
    chain = ChainResult()
    for job_def in PHASES:
        job = defs.resolve_job_def(job_def.name)
        keys = (
            job.partitions_def.get_partition_keys() if job_def is generate_hsface_shards else [None]
        )
        for key in keys:
            log(f"main job: {job_def.name}{f' shard {key}' if key else ''}")
            result = job.execute_in_process(
                instance=instance, tags=tags, partition_key=key, raise_on_error=False
            )
            chain.runs.append(result)
            if not result.success:
                return chain
    return chain


def step_times(result: ChainResult) -> list[tuple[str, float]]:
    """Wall seconds of every step that succeeded, in run order (a shard's step as
    ``hsface_dataset[<key>]``); an asset's checks run inside its step."""
    times: list[tuple[str, float]] = []
    for run in result.runs:
        partition = run.dagster_run.tags.get("dagster/partition")
        for event in run.get_step_success_events():
            name = event.step_key + (f"[{partition}]" if partition else "")
            times.append((name, event.event_specific_data.duration_ms / 1000))
    return times


def time_lines(result: ChainResult) -> list[str]:
    """The per-step time table (minutes and seconds) with the chain's total."""
    rows = step_times(result)
    total = sum(s for _, s in rows)
    lines = [f"{'step':<28} {'time':>8}"]
    lines += [f"{name:<28} {int(s // 60):>4}:{s % 60:04.1f}" for name, s in rows]
    lines.append(f"{'total (steps)':<28} {int(total // 60):>4}:{total % 60:04.1f}")
    return lines


def benchmark_lines(out: Path) -> list[str]:
    """The benchmark table (teacher, WebFace-trained, HSFace-trained) as Markdown rows."""
    table = out / STEPS["benchmark_accuracies"].output / "table.md"
    return table.read_text().splitlines() if table.is_file() else []


def report_lines(out: Path) -> list[str]:
    """The judge's headline figures of every reported dataset."""
    from assets_defs.evaluation import REPORTED
    from vec2face.reports.dataset_report import REPORT_FILE, read_headline

    lines = []
    folder = out / STEPS["dataset_reports"].output
    for name in REPORTED:
        if (folder / name / REPORT_FILE).is_file():
            head = read_headline(folder, name)
            figures = ", ".join(f"{k} {v:.4f}" for k, v in head.items() if isinstance(v, float))
            lines.append(f"{name:<18} {figures}")
    return lines


def summary_lines(result: ChainResult, out: Path, params: Path, repo_dir: Path) -> list[str]:
    """Materialized assets, checks, the benchmark table and report figures, and the UIs."""
    lines = [f"{'asset':<22} {'version (dvc md5)':<40} path"]
    for mat in result.materializations():
        meta = mat.metadata
        # An HSFace shard is versioned by its own LMDB's sha256 (its data version); DVC
        # records the whole dataset, on the materialization that completes its last shard.
        md5 = (
            meta["dvc_md5"].value
            if "dvc_md5" in meta
            else "sha256 " + mat.tags.get("dagster/data_version", "-")[:33]
        )
        path = meta["path"].value if "path" in meta else "-"
        name = mat.asset_key.to_user_string() + (f"[{mat.partition}]" if mat.partition else "")
        lines.append(f"{name:<22} {md5:<40} {path}")
    for check in result.check_evaluations():
        state = "passed" if check.passed else "FAILED"
        lines.append(f"check {check.asset_key.to_user_string()}:{check.check_name} {state}")
    root = out.resolve()
    lines += ["", "time per step (wall):", *time_lines(result)]
    lines += ["", "FR accuracy on the toy benchmarks:", *benchmark_lines(root)]
    lines += ["", "dataset reports (judge):", *report_lines(root)]
    lines += [
        "",
        f"outputs:   {root}",
        (
            f"Dagster UI: DAGSTER_HOME={os.environ.get('DAGSTER_HOME', '')} VEC2FACE_OUT={root} "
            f"VEC2FACE_PARAMS={params.resolve()} VEC2FACE_REPO={repo_dir.resolve()} "
            "dagster dev -m orchestration.definitions -h 127.0.0.1 -p 3000"
        ),
        f"MLflow UI:  mlflow ui --backend-store-uri sqlite:///{root / 'mlflow.db'} "
        "-h 127.0.0.1 -p 5000",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestration.main_job", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--params", default="params.yaml", help="the profile's params.yaml")
    parser.add_argument("--out", default="outputs/tiny", help="output root")
    parser.add_argument("--repo", default=".", help="the project (where dvc.yaml lives)")
    args = parser.parse_args(argv)
    # started in the background (nohup, cron, `cmd &` in a script), `kill PID` must still
    # stop the job: Dagster would give SIGTERM the SIGINT such a shell ignores
    restore_interrupt_signals()
    start = time.perf_counter()
    result = run_main_job(args.params, args.out, args.repo)
    wall = time.perf_counter() - start
    print("\n".join(summary_lines(result, Path(args.out), Path(args.params), Path(args.repo))))
    print(f"main job wall time: {int(wall // 60)}:{wall % 60:04.1f} (Dagster and DVC included)")
    if not result.success:
        print("main job FAILED; see the step errors above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
