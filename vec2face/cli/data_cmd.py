"""``vec2face data``: inspect and convert datasets."""

from __future__ import annotations

import json

import click


@click.group()
def data() -> None:
    """Inspect and convert face datasets (image folders, LMDB, RecordIO)."""


@data.command()
@click.argument("path", type=click.Path(path_type=str))
@click.option("--mask", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Optional .npy mask of record indices to apply.")
@click.option("--deep", is_flag=True,
              help="Decode every image and count the unreadable ones (slower: reads it all).")
def inspect(path: str, mask: str | None, deep: bool) -> None:
    """Print a JSON summary of the dataset (or verification .bin) at PATH."""
    from vec2face.data import inspect_dataset

    click.echo(json.dumps(inspect_dataset(path, mask=mask, deep=deep), indent=2))


@data.command()
@click.argument("src", type=click.Path(path_type=str))
@click.argument("dst", type=click.Path(path_type=str))
@click.option("--to", "to", type=click.Choice(["imagefolder", "lmdb", "recordio"]), required=True,
              help="Target format.")
@click.option("--layout", type=click.Choice(["fr", "training"]), default="fr", show_default=True,
              help="LMDB record layout; 'training' needs teacher features in the source.")
@click.option("--mask", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Optional .npy mask of source record indices to convert.")
@click.option("--overwrite", is_flag=True,
              help="Replace DST when it holds an earlier conversion's output (anything else "
                   "is refused, as is a DST that is, holds or lies inside SRC).")
@click.option("--show-skipped", is_flag=True, help="List every skipped record in the summary.")
def convert(src: str, dst: str, to: str, layout: str, mask: str | None, overwrite: bool,
            show_skipped: bool) -> None:
    """Copy the dataset SRC to DST in another format (image bytes are not re-encoded)."""
    from vec2face.data import convert_dataset

    summary = convert_dataset(src, dst, to=to, layout=layout, mask=mask, overwrite=overwrite)
    if not show_skipped:
        summary["skipped_files"] = summary["skipped_files"][:10]
    click.echo(json.dumps(summary, indent=2))


@data.command()
@click.argument("shards_dir", type=click.Path(path_type=str))
@click.argument("out", type=click.Path(path_type=str))
@click.option("--prefix-masks", default="", show_default=False,
              help="comma-separated identity counts P; writes OUT/mask_<P>_ids.npy for each "
                   "(e.g. 100000,200000 for HSFace100K/200K over 300K).")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def merge(shards_dir: str, out: str, prefix_masks: str, overwrite: bool) -> None:
    """Join the HSFace shards under SHARDS_DIR into one LMDB dataset at OUT."""
    from vec2face.hsface.merge import find_shards, merge_shards

    try:
        sizes = [int(p) for p in prefix_masks.split(",") if p.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {prefix_masks!r}",
                                 param_hint="--prefix-masks") from None
    click.echo(json.dumps(merge_shards(find_shards(shards_dir), out, sizes, overwrite=overwrite),
                          indent=2))
