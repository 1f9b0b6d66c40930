"""``vec2face toyfaces``: render a pool of the procedural face world."""

from __future__ import annotations

import click

from vec2face.cli._common import echo_json, params_option


@click.command()
@click.option("--pool", default=None, help="identity pool: teacher, judge, webface, pca, lfw, cfp_fp, agedb_30, calfw, cplfw")
@click.option("--identities", type=int, default=None, help="number of identities")
@click.option("--images", type=int, default=None, help="images per identity")
@click.option("--seed", type=int, default=None, help="world seed")
@click.option("--workers", type=int, default=None, help="worker processes (0: all cores)")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output folder")
@click.option("--quiet", is_flag=True, help="no progress bar")
@params_option
def toyfaces(pool, identities, images, seed, workers, out, quiet, params) -> None:
    """Render identities x images of a toy pool into OUT (image folders + manifest)."""
    from vec2face.config import load_step_config
    from vec2face.toyfaces.world import ToyfacesConfig, make_toyfaces

    cfg = load_step_config(ToyfacesConfig, "toyfaces", params, dict(
        pool=pool, identities=identities, images=images, seed=seed, workers=workers))
    echo_json(make_toyfaces(cfg, out, progress=not quiet))
