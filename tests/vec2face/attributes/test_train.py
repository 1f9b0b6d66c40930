"""Toy training: labelled loading, loss goes down, the run writes a loadable model and resumes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from vec2face.attributes import build_attribute_net, load_toy_estimator, toy_quality_label
from vec2face.attributes.train import (
    AttributesTrainConfig,
    attribute_metrics,
    load_labelled_toyfaces,
    train_attributes,
    train_one_epoch,
)
from vec2face.errors import DataFormatError


def test_labelled_images_match_the_manifest(toy_pool):
    data = load_labelled_toyfaces(toy_pool)
    df = pd.read_parquet(toy_pool / "manifest.parquet")
    assert data.images.shape == (24, 112, 112, 3) and data.images.dtype == np.uint8
    np.testing.assert_allclose(data.targets[:, 0], df["yaw"], rtol=1e-6)
    np.testing.assert_allclose(data.targets[:, 3], df["age"], rtol=1e-6)
    np.testing.assert_allclose(
        data.targets[:, 4], toy_quality_label(df["blur"], df["noise"], df["jpeg_quality"])
    )
    few = load_labelled_toyfaces(toy_pool, max_images=9, seed=1)
    assert len(few) == 8 and len(np.unique(few.identities)) == 2  # whole identities only


def test_missing_manifest_is_named(tmp_path):
    with pytest.raises(DataFormatError, match="manifest.parquet"):
        load_labelled_toyfaces(tmp_path)


def test_metrics_hand_case():
    targets = np.array([[10, 0, 0, 30, 20], [-10, 5, 1, 40, 25], [0, 0, 0, 50, 30]], np.float32)
    pred = {
        "yaw": np.array([12, -10, 3.0]),
        "age": np.array([30, 42, 47.0]),
        "quality": np.array([1, 2, 3.0]),
    }
    m = attribute_metrics(pred, targets)
    assert m["yaw_mae"] == pytest.approx(5 / 3) and m["age_mae"] == pytest.approx(5 / 3)
    assert m["quality_spearman"] == pytest.approx(1.0) and "pitch_mae" not in m


def test_a_few_epochs_reduce_the_loss(toy_pool):
    torch.manual_seed(0)
    data = load_labelled_toyfaces(toy_pool)
    cfg = AttributesTrainConfig(epochs=6, batch_size=8, lr=3e-3, warmup_epochs=0.0, amp=False)
    model = build_attribute_net()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    losses = [
        train_one_epoch(model, data, opt, cfg, e, torch.device("cpu"))["loss"]
        for e in range(cfg.epochs)
    ]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0], losses


def test_train_writes_model_metrics_and_resumes(toy_pool, tmp_path):
    cfg = AttributesTrainConfig(epochs=1, batch_size=8, val_fraction=0.34, amp=False)
    out = tmp_path / "run"
    summary = train_attributes(cfg, toy_pool, out)
    assert summary["heldout"]["identities"] == 2 and summary["train_identities"] == 4
    for key in ("yaw_mae", "pitch_mae", "roll_mae", "age_mae", "quality_spearman"):
        assert np.isfinite(summary["heldout"][key])
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
    model = load_toy_estimator(out / "model.pt")
    assert model.predict(np.zeros((1, 112, 112, 3), np.uint8))["age"].shape == (1,)

    more = train_attributes(cfg.model_copy(update={"epochs": 2}), toy_pool, out, resume=True)
    assert [h["epoch"] for h in more["history"]] == [1, 2]
    assert more["history"][0] == summary["history"][0]


def test_metrics_and_model_are_the_same_under_any_output_root(toy_pool, tmp_path):
    cfg = AttributesTrainConfig(epochs=1, batch_size=8, amp=False)
    roots = [tmp_path / "root1", tmp_path / "other" / "deeper"]
    summaries = []
    for root in roots:
        shutil.copytree(toy_pool, root / "heldout_pool")
        summaries.append(train_attributes(cfg, toy_pool, root / "attr", root / "heldout_pool"))
    recorded = [json.loads((root / "attr" / "metrics.json").read_text()) for root in roots]
    for r in recorded:
        assert r["model"] == "model.pt" and r["heldout"]["source"] == "../heldout_pool"
        for timing in ("train_wall_s", "train_cpu_s", "load_s"):
            del r[timing]
    assert recorded[0] == recorded[1]
    one, two = ((root / "attr" / "model.pt").read_bytes() for root in roots)
    assert one == two
    # the returned summary keeps paths usable from here
    assert summaries[1]["model"] == str(roots[1] / "attr" / "model.pt")
    assert summaries[1]["heldout"]["source"] == str(roots[1] / "heldout_pool")
