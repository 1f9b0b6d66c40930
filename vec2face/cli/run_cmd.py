"""``vec2face run``: the embedded default's main job, step after step.

It renders the toy world's pools, writes the benchmark ``.bin`` files and cuts the
WebFace-style subset, reading every step's settings from ``params.yaml``. Finished
steps are skipped on a rerun with the same settings.
"""

from __future__ import annotations

from pathlib import Path

import click

from vec2face.cli._common import echo_json


@click.command()
@click.option("--params", "params", type=click.Path(dir_okay=False, exists=True), default="params.yaml",
              show_default=True, help="the profile's params.yaml")
@click.option("--out", type=click.Path(file_okay=False), default="outputs/tiny", show_default=True,
              help="output root")
@click.option("--quiet", is_flag=True, help="no progress bars")
def run(params, out, quiet) -> None:
    """Run the embedded default pipeline (toy world, benchmarks, subset) into OUT."""
    from vec2face.config import load_step_config, read_params
    from vec2face.data import SubsetConfig, make_subset
    from vec2face.toyfaces.benchmarks import BenchmarksConfig, make_benchmarks
    from vec2face.toyfaces.world import ToyfacesConfig, make_toyfaces

    root = Path(out)
    data = read_params(params)
    world = data.get("world") or {}
    result: dict = {"world": {}}
    for pool, sizes in (world.get("pools") or {}).items():
        cfg = load_step_config(ToyfacesConfig, "toyfaces", None,
                               dict(sizes, pool=pool, seed=world.get("seed", 0)))
        result["world"][pool] = make_toyfaces(cfg, root / "world" / pool, progress=not quiet)["path"]
    bcfg = load_step_config(BenchmarksConfig, "benchmarks", data)
    result["benchmarks"] = {k: v["path"] for k, v in
                            make_benchmarks(bcfg, root / "benchmarks", progress=not quiet).items()}
    scfg = load_step_config(SubsetConfig, "subset", data)
    report = make_subset(root / "world" / "webface", root / "webface_subset", scfg)
    result["webface_subset"] = {"path": str(root / "webface_subset"),
                                **{k: report[k] for k in ("selected", "images_written") if k in report}}
    echo_json(result)
