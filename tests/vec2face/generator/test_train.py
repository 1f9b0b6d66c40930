"""The generator training engine: checkpoints, GAN switch-on, resume equality, NaN guard, DDP.

Everything runs the ``tiny`` generator on eight random 112x112 images with random features,
and a randomly initialised ``tiny`` IResNet saved to a file as the frozen teacher.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vec2face.config import load_step_config
from vec2face.data import encode_image, write_lmdb
from vec2face.errors import ConfigError, DataFormatError, Vec2FaceError
from vec2face.generator.losses import GeneratorLossConfig
from vec2face.generator.train import GeneratorTrainConfig, fit
from vec2face.models import build_backbone, load_generator_checkpoint
from vec2face.training import NonFiniteLossError, load_checkpoint
from vec2face.utils.hashing import state_sha256

REPO = Path(__file__).resolve().parents[3]
N = 8
GRID_ROWS = 3


class RecordingTracker:
    def __init__(self):
        self.params: dict = {}
        self.metrics: list[tuple[int | None, dict]] = []
        self.artifacts: list[str] = []

    def log_params(self, params):
        self.params.update(params)

    def log_metrics(self, metrics, step=None):
        self.metrics.append((step, dict(metrics)))

    def log_artifact(self, path):
        self.artifacts.append(str(path))

    def set_tags(self, tags):
        pass


class _Killed(Exception):
    pass


class KilledAfterFirstEpoch(RecordingTracker):
    """Stops the run right after the first epoch's checkpoint is on disk, as a kill would."""

    def log_metrics(self, metrics, step=None):
        raise _Killed(f"killed after epoch {step}")


