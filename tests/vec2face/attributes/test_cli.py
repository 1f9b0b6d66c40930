"""``vec2face attributes`` through the CLI entry point."""

from __future__ import annotations

import json

import pandas as pd
import torch

from vec2face.attributes import build_attribute_net
from vec2face.attributes.estimators import toy_checkpoint_state
from vec2face.cli.main import main


def test_predict_writes_one_row_per_image(toy_pool, tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = tmp_path / "model.pt"
    torch.save(toy_checkpoint_state(build_attribute_net(), "attrnet_s"), ckpt)
    out = tmp_path / "preds.parquet"
    rc = main(
        [
            "attributes",
            "predict",
            "--model",
            str(ckpt),
            "--data",
            str(toy_pool),
            "--out",
            str(out),
            "--batch-size",
            "7",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    df = pd.read_parquet(out)
    assert list(df.columns) == [
        "index",
        "label",
        "location",
        "yaw",
        "pitch",
        "roll",
        "age",
        "quality",
    ]
    assert len(df) == 24 == summary["images"] and df["label"].nunique() == 6
    assert df[["yaw", "age", "quality"]].notna().all().all()


def test_missing_model_names_file_and_key(toy_pool, tmp_path, capsys):
    rc = main(
        [
            "attributes",
            "predict",
            "--model",
            str(tmp_path / "none.pt"),
            "--data",
            str(toy_pool),
            "--out",
            str(tmp_path / "p.parquet"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "none.pt" in err and "attribute_estimator.checkpoint" in err
    assert not (tmp_path / "p.parquet").exists()


def test_train_command_runs_one_epoch(toy_pool, tmp_path, capsys):
    rc = main(
        [
            "attributes",
            "train",
            "--data",
            str(toy_pool),
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "1",
            "--batch-size",
            "8",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert (tmp_path / "run" / "model.pt").is_file() and "age_mae" in summary["heldout"]
