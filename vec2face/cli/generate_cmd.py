"""``vec2face generate``: write an HSFace dataset (or one shard of it) from identity vectors."""

from __future__ import annotations

import click

from vec2face.cli._common import echo_json, params_option


@click.command()
@click.option(
    "--generator",
    "generator",
    required=True,
    type=click.Path(dir_okay=False),
    help="generator checkpoint (.pth, ours or the official release)",
)
@click.option(
    "--identities",
    "identities",
    required=True,
    type=click.Path(dir_okay=False),
    help="(n, 512) .npy of identity vectors; the first N of the size are used",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="dataset folder (shards/, hsface.json)",
)
@click.option(
    "--size",
    type=click.Choice(["tiny", "hsface10k", "hsface20k", "hsface100k", "hsface200k", "hsface300k"]),
    default=None,
    help="named size (identity count)",
)
@click.option(
    "--num-identities", type=int, default=None, help="identity count overriding the size's"
)
@click.option("--images-per-identity", type=int, default=None, help="images per identity (50)")
@click.option("--shard-identities", type=int, default=None, help="identities per shard")
@click.option("--shard", type=int, default=None, help="generate only this shard")
@click.option("--seed", type=int, default=None, help="seed of the variation and masks")
@click.option("--batch-size", type=int, default=None, help="vectors per forward pass")
@click.option("--bf16/--no-bf16", default=None, help="bfloat16 autocast")
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:1 ...")
@click.option(
    "--export-imagefolder",
    is_flag=True,
    default=None,
    help="also write <identity>/<index>.jpg folders per shard",
)
@click.option("--quiet", is_flag=True, help="no progress bar")
@params_option
def generate(
    generator,
    identities,
    out,
    size,
    num_identities,
    images_per_identity,
    shard_identities,
    shard,
    seed,
    batch_size,
    bf16,
    device,
    export_imagefolder,
    quiet,
    params,
) -> None:
    """Generate HSFace shards into --out (resuming a stopped run) and print a JSON summary."""
    from vec2face.config import load_step_config
    from vec2face.generation.hsface import HSFaceConfig, generate_hsface

    cfg = load_step_config(
        HSFaceConfig,
        "hsface",
        params,
        {
            "size": size,
            "identities": num_identities,
            "images_per_identity": images_per_identity,
            "shard_identities": shard_identities,
            "seed": seed,
            "batch_size": batch_size,
            "bf16": bf16,
            "device": device,
            "export_imagefolder": export_imagefolder or None,
        },
    )
    echo_json(generate_hsface(cfg, generator, identities, out, shard=shard, progress=not quiet))