def _write_data(path: Path, nan_features: bool = False) -> Path:
    rng = np.random.default_rng(0)
    records = []
    for i in range(N):
        image = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
        feature = rng.standard_normal(512).astype(np.float32)
        if nan_features:
            feature[:] = np.nan
        records.append((encode_image(image, "png"), i // 2, feature))
    write_lmdb(records, path, layout="training")
    return path


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: on a shared 2-core machine, OpenMP spin-waits make 2 threads ~10x
    slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("gtrain")
    torch.manual_seed(11)
    teacher = root / "teacher.pth"
    torch.save(build_backbone("tiny").state_dict(), teacher)
    return {
        "root": root,
        "data": _write_data(root / "train.lmdb"),
        "nan_data": _write_data(root / "nan.lmdb", nan_features=True),
        "teacher": teacher,
    }


def _config(world, **overrides) -> GeneratorTrainConfig:
    values = {
        "model": "tiny",
        "discriminator": "patchgan_tiny",
        "teacher": "tiny",
        "teacher_checkpoint": str(world["teacher"]),
        "epochs": 2,
        "batch_size": 4,
        "num_workers": 0,
        "warmup_epochs": 1,
        "sample_grid_size": GRID_ROWS,
        "device": "cpu",
        "amp": True,
        "seed": 3,
        "loss": GeneratorLossConfig(lpips=0, disc_start=1),
    }
    values.update(overrides)
    return GeneratorTrainConfig(**values)


@pytest.fixture(scope="module")
def straight_run(world):
    """Two uninterrupted epochs of two steps; the GAN switches on at epoch 1."""
    out = world["root"] / "straight"
    tracker = RecordingTracker()
    summary = fit(_config(world), world["data"], out, tracker=tracker, progress=False)
    return out, summary, tracker


def test_run_writes_official_checkpoint_layout_samples_and_final_generator(straight_run):
    out, summary, _ = straight_run
    ckpts = out / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "checkpoint_0001.pt",
        "checkpoint_0002.pt",
        "last.pt",
    ]
    state = load_checkpoint(ckpts / "last.pt")
    for key in (
        "model_vec2face",
        "model_disc",
        "optimizer_g",
        "optimizer_d",
        "scaler",
        "epoch",
        "arch",
        "config",
        "metadata",
    ):
        assert key in state, key
    assert state["epoch"] == 2 and state["arch"]["name"] == "tiny"
    assert state["metadata"]["pretrained_lpips_backbone"] is None  # LPIPS off
    # paths are named from the output folder, so the bytes do not depend on the root
    assert state["config"]["teacher_checkpoint"] == "../teacher.pth"
    assert state["metadata"]["data"] == "../train.lmdb"

    final, report = load_generator_checkpoint(out / "generator.pt")
    assert report.arch_name == "tiny" and report.epoch == 2
    for k, v in final.state_dict().items():
        assert torch.equal(v, state["model_vec2face"][k]), k
    # The training checkpoint is itself loadable as a generator checkpoint.
    from_training, _ = load_generator_checkpoint(ckpts / "last.pt")
    assert state_sha256(from_training) == state_sha256(final) == summary["weights_sha256"]

    grid = Image.open(out / "samples" / "epoch_0001.png")
    assert grid.size == (2 * 112, GRID_ROWS * 112) and grid.mode == "RGB"
    assert summary["samples"] == [str(out / "samples" / f"epoch_{e:04d}.png") for e in (0, 1)]
    assert summary["effective_batch_size"] == 4
    assert summary["lr"] == pytest.approx(4e-5 * 4 / 112)
    assert summary["replicas_in_sync"] and summary["world_size"] == 1


def test_tracker_gets_params_epoch_metrics_and_sample_grids(straight_run):
    _out, summary, tracker = straight_run
    assert tracker.params["loss.disc_start"] == 1 and tracker.params["model"] == "tiny"
    assert tracker.params["precision"] == "bf16-autocast"
    assert [step for step, _ in tracker.metrics] == [0, 1]
    assert tracker.artifacts == summary["samples"]
    first = tracker.metrics[0][1]
    for term in ("mse", "ssim", "token", "identity", "total", "lr", "grad_norm_g"):
        assert np.isfinite(first[term]), term
    assert 0 < first["lr"] <= summary["lr"]


def test_gan_is_off_before_disc_start_and_on_after(straight_run):
    out, _, tracker = straight_run
    before, after = tracker.metrics[0][1], tracker.metrics[1][1]
    assert before["gan_weight"] == 0 and "gan" not in before and "disc_loss" not in before
    assert after["gan_weight"] == pytest.approx(0.8)
    assert after["gan"] > 0 and after["disc_loss"] > 0 and after["grad_norm_d"] > 0
    # The discriminator optimiser took no step in epoch 0 and did in epoch 1.
    assert load_checkpoint(out / "checkpoints" / "checkpoint_0001.pt")["optimizer_d"]["state"] == {}
    assert load_checkpoint(out / "checkpoints" / "checkpoint_0002.pt")["optimizer_d"]["state"] != {}


def test_killed_run_resumes_to_the_same_weights(world, straight_run, caplog):
    _, straight, _ = straight_run
    out = world["root"] / "killed"
    with pytest.raises(_Killed):
        fit(_config(world), world["data"], out, tracker=KilledAfterFirstEpoch(), progress=False)
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 1
    assert not (out / "generator.pt").exists()

    tracker = RecordingTracker()
    with caplog.at_level(logging.WARNING, logger="vec2face.generator.train"):
        resumed = fit(
            _config(world), world["data"], out, tracker=tracker, resume=True, progress=False
        )
    assert "changed settings" not in caplog.text  # the recorded paths compare as the same
    assert resumed["start_epoch"] == 1 and [s for s, _ in tracker.metrics] == [1]
    assert resumed["weights_sha256"] == straight["weights_sha256"]
    a = load_checkpoint(world["root"] / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(out / "checkpoints" / "last.pt")
    for k, v in a["model_disc"].items():
        assert torch.equal(v, b["model_disc"][k]), k


def test_whitening_init_is_recorded_and_survives_a_resume(world, tmp_path):
    cfg = _config(world, whiten_input_init=True, epochs=2)
    straight_tracker = RecordingTracker()
    straight = fit(cfg, world["data"], tmp_path / "straight", tracker=straight_tracker, progress=False)
    # N records span N - 1 directions: the init whitens those, tracked as a parameter.
    assert straight_tracker.params["whitening_kept"] == N - 1
    plain = fit(_config(world, epochs=2), world["data"], tmp_path / "plain", progress=False)
    assert plain["weights_sha256"] != straight["weights_sha256"]

    out = tmp_path / "killed"
    with pytest.raises(_Killed):
        fit(cfg, world["data"], out, tracker=KilledAfterFirstEpoch(), progress=False)
    resumed = fit(cfg, world["data"], out, resume=True, progress=False)
    assert resumed["weights_sha256"] == straight["weights_sha256"]
    meta = load_checkpoint(out / "checkpoints" / "last.pt")["metadata"]
    assert meta["whitening_kept"] == N - 1 and 0 < meta["whitening_top10_share"] < 1


def test_generator_file_is_the_same_under_any_output_root(world, tmp_path):
    written = []
    for root in (tmp_path / "root1", tmp_path / "other" / "deeper"):
        (root / "inputs").mkdir(parents=True)
        shutil.copyfile(world["teacher"], root / "inputs" / "teacher.pth")
        shutil.copyfile(world["data"], root / "inputs" / "train.lmdb")
        cfg = _config(world, epochs=1, teacher_checkpoint=str(root / "inputs" / "teacher.pth"))
        fit(cfg, root / "inputs" / "train.lmdb", root / "generator", progress=False)
        written.append((root / "generator" / "generator.pt").read_bytes())
    assert written[0] == written[1]


def test_non_finite_loss_names_the_step_and_keeps_the_last_good_checkpoint(world, straight_run):
    out = world["root"] / "nan"
    (out / "checkpoints").mkdir(parents=True)
    good = world["root"] / "straight" / "checkpoints" / "checkpoint_0001.pt"
    shutil.copyfile(good, out / "checkpoints" / "last.pt")
    before = (out / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 2, batch 0"):
        fit(_config(world), world["nan_data"], out, resume=True, progress=False)
    assert (out / "checkpoints" / "last.pt").read_bytes() == before
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.pt"]
    assert not (out / "generator.pt").exists()


def test_lpips_backbone_flag_is_tracked_never_silent(world, tmp_path, monkeypatch):
    """Without VGG weights LPIPS runs on a random trunk: a warning and a tracked False."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_hub"))
    mask = tmp_path / "four.npy"
    np.save(mask, np.arange(4))
    tracker = RecordingTracker()
    cfg = _config(
        world,
        epochs=1,
        mask=str(mask),
        sample_grid_size=1,
        loss=GeneratorLossConfig(lpips=0.2, disc_start=1),
    )
    with pytest.warns(UserWarning, match="random VGG trunk"):
        summary = fit(cfg, world["data"], tmp_path / "out", tracker=tracker, progress=False)
    assert tracker.params["pretrained_lpips_backbone"] is False
    assert summary["pretrained_lpips_backbone"] is False
    assert tracker.metrics[0][1]["lpips"] > 0 and tracker.metrics[0][1]["steps"] == 1
    assert load_checkpoint(tmp_path / "out" / "checkpoints" / "last.pt")["metadata"]["samples"] == 4


def test_existing_checkpoints_need_resume(world, straight_run):
    with pytest.raises(ConfigError, match="pass resume"):
        fit(_config(world), world["data"], world["root"] / "straight", progress=False)


def test_resume_refuses_another_discriminator(world, straight_run):
    out = world["root"] / "other_disc"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copyfile(
        world["root"] / "straight" / "checkpoints" / "last.pt", out / "checkpoints" / "last.pt"
    )
    cfg = _config(world, discriminator="patchgan")
    with pytest.raises(Vec2FaceError, match="discriminator 'patchgan_tiny' does not match"):
        fit(cfg, world["data"], out, resume=True, progress=False)


def test_model_args_reach_the_architecture_and_unknown_ones_fail_first(world, tmp_path):
    cfg = _config(world, epochs=1, sample_grid_size=1, model_args={"vector_scale": 4.0})
    fit(cfg, world["data"], tmp_path / "ok", progress=False)
    generator, _ = load_generator_checkpoint(tmp_path / "ok" / "generator.pt")
    assert generator.arch.vector_scale == 4.0 and generator.arch.embed_dim == 192
    with pytest.raises(ConfigError, match=r"unknown overrides \['depthh'\]"):
        bad = _config(world, model_args={"depthh": 3})
        fit(bad, world["data"], tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad" / "checkpoints").exists()


def test_dataset_without_features_fails_before_training(world, tmp_path):
    fr = tmp_path / "fr.lmdb"
    write_lmdb([(encode_image(np.zeros((112, 112, 3), np.uint8), "png"), 0)] * 4, fr, layout="fr")
    with pytest.raises(DataFormatError, match="run feature extraction first"):
        fit(_config(world), fr, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_config_validation_names_the_key(world):
    with pytest.raises(ConfigError, match="generator.*teacher_checkpoint is required"):
        load_step_config(GeneratorTrainConfig, "generator", {"generator": {"model": "tiny"}})
    with pytest.raises(ConfigError, match=r"generator\.model.*known: .*tiny"):
        load_step_config(GeneratorTrainConfig, "generator", {"generator": {"model": "huge"}})
    with pytest.raises(ConfigError, match=r"generator\.lr"):
        load_step_config(GeneratorTrainConfig, "generator", {}, {"lr": float("nan")})
    cfg = load_step_config(
        GeneratorTrainConfig,
        "generator",
        {"generator": {"loss": {"identity": 0, "disc_start": 3}, "epochs": 4}},
        {"epochs": 7},
    )
    assert (
        cfg.epochs == 7
        and cfg.loss.disc_start == 3
        and cfg.blr == 4e-5
        and cfg.betas == (0.9, 0.99)
    )


def _generator_command(world, tmp_path) -> tuple[list[str], Path]:
    """The ``generator train`` arguments the torchrun tests launch, and its output folder."""
    params = tmp_path / "params.yaml"
    params.write_text(
        "generator:\n  model: tiny\n  discriminator: patchgan_tiny\n  teacher: tiny\n"
        "  batch_size: 2\n  accum_iter: 2\n  num_workers: 0\n  sample_grid_size: 2\n"
        "  loss: {lpips: 0.0}\n  epochs: 5\n"
    )
    out = tmp_path / "ddp"
    # A large lr and no warmup, so that unsynchronised replicas would visibly drift apart.
    return [
        *("-m", "vec2face.cli.main", "generator", "train", "--params", str(params)),
        *("--data", str(world["data"]), "--out", str(out), "--device", "cpu", "--quiet"),
        *("--epochs", "1", "--disc-start", "0", "--warmup-epochs", "0", "--blr", "0.014"),
        *("--teacher-checkpoint", str(world["teacher"])),
    ], out  # fmt: skip


def _check_two_replicas(stdout: str, out: Path) -> None:
    summary = json.loads(stdout)
    assert summary["world_size"] == 2 and summary["epochs"] == 1
    assert summary["effective_batch_size"] == 8
    assert summary["lr"] == pytest.approx(0.014 * 8 / 112) == summary["stats"]["lr"]
    assert summary["replicas_in_sync"] is True
    assert summary["stats"]["gan_weight"] == pytest.approx(0.8) and summary["stats"]["steps"] == 2
    final, _ = load_generator_checkpoint(out / "generator.pt")
    assert state_sha256(final) == summary["weights_sha256"]
    assert (out / "samples" / "epoch_0000.png").is_file()


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_identical_replicas(world, tmp_path):
    """`torchrun --nproc_per_node 2 ... generator train`: DDP over gloo, with accumulation and
    the GAN on from epoch 0; rank 0 reports that both ranks hold the same weights."""
    command, out = _generator_command(world, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_HOME": str(tmp_path / "hub")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           *command]
    proc = subprocess.run(
        cmd, check=False, capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_two_replicas(proc.stdout, out)


@pytest.mark.slow
def test_torchrun_two_nodes_of_one_process_train_identical_replicas(world, tmp_path):
    """The multi-node launch (docs/scale_out.md): two torchrun launchers, ``--nnodes 2`` with
    ranks 0 and 1 meeting at a static rendezvous on loopback, one process each."""
    from tests.torchrun import run_two_nodes

    command, out = _generator_command(world, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_HOME": str(tmp_path / "hub")}
    nodes = run_two_nodes(command, env, cwd=REPO)
    for code, _, stderr in nodes:
        assert code == 0, stderr[-3000:]
    _check_two_replicas(nodes[0][1], out)  # global rank 0 (node 0) prints the summary
    assert nodes[1][1].strip() == ""


def test_generator_profiles_stack_defaults_profile_params_overrides():
    from vec2face.errors import ConfigError
    from vec2face.generator.train import generator_train_config

    paper = generator_train_config(None, None, {"teacher_checkpoint": "t.pt"})
    assert paper.model == "vit_base_patch16" and paper.loss.lpips_net == "vgg"
    tiny = generator_train_config(
        "tiny",
        {"generator": {"epochs": 9, "loss": {"identity": 2.0}}},
        {"teacher_checkpoint": "t.pt", "batch_size": None, "loss": {"gan": 0.5}},
    )
    assert (tiny.model, tiny.discriminator, tiny.epochs, tiny.batch_size) == (
        "tiny", "patchgan_tiny", 9, 32
    )
    # nested loss values merge key by key: profile, params and override all survive
    assert (tiny.loss.lpips_net, tiny.loss.disc_start, tiny.loss.identity, tiny.loss.gan) == (
        "alex", 3, 2.0, 0.5
    )
    with pytest.raises(ConfigError, match="unknown generator profile 'huge'"):
        generator_train_config("huge")
    with pytest.raises(ConfigError, match="generator.loss"):
        generator_train_config("tiny", {"generator": {"loss": 3}})


# ----------------------------------------------------------------------------- warm start


def _source_with_discriminator(world, straight_run) -> Path:
    """The straight run's generator.pt with its discriminator beside it (a warm-start source)."""
    src = world["root"] / "warm_source"
    if not (src / "generator.pt").is_file():
        src.mkdir(exist_ok=True)
        shutil.copyfile(straight_run[0] / "generator.pt", src / "generator.pt")
        last = load_checkpoint(straight_run[0] / "checkpoints" / "last.pt")
        torch.save({"model_disc": last["model_disc"], "name": "patchgan_tiny"},
                   src / "discriminator.pt")
    return src / "generator.pt"


def test_warm_start_loads_both_networks_and_stops_at_the_step_budget(world, straight_run,
                                                                     tmp_path):
    source = _source_with_discriminator(world, straight_run)
    # an lr too small to move anything: what comes out is what went in
    cfg = _config(world, init=str(source), epochs=5, max_steps=1, lr=1e-12, weight_decay=0.0)
    tracker = RecordingTracker()
    summary = fit(cfg, world["data"], tmp_path / "ft", tracker=tracker, progress=False)
    assert summary["epochs"] == 1 and summary["steps"] == 1 and summary["init"] == str(source)
    assert summary["stats"]["steps"] == 1.0
    tuned, _ = load_generator_checkpoint(tmp_path / "ft" / "generator.pt")
    original, _ = load_generator_checkpoint(source)
    for (name, a), b in zip(tuned.state_dict().items(), original.state_dict().values(),
                            strict=True):
        assert torch.allclose(a, b, atol=1e-6), name
    last = load_checkpoint(tmp_path / "ft" / "checkpoints" / "last.pt")
    disc = torch.load(source.with_name("discriminator.pt"), weights_only=True)["model_disc"]
    assert all(torch.allclose(last["model_disc"][k], v, atol=1e-6) for k, v in disc.items())
    assert tracker.params["init"] == str(source)


def test_a_run_folder_warm_starts_both_networks(world, straight_run, tmp_path):
    # fit leaves its final discriminator beside generator.pt, and a training checkpoint
    # carries its own: either is a complete warm-start source
    run = straight_run[0]
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    beside = torch.load(run / "discriminator.pt", weights_only=True)
    assert beside["name"] == "patchgan_tiny"
    assert all(torch.equal(beside["model_disc"][k], v) for k, v in last["model_disc"].items())
    for source in (run / "generator.pt", run / "checkpoints" / "last.pt"):
        out = tmp_path / source.stem
        cfg = _config(world, init=str(source), max_steps=1, lr=1e-12, weight_decay=0.0)
        fit(cfg, world["data"], out, progress=False)
        tuned = load_checkpoint(out / "checkpoints" / "last.pt")["model_disc"]
        assert all(torch.allclose(tuned[k], v, atol=1e-6) for k, v in last["model_disc"].items())


def test_step_budget_lays_the_schedule_over_the_steps(world, tmp_path):
    # 8 records at batch 4: two steps an epoch; a budget of 3 ends one step into epoch 2
    cfg = _config(world, epochs=10, max_steps=3, warmup_epochs=0, sample_grid_size=1)
    summary = fit(cfg, world["data"], tmp_path / "budget", progress=False)
    assert summary["epochs"] == 2 and summary["steps"] == 3
    assert summary["stats"]["steps"] == 1.0
    # the last step's lr is 1/4 of the peak (2/3 of a 1.5-epoch cosine), not 0.98 (1/10 of
    # a 10-epoch one)
    assert summary["stats"]["lr"] == pytest.approx(summary["lr"] * 0.25)


def test_warm_start_of_another_size_names_the_mismatch_and_writes_nothing(world, straight_run,
                                                                          tmp_path):
    source = _source_with_discriminator(world, straight_run)
    cfg = _config(world, init=str(source), model_args={"vector_scale": 4.0}, max_steps=1)
    with pytest.raises(ConfigError, match="differs in vector_scale") as err:
        fit(cfg, world["data"], tmp_path / "mismatch", progress=False)
    assert str(source) in str(err.value)
    assert not (tmp_path / "mismatch").exists()
    with pytest.raises(ConfigError, match="'patchgan_tiny' discriminator"):
        fit(_config(world, init=str(source), discriminator="patchgan", max_steps=1),
            world["data"], tmp_path / "mismatch", progress=False)
    with pytest.raises(ConfigError, match="generator.init"):
        fit(_config(world, init=str(tmp_path / "nope.pt")), world["data"], tmp_path / "m",
            progress=False)
    assert not (tmp_path / "mismatch").exists()


# ----------------------------------------------------------------------------- chunks, GAN


def _chunk_config(world, **overrides) -> GeneratorTrainConfig:
    # batch 2 over 8 records: four steps an epoch, eight in all, the GAN on in the second
    return _config(world, batch_size=2, sample_grid_size=1, **overrides)


def _assert_same_training_state(a: dict, b: dict) -> None:
    for key in ("model_vec2face", "model_disc"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name}"
    for key in ("optimizer_g", "optimizer_d"):
        for pid, state in a[key]["state"].items():
            for name, tensor in state.items():
                assert torch.equal(tensor, b[key]["state"][pid][name]), f"{key}.{pid}.{name}"


def test_chunks_paused_mid_epoch_add_up_to_the_unbroken_run(world, tmp_path):
    from vec2face.generator.train import ChunkBudget

    cfg = _chunk_config(world)
    straight = fit(cfg, world["data"], tmp_path / "straight", progress=False)
    assert not straight["paused"] and straight["global_step"] == 8

    out = tmp_path / "chunks"
    first = fit(cfg, world["data"], out, progress=False, budget=ChunkBudget(steps=3))
    assert (first["paused"], first["global_step"], first["epoch"], first["step_in_epoch"],
            first["chunk_steps"]) == (True, 3, 0, 3, 3)
    assert first["generator"] is None and not (out / "generator.pt").exists()
    paused = load_checkpoint(out / "checkpoints" / "last.pt")
    assert (paused["epoch"], paused["step_in_epoch"], paused["global_step"]) == (0, 3, 3)
    assert len(paused["rng"]) == 1 and set(paused["rng"][0]) == {"torch", "cuda", "numpy",
                                                                  "python"}
    assert not list((out / "checkpoints").glob("checkpoint_*.pt"))  # mid-epoch: last.pt only

    # a clock that moves a minute a reading: the second chunk pauses after its first step
    ticks = iter(range(1000))
    second = fit(cfg, world["data"], out, resume=True, progress=False,
                 budget=ChunkBudget(minutes=0.5, clock=lambda: 60.0 * next(ticks)))
    assert (second["paused"], second["global_step"], second["chunk_steps"]) == (True, 4, 1)
    # step 4 ends epoch 0: the pause there is that epoch's checkpoint
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step_in_epoch"] == 0
    third = fit(cfg, world["data"], out, resume=True, progress=False,
                budget=ChunkBudget(steps=3))
    assert (third["paused"], third["global_step"], third["epoch"]) == (True, 7, 1)
    last = fit(cfg, world["data"], out, resume=True, progress=False)
    assert not last["paused"] and last["global_step"] == 8 and last["chunk_steps"] == 1
    assert last["weights_sha256"] == straight["weights_sha256"]
    _assert_same_training_state(load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt"),
                                load_checkpoint(out / "checkpoints" / "last.pt"))
    assert (out / "generator.pt").is_file()


def test_resume_refuses_another_objective_naming_the_difference(world, tmp_path):
    from vec2face.generator.train import ChunkBudget

    cfg = _chunk_config(world, epochs=1)
    out = tmp_path / "run"
    fit(cfg, world["data"], out, progress=False, budget=ChunkBudget(steps=2))
    before = (out / "checkpoints" / "last.pt").read_bytes()
    other = _chunk_config(world, epochs=1, loss=GeneratorLossConfig(lpips=0, disc_start=1,
                                                                    identity=0.5))
    with pytest.raises(Vec2FaceError,
                       match=r"cannot resume: checkpoint loss.identity 1.0 does not match "
                             r"generator.loss.identity 0.5$"):
        fit(other, world["data"], out, resume=True, progress=False)
    with pytest.raises(Vec2FaceError, match=r"checkpoint batch_size 2 does not match "
                                            r"generator.batch_size 4 \(paused mid-epoch\)"):
        fit(_config(world, epochs=1, sample_grid_size=1), world["data"], out, resume=True,
            progress=False)
    with pytest.raises(Vec2FaceError, match=r"gan.official_leak False does not match"):
        fit(_chunk_config(world, epochs=1, gan={"official_leak": True}), world["data"], out,
            resume=True, progress=False)
    assert (out / "checkpoints" / "last.pt").read_bytes() == before


def test_resume_mismatches_fill_a_missing_loss_key_with_its_default():
    from vec2face.generator.train import resume_mismatches

    current = GeneratorTrainConfig(model="tiny", teacher="tiny", teacher_checkpoint="t.pth").model_dump(
        mode="json")
    older = {**current, "loss": {k: v for k, v in current["loss"].items() if k != "mse"}}
    older.pop("gan")  # a checkpoint from before the gan section resumes as the default
    assert resume_mismatches(older, current) == []
    future = {**current, "loss": {**current["loss"], "perceptual_trunk": "toy"}}
    assert resume_mismatches(current, future) == [
        "checkpoint loss.perceptual_trunk 'lpips' does not match "
        "generator.loss.perceptual_trunk 'toy'"
    ]
    assert resume_mismatches({**current, "model_args": {"vector_scale": 2.0}}, current) == [
        "checkpoint model_args.vector_scale 2.0 does not match "
        "generator.model_args.vector_scale None"
    ]


@pytest.mark.parametrize("leak", [False, True])
def test_official_leak_sends_the_generators_adversarial_gradient_into_the_discriminator(
    world, leak
):
    from vec2face.generator.train import _loss, _start_training, _step_losses
    from vec2face.models import build_discriminator, build_generator

    cfg = _config(world, loss=GeneratorLossConfig(lpips=0, disc_start=0),
                  gan={"official_leak": leak})
    torch.manual_seed(0)
    gen, disc = build_generator("tiny"), build_discriminator("patchgan_tiny")
    loss_fn = _loss(cfg, torch.device("cpu"))
    opts = tuple(torch.optim.AdamW(m.parameters()) for m in (gen, disc))
    _start_training(gen, disc, loss_fn, opts)
    images = torch.rand(2, 3, 112, 112) * 2 - 1
    features = torch.randn(2, 512)
    total, terms, d_loss = _step_losses(gen, disc, loss_fn, images, features, 0, cfg,
                                        torch.device("cpu"), True)
    assert terms["gan"] != 0 and d_loss is not None
    total.backward()  # the generator's update alone
    grads = [p.grad for p in disc.parameters()]
    if leak:
        assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0
    else:
        assert all(g is None or not g.any() for g in grads)
    assert any(p.grad is not None and p.grad.any() for p in gen.parameters())


@pytest.mark.slow
def test_torchrun_chunks_pause_on_every_rank_together_and_resume_exactly(world, tmp_path):
    """Two gloo processes: rank 0's clock decides the pause and every rank stops after the
    same step; the paused checkpoint holds both ranks' RNG states, and the resumed run ends
    with the unbroken run's weights."""
    command, _ = _generator_command(world, tmp_path)
    command = [a for a in command if a != "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_HOME": str(tmp_path / "hub")}

    def launch(out: Path, *extra: str) -> dict:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", *command, "--out", str(out), "--epochs", "2",
               "--accum-iter", "1", "--quiet", *extra]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env,
                              cwd=REPO, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout)

    straight = launch(tmp_path / "straight")
    first = launch(tmp_path / "chunks", "--max-minutes", "0.0001")
    assert (first["paused"], first["global_step"], first["step_in_epoch"]) == (True, 1, 1)
    assert first["replicas_in_sync"] is True
    assert len(load_checkpoint(tmp_path / "chunks" / "checkpoints" / "last.pt")["rng"]) == 2
    resumed = launch(tmp_path / "chunks", "--resume")
    assert not resumed["paused"] and resumed["global_step"] == straight["global_step"] == 4
    assert resumed["replicas_in_sync"] is True
    assert resumed["weights_sha256"] == straight["weights_sha256"]
