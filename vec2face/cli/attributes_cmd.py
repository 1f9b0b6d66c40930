"""``vec2face attributes``: train the toy attribute estimator, run any estimator on a dataset."""

from __future__ import annotations

import click

from vec2face.cli._common import echo_json, params_option


@click.group()
def attributes() -> None:
    """Attribute estimators (yaw/pitch/roll, age, quality)."""


@attributes.command()
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="labelled toy pool (vec2face toyfaces output)",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="output folder (model.pt, metrics.json, checkpoints/)",
)
@click.option(
    "--heldout",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="toy pool of other identities to report on",
)
@click.option("--epochs", type=int, default=None, help="passes over the training images")
@click.option("--batch-size", type=int, default=None, help="images per step")
@click.option("--lr", type=float, default=None, help="peak learning rate")
@click.option(
    "--max-images", type=int, default=None, help="use at most this many training images (0: all)"
)
@click.option("--seed", type=int, default=None, help="seed")
@click.option("--threads", type=int, default=None, help="torch CPU threads (0: default)")
@click.option("--resume", is_flag=True, help="continue from OUT/checkpoints/last.pt")
@params_option
def train(
    data, out, heldout, epochs, batch_size, lr, max_images, seed, threads, resume, params
) -> None:
    """Train the toy estimator on DATA and report held-out MAEs and quality rank correlation."""
    from vec2face.attributes.train import AttributesTrainConfig, train_attributes
    from vec2face.config import load_step_config
    from vec2face.tracking import ConsoleTracker

    cfg = load_step_config(
        AttributesTrainConfig,
        "attributes_train",
        params,
        {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "max_images": max_images,
            "seed": seed,
            "threads": threads,
        },
    )
    summary = train_attributes(
        cfg, data, out, heldout_dir=heldout, resume=resume, tracker=ConsoleTracker()
    )
    summary.pop("history")
    echo_json(summary)


def _estimator_config(model, sixdrepnet, magface, params):
    from vec2face.attributes.estimators import CONFIG_SECTION, AttributeEstimatorConfig
    from vec2face.config import load_step_config

    # Without the toy checkpoint only the real adapters' attributes can be asked for.
    real = ["yaw", "pitch", "roll"] * bool(sixdrepnet) + ["quality"] * bool(magface)
    return load_step_config(
        AttributeEstimatorConfig,
        CONFIG_SECTION,
        params,
        {
            "checkpoint": model,
            "sixdrepnet": sixdrepnet,
            "magface": magface,
            "attributes": real if real and not model else None,
        },
    )


_model_options = [
    click.option(
        "--model",
        default=None,
        type=click.Path(dir_okay=False),
        help="toy estimator checkpoint (model.pt)",
    ),
    click.option(
        "--sixdrepnet",
        default=None,
        type=click.Path(dir_okay=False),
        help="6DRepNet weights for the pose",
    ),
    click.option(
        "--magface",
        default=None,
        type=click.Path(dir_okay=False),
        help="MagFace checkpoint for the quality",
    ),
]


def _with_model_options(fn):
    for opt in reversed(_model_options):
        fn = opt(fn)
    return fn


@attributes.command()
@_with_model_options
@click.option(
    "--data", required=True, type=click.Path(exists=True), help="any dataset open_dataset reads"
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="predictions .parquet")
@click.option(
    "--batch-size", type=int, default=128, show_default=True, help="images per forward pass"
)
@params_option
def predict(model, sixdrepnet, magface, data, out, batch_size, params) -> None:
    """Estimate the attributes of every image of DATA into a Parquet table."""
    from vec2face.attributes.estimators import load_attribute_estimator, predict_dataset

    est = load_attribute_estimator(_estimator_config(model, sixdrepnet, magface, params))
    echo_json(predict_dataset(est, data, out, batch_size=batch_size))


@attributes.command()
@_with_model_options
@click.option(
    "--data", required=True, type=click.Path(exists=True, file_okay=False), help="labelled toy pool"
)
@click.option(
    "--batch-size", type=int, default=256, show_default=True, help="images per forward pass"
)
@params_option
def evaluate(model, sixdrepnet, magface, data, batch_size, params) -> None:
    """MAE per attribute and quality Spearman of an estimator on a labelled toy pool."""
    from vec2face.attributes.estimators import load_attribute_estimator
    from vec2face.attributes.train import evaluate_estimator, load_labelled_toyfaces

    est = load_attribute_estimator(_estimator_config(model, sixdrepnet, magface, params))
    echo_json(evaluate_estimator(est, load_labelled_toyfaces(data), batch_size=batch_size))
