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
@click.option(
    "--refine-steps",
    type=int,
    default=None,
    help="AttrOP step budget refining each identity vector through the teacher (0: off)",
)
@click.option(
    "--targeted-share",
    type=float,
    default=None,
    help="share of each identity's images AttrOP steers to --yaw / --quality (e.g. 0.2)",
)
@click.option("--yaw", type=float, default=None, help="target |yaw| in degrees of targeted images")
@click.option(
    "--quality", type=float, default=None, help="quality target of targeted images (MagFace scale)"
)
@click.option(
    "--target-steps", type=int, default=None, help="AttrOP step budget per targeted image"
)
@click.option(
    "--teacher",
    default=None,
    type=click.Path(),
    help="teacher FR weights or fr train folder for AttrOP (default: fr_teacher of --params)",
)
@click.option(
    "--teacher-backbone", default=None, help="backbone of --teacher without a backbone.json"
)
@click.option(
    "--attributes",
    "attributes_model",
    default=None,
    type=click.Path(dir_okay=False),
    help="toy attribute estimator (model.pt): fills the manifest's yaw/pitch/age/quality and "
    "measures AttrOP's targets (default: attribute_estimator of --params, if set)",
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
    refine_steps,
    targeted_share,
    yaw,
    quality,
    target_steps,
    teacher,
    teacher_backbone,
    attributes_model,
    quiet,
    params,
) -> None:
    """Generate HSFace shards into --out (resuming a stopped run) and print a JSON summary.

    With --refine-steps or --targeted-share, AttrOP runs through the teacher (--teacher);
    --yaw / --quality targets are measured with the attribute estimator (--attributes).
    """
    from vec2face.config import load_step_config
    from vec2face.hsface.models import generation_settings, load_generation_models
    from vec2face.hsface.writer import HSFaceConfig, generate_hsface

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
            "refine_steps": refine_steps,
            "targeted_share": targeted_share,
            "target_yaw": yaw,
            "target_quality": quality,
            "target_steps": target_steps,
        },
    )
    settings = generation_settings(
        cfg, params, estimator=attributes_model, teacher=teacher, teacher_backbone=teacher_backbone
    )
    echo_json(
        generate_hsface(
            cfg,
            generator,
            identities,
            out,
            shard=shard,
            progress=not quiet,
            **load_generation_models(settings),
        )
    )
