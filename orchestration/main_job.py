"""The main job through Dagster, in-process: ``python -m orchestration.main_job``.

Materializes every asset (with its checks) of the pipeline into ``--out``, records the
outputs in the project's DVC repo, tracks them in MLflow, keeps the run history in
``DAGSTER_HOME`` (default ``<repo>/.dagster_home``) so ``dagster dev`` shows it, and
prints where everything is.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import dagster as dg

from orchestration.definitions import make_definitions
from orchestration.jobs import materialize_all

INSTANCE_YAML = Path(__file__).with_name("dagster.yaml")


def dagster_instance(repo_dir: Path) -> dg.DagsterInstance:
    """The persistent instance in ``DAGSTER_HOME`` (created with the project's dagster.yaml)."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(repo_dir / ".dagster_home"))).resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(INSTANCE_YAML, home / "dagster.yaml")
    return dg.DagsterInstance.get()


def run_main_job(params: str | Path, out: str | Path, repo_dir: str | Path = ".",
                 instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    """Materialize the whole chain in-process; returns Dagster's result (never raises on a
    failed step: the result says which steps and checks failed)."""
    repo_dir = Path(repo_dir).resolve()
    defs = make_definitions(str(Path(out).resolve()), str(Path(params).resolve()), str(repo_dir))
    dvc = defs.resources["dvc"]
    dvc.ensure_repo()
    job = defs.resolve_job_def(materialize_all.name)
    return job.execute_in_process(
        instance=instance if instance is not None else dagster_instance(repo_dir),
        tags={"vec2face/entry": "main_job"},
        raise_on_error=False,
    )


def summary_lines(result: dg.ExecuteInProcessResult, out: Path, params: Path, repo_dir: Path) -> list[str]:
    """A plain-text table of the materialized assets and the checks' outcomes."""
    lines = [f"{'asset':<18} {'dvc md5':<40} path"]
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        meta = mat.metadata
        md5 = meta["dvc_md5"].value if "dvc_md5" in meta else "-"
        path = meta["path"].value if "path" in meta else "-"
        lines.append(f"{mat.asset_key.to_user_string():<18} {md5:<40} {path}")
    for check in result.get_asset_check_evaluations():
        state = "passed" if check.passed else "FAILED"
        lines.append(f"check {check.asset_key.to_user_string()}:{check.check_name} {state}")
    root = out.resolve()
    lines += [
        "",
        f"outputs:   {root}",
        (f"Dagster UI: DAGSTER_HOME={os.environ.get('DAGSTER_HOME', '')} VEC2FACE_OUT={root} "
         f"VEC2FACE_PARAMS={params.resolve()} VEC2FACE_REPO={repo_dir.resolve()} "
         "dagster dev -m orchestration.definitions -h 127.0.0.1 -p 3000"),
        f"MLflow UI:  mlflow ui --backend-store-uri sqlite:///{root / 'mlflow.db'} -h 127.0.0.1 -p 5000",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.main_job", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="the profile's params.yaml")
    parser.add_argument("--out", default="outputs/tiny", help="output root")
    parser.add_argument("--repo", default=".", help="the project (where dvc.yaml lives)")
    args = parser.parse_args(argv)
    result = run_main_job(args.params, args.out, args.repo)
    print("\n".join(summary_lines(result, Path(args.out), Path(args.params), Path(args.repo))))
    if not result.success:
        print("main job FAILED; see the step errors above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
