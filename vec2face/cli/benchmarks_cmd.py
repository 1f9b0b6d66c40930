"""``vec2face benchmarks``: the toy verification sets as insightface ``.bin`` files."""

from __future__ import annotations

import click

from vec2face.cli._common import echo_json, params_option


@click.group()
def benchmarks() -> None:
    """Verification benchmark sets."""


@benchmarks.command("make")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output folder for the .bin files")
@click.option("--pairs", type=int, default=None, help="pairs per set (default 6000, half genuine)")
@click.option("--identities", type=int, default=None, help="identities per benchmark pool")
@click.option("--seed", type=int, default=None, help="world seed")
@click.option("--set", "sets", multiple=True, help="only these sets (repeatable)")
@click.option("--workers", type=int, default=None, help="worker processes (0: all cores)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@params_option
def make(out, pairs, identities, seed, sets, workers, quiet, params) -> None:
    """Write lfw.bin, cfp_fp.bin, agedb_30.bin, calfw.bin and cplfw.bin into OUT."""
    from vec2face.config import load_step_config
    from vec2face.toyfaces.benchmarks import BenchmarksConfig, make_benchmarks

    cfg = load_step_config(BenchmarksConfig, "benchmarks", params, dict(
        pairs=pairs, identities=identities, seed=seed, sets=tuple(sets) or None, workers=workers))
    echo_json(make_benchmarks(cfg, out, progress=not quiet))
