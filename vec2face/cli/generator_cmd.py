"""``vec2face generator``: train the Vec2Face generator.

``vec2face generator train`` reads the ``generator`` section of params.yaml (flags win) and
prints a JSON summary. Under ``torchrun --nproc_per_node N -m vec2face.cli.main generator
train ...`` it trains with DDP; only rank 0 prints.

The long run (docs/long_run.md): ``vec2face generator train --profile toy-long
--max-minutes M --resume DIR`` trains one chunk in the run folder DIR (preparing the toy
data there first when it is missing), pauses cleanly after M minutes, and scores the chunk
into DIR/curve.csv, DIR/curve.png and DIR/recon/. The bare ``--resume`` flag with ``--out``
keeps its meaning (continue OUT/checkpoints/last.pt).
"""

from __future__ import annotations

from pathlib import Path

import click

from vec2face.cli._common import echo_json, params_option
from vec2face.presets import PRESETS

#: the preset of a run folder's chunk when ``--profile`` is not given
LONG_RUN_PROFILE = "toy-long"


@click.group()
def generator() -> None:
    """Train the Vec2Face generator (feature vector -> face image)."""


@generator.command()
@click.option(
    "--data",
    "data",
    default=None,
    type=click.Path(exists=True),
    help="training-layout dataset (image, teacher feature, label records); without it, "
    "--resume DIR prepares the toy data in DIR",
)
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help="output folder (checkpoints/, samples/, generator.pt)",
)
@click.option(
    "--resume",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[DIR]",
    help="bare: continue from OUT/checkpoints/last.pt; with DIR: the run folder of a long "
    "run (continue DIR/checkpoints/last.pt; without --data, prepare the toy data in DIR, "
    "and score each chunk into DIR/curve.csv, curve.png, recon/)",
)
@click.option(
    "--max-minutes",
    type=float,
    default=None,
    help="pause cleanly at the first step boundary after this many minutes, leaving a "
    "checkpoint the next --resume continues exactly",
)
@click.option(
    "--score-pairs",
    type=int,
    default=None,
    help="toy-LFW pairs each chunk of a run folder is scored on (default 200)",
)
@click.option(
    "--zoo-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="zoo whose teacher and judge a run folder uses (default: $VEC2FACE_ZOO, else the "
    "package's)",
)
@click.option(
    "--profile",
    type=click.Choice(PRESETS),
    default=None,
    help="preset of the recipe (paper: the official one; tiny: the CPU toy world; toy-long: "
    "tiny over a long chunked run, the default of a run folder)",
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
    max_minutes,
    score_pairs,
    zoo_dir,
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
    """Train a generator on DATA into OUT (or a long run's chunk in --resume DIR) and print
    a JSON summary."""
    from vec2face.errors import ConfigError
    from vec2face.generator.train import ChunkBudget, fit, generator_train_config
    from vec2face.tracking import ConsoleTracker, NullTracker

    overrides = {
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
    }
    run_dir = resume or None  # --resume DIR (the bare flag gives "")
    if run_dir is not None and out is not None and Path(out) != Path(run_dir):
        raise ConfigError(f"--resume {run_dir} and --out {out} name two folders: give the "
                          "run folder once (--resume DIR, or --out DIR --resume)")
    out = out or run_dir
    if out is None:
        raise ConfigError("--out is required (or --resume DIR, a long run's folder)")
    budget = None if max_minutes is None else ChunkBudget(minutes=max_minutes)
    tracker = NullTracker() if quiet else ConsoleTracker()
    if data is None and run_dir is not None:
        from vec2face.config import read_params
        from vec2face.generator.long_run import run_folder_chunk
        from vec2face.zoo.build import GENERATOR_PAIRS

        # params.yaml sizes the toy data only: its generator section is the chain's
        # fine-tune, not the long run's recipe (the preset and the flags are)
        summary = run_folder_chunk(
            run_dir, read_params(Path(params or "params.yaml")), profile or LONG_RUN_PROFILE,
            overrides, budget=budget, pairs=score_pairs or GENERATOR_PAIRS, zoo=zoo_dir,
            tracker=tracker, progress=not quiet,
        )
    elif data is None:
        raise ConfigError("--data is required (or --resume DIR, a long run's folder, "
                          "to prepare the toy data there)")
    else:
        cfg = generator_train_config(profile, params, overrides)
        summary = fit(cfg, data, out, tracker=tracker, resume=resume is not None,
                      progress=not quiet, budget=budget)
    if summary["rank"] == 0:
        echo_json(summary)
        if summary.get("paused"):
            click.echo(
                f"paused at step {summary['global_step']} (epoch {summary['epoch']}, step "
                f"{summary['step_in_epoch']} of it) after {summary['chunk_steps']} steps; "
                f"continue with --resume {out}",
                err=True,
            )
