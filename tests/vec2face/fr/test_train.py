"""FR training engine: learning, resume equality, NaN guard, DDP, profiles, model files."""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from vec2face.data import encode_image, write_lmdb
from vec2face.errors import ConfigError
from vec2face.fr import heads
from vec2face.fr import train as train_mod
from vec2face.fr.profiles import FR_PROFILES, fr_train_config
from vec2face.fr.train import fit, train_paths
from vec2face.models.state_dict import load_backbone
from vec2face.training import NonFiniteLossError, load_checkpoint
from vec2face.utils.hashing import state_sha256

_FAST = dict(
    backbone="tiny",
    image_size=32,
    embedding_size=32,
    batch_size=8,
    lr=0.05,
    lr_schedule="cosine",
    warmup_epochs=0.0,
    amp=False,
    channels_last=False,
    device="cpu",
    num_workers=0,
    cache_max_gb=1.0,
    val_every=1,
    eval_batch_size=64,
    scale=16.0,
    margin_value=0.2,
    rand_augment=True,
    erase_prob=0.5,
    threads=1,
)


def _faces(path, identities=4, per_id=8, size=32, seed=0):
    """An FR-layout LMDB of per-identity colour patterns plus noise (PNG, lossless)."""
    rng = np.random.default_rng(seed)
    records = []
    for ident in range(identities):
        base = rng.integers(0, 256, (4, 4, 3)).repeat(size // 4, 0).repeat(size // 4, 1)
        for _ in range(per_id):
            img = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
            records.append((encode_image(img, "png"), ident))
    write_lmdb(records, path, layout="fr")
    return path


def _config(**kw):
    return fr_train_config(None, None, {**_FAST, **kw})


def test_paper_profile_is_table_5_and_tiny_overrides_it():
    paper = fr_train_config("paper")
    assert (paper.backbone, paper.margin, paper.scale, paper.margin_value) == (
        "se_ir50",
        "arcface",
        64.0,
        0.5,
    )
    assert (paper.lr, paper.momentum, paper.weight_decay, paper.batch_size) == (0.1, 0.9, 5e-4, 128)
    assert (paper.epochs, paper.lr_milestones, paper.lr_schedule) == (26, (12, 20, 24), "step")
    assert paper.flip and paper.rand_augment and paper.erase_prob > 0 and paper.amp
    tiny = fr_train_config("tiny", {"fr_train": {"epochs": 7}}, {"seed": 3})
    assert tiny.backbone == "tiny" and tiny.epochs == 7 and tiny.seed == 3
    assert set(FR_PROFILES) == {"paper", "tiny", "toy-long"}  # toy-long extends tiny
    with pytest.raises(ConfigError, match="fr_train.backbone"):
        fr_train_config(None, None, {"backbone": "r7"})
    with pytest.raises(ConfigError, match="unknown FR profile"):
        fr_train_config("huge")


def test_training_lowers_the_loss_and_writes_a_loadable_backbone(tmp_path):
    data = _faces(tmp_path / "d.lmdb")
    out = tmp_path / "run"
    result = fit(_config(epochs=4, erase_prob=0.0, rand_augment=False), train_paths([data], out))
    losses = [h["loss"] for h in result["history"]]
    assert losses[-1] < 0.8 * losses[0], losses
    meta = json.loads((out / "backbone.json").read_text())
    assert meta == {"backbone": "tiny", "embedding_size": 32, "overrides": {"input_size": 32}}
    model = load_backbone("tiny", out / "backbone.pt", embedding_size=32, input_size=32)
    assert state_sha256(model) == result["backbone_sha256"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "checkpoint_0003.pt",
        "checkpoint_0004.pt",
        "last.pt",
    ]


def test_outputs_are_the_same_under_any_output_root(tmp_path):
    data = _faces(tmp_path / "d.lmdb", identities=4, per_id=4)
    cfg = _config(epochs=1)
    outs = [tmp_path / "root1" / "fr", tmp_path / "other" / "deeper" / "fr"]
    results = [fit(cfg, train_paths([data], out)) for out in outs]
    assert results[1]["backbone"] == str(outs[1] / "backbone.pt")
    recorded = [json.loads((out / "metrics.json").read_text()) for out in outs]
    for r in recorded:
        assert r["backbone"] == "backbone.pt"
        for stats in [r["metrics"], *r["history"]]:  # timings differ run to run
            del stats["epoch_time_s"], stats["images_per_s"]
    assert recorded[0] == recorded[1]
    for name in ("backbone.pt", "backbone.json", "checkpoints/last.pt"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def test_resume_reaches_the_same_weights(tmp_path, monkeypatch):
    data = _faces(tmp_path / "d.lmdb", identities=4, per_id=4)
    cfg = _config(epochs=2, sample_rate=0.5)  # the class sampler's state must resume too
    straight = fit(cfg, train_paths([data], tmp_path / "a"))

    real_epoch = train_mod.train_one_epoch

    def killed_in_epoch_2(model, batches, optimizer, scaler, epoch, config, **kw):
        if epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(model, batches, optimizer, scaler, epoch, config, **kw)

    monkeypatch.setattr(train_mod, "train_one_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, train_paths([data], tmp_path / "b"))
    monkeypatch.setattr(train_mod, "train_one_epoch", real_epoch)
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["epoch"] == 1
    resumed = fit(cfg, train_paths([data], tmp_path / "b"), resume=True)
    assert resumed["backbone_sha256"] == straight["backbone_sha256"]
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for key in a["head"]:
        if torch.is_tensor(a["head"][key]):
            assert torch.equal(a["head"][key], b["head"][key]), key
    with pytest.raises(ConfigError, match="fr_train.seed"):
        fit(
            _config(epochs=3, seed=9, sample_rate=0.5),
            train_paths([data], tmp_path / "b"),
            resume=True,
        )


def test_nan_loss_names_step_and_batch_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    data = _faces(tmp_path / "d.lmdb", identities=4, per_id=4)
    out = tmp_path / "run"
    fit(_config(epochs=1), train_paths([data], out))
    good = (out / "checkpoints" / "last.pt").read_bytes()
    real_forward = heads.MarginClassifier.forward
    calls = {"n": 0}

    def poisoned(self, embeddings, labels):
        calls["n"] += 1
        out = real_forward(self, embeddings, labels)
        if calls["n"] == 2:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(heads.MarginClassifier, "forward", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 3, batch 1"):
        fit(_config(epochs=2), train_paths([data], out), resume=True)
    assert (out / "checkpoints" / "last.pt").read_bytes() == good
    assert not (out / "checkpoints" / "checkpoint_0002.pt").exists()


def test_validation_on_bins_is_logged(tmp_path):
    from vec2face.data import write_bin

    data = _faces(tmp_path / "d.lmdb", identities=4, per_id=4)
    rng = np.random.default_rng(5)
    images = [
        encode_image(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "png") for _ in range(40)
    ]
    write_bin(images, [i % 2 == 0 for i in range(20)], tmp_path / "bins" / "lfw.bin")

    class Recorder:
        def __init__(self):
            self.metrics, self.params, self.artifacts = [], [], []

        def log_params(self, p):
            self.params.append(p)

        def log_metrics(self, m, step=None):
            self.metrics.append((step, dict(m)))

        def log_artifact(self, p):
            self.artifacts.append(str(p))

        def set_tags(self, t):
            pass

    rec = Recorder()
    fit(
        _config(epochs=2, val_pairs=10), train_paths([data], tmp_path / "r", tmp_path / "bins"), rec
    )
    assert [s for s, _ in rec.metrics] == [1, 2]
    assert all(0.0 <= m["val/lfw/accuracy"] <= 1.0 for _, m in rec.metrics)
    assert rec.params[0]["num_classes"] == 4
    assert any(a.endswith("backbone.pt") for a in rec.artifacts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, data: str, out: str, result_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    result = fit(_config(epochs=2, threads=1), train_paths([data], out))
    with open(os.path.join(result_dir, f"rank{rank}.json"), "w") as fh:
        json.dump({"sha": result["backbone_sha256"], "world": result["world_size"]}, fh)


@pytest.mark.slow
def test_ddp_two_cpu_processes_end_with_identical_weights(tmp_path):
    data = _faces(tmp_path / "d.lmdb", identities=4, per_id=8)
    mp.spawn(
        _ddp_worker,
        args=(2, _free_port(), str(data), str(tmp_path / "run"), str(tmp_path)),
        nprocs=2,
        join=True,
    )
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    assert ranks[0]["sha"] == ranks[1]["sha"]
    saved = load_backbone(
        "tiny", tmp_path / "run" / "backbone.pt", embedding_size=32, input_size=32
    )
    assert state_sha256(saved) == ranks[0]["sha"]


@pytest.mark.slow
def test_torchrun_two_nodes_train_an_fr_model(tmp_path):
    """The multi-node launch of ``vec2face fr train`` (docs/scale_out.md): two torchrun
    launchers, ``--nnodes 2`` at a static rendezvous on loopback, one process each; rank 0
    trains in a world of two and saves the weights its summary names (that DDP replicas end
    identical is shown by test_ddp_two_cpu_processes_end_with_identical_weights)."""
    import yaml

    from tests.torchrun import run_two_nodes

    data = _faces(tmp_path / "d.lmdb", identities=4, per_id=8)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"fr_train": {**_FAST, "epochs": 2, "threads": 1}}))
    command = [
        *("-m", "vec2face.cli.main", "fr", "train", "--params", str(params)),
        *("--data", str(data), "--out", str(tmp_path / "run"), "--quiet"),
    ]
    nodes = run_two_nodes(command, {**os.environ, "OMP_NUM_THREADS": "1"})
    for code, _, stderr in nodes:
        assert code == 0, stderr[-3000:]
    summary = json.loads(nodes[0][1])  # global rank 0 prints the summary
    assert summary["world_size"] == 2 and nodes[1][1].strip() == ""
    saved = load_backbone("tiny", tmp_path / "run" / "backbone.pt", embedding_size=32,
                          input_size=32)
    assert state_sha256(saved) == summary["backbone_sha256"]
