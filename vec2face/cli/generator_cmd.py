"""``vec2face generator``: train the Vec2Face generator.

``vec2face generator train`` reads the ``generator`` section of params.yaml (flags win) and
prints a JSON summary. Under ``torchrun --nproc_per_node N -m vec2face.cli.main generator
train ...`` it trains with DDP; only rank 0 prints.
"""

from __future__ import annotations

import click

from vec2face.cli._common import echo_json, params_option


@click.group()
def generator() -> None:
    """Train the Vec2Face generator (feature vector -> face image)."""


@generator.command()
@click.option(
    "--data",
    "data",
    required=True,
    type=click.Path(exists=True),
    help="training-layout dataset (image, teacher feature, label records)",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="output folder (checkpoints/, samples/, generator.pt)",
)
@click.option("--resume", is_flag=True, help="continue from OUT/checkpoints/last.pt")
@click.option(
    "--profile",
    type=click.Choice(["tiny", "paper"]),
    default=None,
    help="preset of the recipe (paper: the official one; tiny: the CPU toy world)",
)
@click.option("--model", default=None, help="generator: tiny, vit_base_patch16, vit_large_patch16")
@click.option("--discriminator", default=None, help="discriminator: patchgan, patchgan_tiny")
@click.option("--epochs", type=int, default=None, help="training epochs")
@click.option("--batch-size", type=int, default=None, help="images per process per step")
@click.option("--accum-iter", type=int, default=None, help="gradient accumulation steps")
@click.option("--blr", type=float, default=None, help="base lr (lr = blr x effective batch / 112)")
@click.option("--lr", type=float, default=None, help="absolute lr (overrides --blr)")
@click.option("--warmup-epochs", type=float, default=None, help="warmup length in epochs")
@click.option("--disc-start", type=int, default=None, help="epoch at which the GAN terms switch on")
@click.option("--teacher", default=None, help="teacher backbone name (identity loss)")
@click.option(
    "--teacher-checkpoint",
    type=click.Path(),
    default=None,
    help="teacher weights (.pth) or a `vec2face fr train` output folder",
)
@click.option(
    "--lpips-weights",
    type=click.Path(dir_okay=False),
    default=None,
    help="torchvision ImageNet weights of the LPIPS trunk (VGG16, or AlexNet with loss.lpips_net alex)",
)
@click.option("--mask", type=click.Path(dir_okay=False), default=None, help=".npy record mask")
@click.option(
    "--amp/--no-amp", default=None, help="mixed precision (fp16+scaler on CUDA, bf16 on CPU)"
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="device")
@click.option("--seed", type=int, default=None, help="training seed")
@click.option("--num-workers", type=int, default=None, help="DataLoader workers per process")
@click.option("--quiet", is_flag=True, help="no progress bar and no tracker lines on stderr")
@params_option
def train(
    data,
    out,
    resume,
    profile,
    model,
    discriminator,
    epochs,
    batch_size,
    accum_iter,
    blr,
    lr,
    warmup_epochs,
    disc_start,
    teacher,
    teacher_checkpoint,
    lpips_weights,
    mask,
    amp,
    device,
    seed,
    num_workers,
    quiet,
    params,
) -> None:
    """Train a generator on DATA into OUT and print a JSON summary."""
    from vec2face.generator.train import fit, generator_train_config
    from vec2face.tracking import ConsoleTracker, NullTracker

    cfg = generator_train_config(
        profile,
        params,
        {
            "model": model,
            "discriminator": discriminator,
            "epochs": epochs,
            "batch_size": batch_size,
            "accum_iter": accum_iter,
            "blr": blr,
            "lr": lr,
            "warmup_epochs": warmup_epochs,
            "teacher": teacher,
            "teacher_checkpoint": teacher_checkpoint,
            "lpips_backbone_weights": lpips_weights,
            "mask": mask,
            "amp": amp,
            "device": device,
            "seed": seed,
            "num_workers": num_workers,
            "loss": None if disc_start is None else {"disc_start": disc_start},
        },
    )
    tracker = NullTracker() if quiet else ConsoleTracker()
    summary = fit(cfg, data, out, tracker=tracker, resume=resume, progress=not quiet)
    if summary["rank"] == 0:
        echo_json(summary)
