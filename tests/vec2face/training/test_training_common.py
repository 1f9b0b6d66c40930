"""Shared training pieces: schedules, checkpoints, guards, precision."""

from __future__ import annotations

import math

import pytest
import torch

from vec2face.errors import ConfigError
from vec2face.training import (
    NonFiniteLossError,
    amp_dtype,
    autocast_for,
    check_finite,
    init_distributed,
    latest_checkpoint,
    load_checkpoint,
    make_grad_scaler,
    multistep_lr,
    save_checkpoint,
    warmup_cosine_lr,
)


def test_warmup_cosine_shape():
    assert warmup_cosine_lr(0, 1.0, 10, 100) == 0.0
    assert warmup_cosine_lr(5, 1.0, 10, 100) == pytest.approx(0.5)
    assert warmup_cosine_lr(10, 1.0, 10, 100) == pytest.approx(1.0)
    assert warmup_cosine_lr(55, 1.0, 10, 100) == pytest.approx(0.5)
    assert warmup_cosine_lr(100, 1.0, 10, 100, min_lr=0.1) == pytest.approx(0.1)


def test_multistep_matches_paper_recipe():
    lrs = [multistep_lr(e, 0.1, (12, 20, 24)) for e in (0, 11, 12, 19, 20, 24, 25)]
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 1e-4, 1e-4])


def test_checkpoint_roundtrip_keeps_last_two(tmp_path):
    for e in range(1, 4):
        save_checkpoint({"w": torch.full((2,), float(e)), "epoch": e}, tmp_path, e)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_0002.pt", "checkpoint_0003.pt", "last.pt"]
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state["epoch"] == 3 and torch.equal(state["w"], torch.full((2,), 3.0))
    with pytest.raises(ConfigError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    assert latest_checkpoint(tmp_path / "empty") is None


def test_non_finite_loss_names_the_step():
    check_finite(torch.tensor(1.0), 0, 0)
    with pytest.raises(NonFiniteLossError, match="epoch 2, step 7, batch 3"):
        check_finite(torch.tensor(math.nan), 2, 7, 3)


def test_single_process_env_and_cpu_precision():
    env = init_distributed("cpu")
    assert env.world_size == 1 and env.is_main and env.device.type == "cpu"
    with autocast_for(env.device, True):
        y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == torch.bfloat16
    assert not make_grad_scaler(env.device, True).is_enabled()


def test_amp_dtype_per_device_and_choice():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert amp_dtype(cuda) == torch.float16  # the paper's fp16 + loss scaling
    assert amp_dtype(cuda, "bfloat16") == torch.bfloat16
    assert amp_dtype(cpu, "float16") == torch.bfloat16  # CPU autocast is bf16 whatever the choice
    with pytest.raises(ValueError, match="cuda_dtype"):
        amp_dtype(cuda, "int8")


def test_auto_precision_follows_the_cpu_probe(monkeypatch):
    from vec2face.training import precision

    cpu = torch.device("cpu")
    assert precision.resolve_bf16(True, cpu) is True and precision.resolve_bf16(False, "cuda") is False
    assert precision.resolve_bf16("auto", "cuda") is True
    threads = torch.get_num_threads()
    speedup = precision.cpu_bf16_speedup(1)
    assert 0 < speedup < math.inf and torch.get_num_threads() == threads  # threads restored
    for measured, chosen in ((2.8, True), (1.29, False), (0.7, False)):
        monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda _t, m=measured: m)
        assert precision.resolve_bf16("auto", cpu) is chosen
    with pytest.raises(ValueError, match="true, false or 'auto', got 'fast'"):
        precision.resolve_bf16("fast", cpu)


def test_auto_precision_is_a_setting_of_the_training_and_generation_configs():
    from pydantic import ValidationError

    from vec2face.fr.train import FRTrainConfig
    from vec2face.generator.train import GeneratorTrainConfig
    from vec2face.hsface.writer import HSFaceConfig

    generator = {"teacher_checkpoint": "fr_teacher"}
    for cls, key, base in ((FRTrainConfig, "amp", {}), (GeneratorTrainConfig, "amp", generator),
                           (HSFaceConfig, "bf16", {})):
        assert getattr(cls(**base, **{key: "auto"}), key) == "auto"
        assert getattr(cls(**base, **{key: False}), key) is False
        with pytest.raises(ValidationError):
            cls(**base, **{key: "sometimes"})


def test_single_process_helpers_of_the_ddp_engines():
    from torch import nn

    from vec2face.training import all_ranks_sum, unwrap

    v = all_ranks_sum(torch.tensor(2.5, dtype=torch.bfloat16, requires_grad=True), False)
    assert v.shape == (1,) and v.dtype == torch.float32 and v.item() == 2.5
    assert not v.requires_grad
    net = nn.Linear(2, 2)
    assert unwrap(net) is net


def test_a_rank_s_loader_arguments():
    from vec2face.training import DistEnv

    env = DistEnv(rank=1, world_size=4, local_rank=1, device=torch.device("cpu"))
    assert env.loader_args(7, 2) == {
        "seed": 7, "rank": 1, "world_size": 4, "num_workers": 2, "pin_memory": False,
    }
    assert env.distributed and not env.is_main
