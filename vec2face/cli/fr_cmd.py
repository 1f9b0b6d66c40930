"""``vec2face fr``: train, extract features with, and evaluate face-recognition models."""

from __future__ import annotations

import click

from vec2face.cli._common import echo_json, params_option
from vec2face.presets import PRESETS


@click.group()
def fr() -> None:
    """Face-recognition models: train, extract, evaluate."""


@fr.command()
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=click.Path(exists=True),
    help="training dataset (repeat to concatenate several with disjoint labels)",
)
@click.option(
    "--mask",
    "masks",
    multiple=True,
    type=click.Path(dir_okay=False),
    help=".npy record mask per --data (repeat in the same order)",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output folder")
@click.option(
    "--bins",
    type=click.Path(file_okay=False),
    default=None,
    help="folder of verification .bin sets for per-epoch validation",
)
@click.option("--resume", is_flag=True, help="continue from OUT/checkpoints/last.pt")
@click.option(
    "--profile",
    type=click.Choice(PRESETS),
    default=None,
    help="preset of the recipe (paper: Table 5; tiny: CPU minutes)",
)
@click.option(
    "--section",
    default="fr_train",
    show_default=True,
    help="params.yaml section (e.g. fr_teacher_train, fr_judge_train)",
)
@click.option("--backbone", default=None, help="registered backbone")
@click.option("--epochs", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option("--num-workers", type=int, default=None)
@click.option("--threads", type=int, default=None, help="CPU threads per process")
@click.option("--amp/--no-amp", default=None, help="mixed precision (bf16 on CPU, fp16 on CUDA)")
@click.option("--quiet", is_flag=True, help="no per-epoch lines on stderr")
@params_option
def train(
    data,
    masks,
    out,
    bins,
    resume,
    profile,
    section,
    backbone,
    epochs,
    batch_size,
    lr,
    seed,
    device,
    num_workers,
    threads,
    amp,
    quiet,
    params,
) -> None:
    """Train an FR model on DATA; writes OUT/backbone.pt + backbone.json and checkpoints.

    Runs as DDP under torchrun (gloo on CPU, nccl on CUDA).
    """
    from vec2face.fr.profiles import fr_train_config
    from vec2face.fr.train import fit, train_paths
    from vec2face.tracking import ConsoleTracker, NullTracker

    if masks and len(masks) != len(data):
        raise click.BadParameter(f"{len(masks)} --mask for {len(data)} --data", param_hint="--mask")
    cfg = fr_train_config(
        profile,
        params,
        dict(
            backbone=backbone,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            device=device,
            num_workers=num_workers,
            threads=threads,
            amp=amp,
        ),
        section=section,
    )
    tracker = NullTracker() if quiet else ConsoleTracker()
    result = fit(cfg, train_paths(data, out, bins, masks or None), tracker, resume=resume)
    if "backbone" in result:
        result.pop("history", None)
        echo_json(result)


def _model(model: str | None, backbone: str | None, role: str | None, params):
    from vec2face.fr.extract import load_trained_backbone
    from vec2face.fr.profiles import fr_model_config, load_fr_model

    if role is not None:
        cfg = fr_model_config(role, params, dict(checkpoint=model, backbone=backbone))
        return load_fr_model(cfg, config_key=f"fr_{role}.checkpoint")
    if model is None:
        raise click.UsageError("give --model (weights file or fr train folder) or --role")
    return load_trained_backbone(model, backbone)


_model_options = [
    click.option(
        "--model",
        default=None,
        type=click.Path(),
        help="weights (.pt/.pth state dict) or a `fr train` output folder",
    ),
    click.option(
        "--backbone", default=None, help="registered backbone (read from backbone.json if present)"
    ),
    click.option(
        "--role",
        type=click.Choice(["teacher", "judge"]),
        default=None,
        help="use the fr_teacher / fr_judge section of --params",
    ),
    click.option("--batch-size", type=int, default=128, show_default=True),
    click.option("--device", default="cpu", show_default=True),
    click.option("--amp/--no-amp", default=True, show_default=True, help="bf16 autocast"),
    params_option,
]


def _with_model_options(fn):
    for opt in reversed(_model_options):
        fn = opt(fn)
    return fn


@fr.command()
@_with_model_options
@click.option("--data", required=True, type=click.Path(exists=True), help="dataset to embed")
@click.option("--mask", type=click.Path(dir_okay=False), default=None, help=".npy record mask")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="folder for features.npy, labels.npy, centers.npy, center_labels.npy",
)
@click.option(
    "--flip/--no-flip",
    default=True,
    show_default=True,
    help="flip-sum embeddings (use --no-flip for a generator's training features: a "
    "flip-summed feature cannot tell a face from its mirror)",
)
@click.option(
    "--write-training-lmdb",
    "training_lmdb",
    type=click.Path(dir_okay=False),
    default=None,
    help="also write a Vec2Face training-layout LMDB (image, feature, label)",
)
def extract(
    model, backbone, role, batch_size, device, amp, params, data, mask, out, flip, training_lmdb
) -> None:
    """Extract L2-normalised features and identity centers of DATA."""
    from vec2face.fr.extract import write_dataset_features

    net = _model(model, backbone, role, params).to(device)
    result = write_dataset_features(
        net,
        data,
        out,
        mask=mask,
        batch_size=batch_size,
        flip=flip,
        device=device,
        autocast=amp,
        training_lmdb=training_lmdb or None,
    )
    echo_json(result)


@fr.command()
@_with_model_options
@click.option(
    "--bins",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="folder of verification .bin sets",
)
@click.option("--set", "sets", multiple=True, help="only these sets (stems; repeatable)")
@click.option("--name", default=None, help="model name in the Markdown table")
@click.option(
    "--json-out", type=click.Path(dir_okay=False), default=None, help="also write the JSON here"
)
def evaluate(
    model, backbone, role, batch_size, device, amp, params, bins, sets, name, json_out
) -> None:
    """Verification accuracy on the .bin sets (JSON, then a Markdown table)."""
    import json
    from pathlib import Path

    from vec2face.fr.evaluate import evaluate_bins, markdown_table
    from vec2face.utils.io import write_bytes_atomic

    net = _model(model, backbone, role, params).to(device)
    results = evaluate_bins(net, bins, list(sets) or None, batch_size, device, autocast=amp)
    if json_out:
        write_bytes_atomic(json_out, (json.dumps(results, indent=2) + "\n").encode())
    echo_json(results)
    click.echo("")
    click.echo(markdown_table(results, name or role or (Path(model).name if model else "model")))


@fr.command()
@click.option(
    "--model",
    "models",
    multiple=True,
    required=True,
    help="NAME=FOLDER: a row of the table and its FR model (fr train output or zoo export)",
)
@click.option(
    "--bins",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="folder of verification .bin sets",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="folder for <name>.json, accuracies.parquet and table.md",
)
@params_option
def benchmark(models, bins, out, params) -> None:
    """The benchmark table of several models on the same .bin sets (what the pipeline's
    benchmark_accuracies step writes). A zoo export measured on the sets the ``benchmarks``
    section of --params makes keeps its recorded figures."""
    from pathlib import Path

    from vec2face.config import load_step_config
    from vec2face.fr.benchmark import benchmark_models
    from vec2face.toyfaces.benchmarks import BenchmarksConfig

    rows = {}
    for item in models:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise click.BadParameter(f"'{item}' is not NAME=FOLDER", param_hint="--model")
        rows[name] = folder
    benchmarks = load_step_config(BenchmarksConfig, "benchmarks", params) if params else None
    done = benchmark_models(rows, bins, out, benchmarks=benchmarks)
    echo_json(done)
    click.echo("")
    click.echo((Path(out) / "table.md").read_text().rstrip())
