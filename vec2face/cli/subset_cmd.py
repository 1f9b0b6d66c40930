"""``vec2face subset``: the WebFace subset step (the first pipeline step)."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("src", type=click.Path(path_type=str))
@click.option("--out", "out", type=click.Path(path_type=str), required=True,
              help="Output directory (train.lmdb, manifest.parquet, subset_report.json).")
@click.option("--identities", type=int, default=None, help="Number of identities to select.")
@click.option("--min-images", type=int, default=None,
              help="Minimum readable images for an identity to be eligible.")
@click.option("--max-images", type=int, default=None, help="Keep at most this many per identity.")
@click.option("--seed", type=int, default=None, help="Seed of the selection.")
@click.option("--write-mask/--no-write-mask", default=None,
              help="Also write mask.npy (indices of the chosen images in the source).")
@click.option("--params", "params", type=click.Path(path_type=str), default=None,
              help="params.yaml whose 'subset' section gives defaults; flags win.")
@click.option("--quiet", is_flag=True, help="Do not print the summary.")
def subset(src: str, out: str, identities: int | None, min_images: int | None,
           max_images: int | None, seed: int | None, write_mask: bool | None,
           params: str | None, quiet: bool) -> None:
    """Select identities with enough readable images from SRC and write them to --out."""
    from vec2face.config import load_step_config
    from vec2face.data.subset import SubsetConfig, make_subset

    config = load_step_config(
        SubsetConfig, "subset", params,
        {"identities": identities, "min_images": min_images, "max_images": max_images,
         "seed": seed, "write_mask": write_mask},
    )
    report = make_subset(src, out, config)
    if not quiet:
        summary = {k: v for k, v in report.items() if k != "skipped_files"}
        click.echo(json.dumps(summary, indent=2))
