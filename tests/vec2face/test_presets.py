"""The training presets are YAML configuration that ships with the package."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from vec2face.errors import ConfigError
from vec2face.fr.profiles import FR_PROFILES, fr_train_config
from vec2face.generator.train import GENERATOR_PROFILES, generator_train_config
from vec2face.presets import PRESETS, preset_section

REPO = Path(__file__).resolve().parents[2]


def test_the_steps_read_their_section_of_the_preset_files():
    assert set(PRESETS) == set(FR_PROFILES) == set(GENERATOR_PROFILES) == {
        "paper", "tiny", "toy-long"}
    assert FR_PROFILES["tiny"] == preset_section("tiny", "fr_train")
    tiny_fr = fr_train_config("tiny")
    assert (tiny_fr.backbone, tiny_fr.margin, tiny_fr.scale, tiny_fr.epochs) == (
        "tiny", "cosface", 32.0, 3,
    )
    tiny_gen = generator_train_config("tiny", overrides={"teacher_checkpoint": "teacher.pt"})
    assert (tiny_gen.model, tiny_gen.loss.lpips_net, tiny_gen.loss.disc_start) == (
        "tiny", "alex", 3,
    )
    assert tiny_gen.model_args["vector_scale"] == pytest.approx(512 ** 0.5, rel=1e-15)
    # paper is the defaults: the preset sets nothing
    assert preset_section("paper", "fr_train") == preset_section("paper", "generator") == {}
    assert fr_train_config("paper") == fr_train_config(None)


def test_a_params_section_overrides_the_preset_key_by_key():
    config = fr_train_config("tiny", {"fr_train": {"lr": 0.2, "backbone": "tiny_patch4"}})
    assert (config.lr, config.backbone, config.margin) == (0.2, "tiny_patch4", "cosface")


def test_an_unknown_preset_is_an_error_naming_it_and_the_known_ones():
    with pytest.raises(ConfigError, match="unknown profile 'huge'; known: paper, tiny, toy-long"):
        preset_section("huge", "fr_train")


def test_the_package_ships_the_presets_and_the_zoo_weights():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    shipped = data["tool"]["setuptools"]["package-data"]["vec2face"]
    package = REPO / "vec2face"
    for name in PRESETS:
        assert any((package / "presets" / f"{name}.yaml").match(g) for g in shipped), name
    for weights in (package / "zoo" / "weights").iterdir():
        assert any(weights.match(g) for g in shipped), weights.name


def test_toy_long_is_tiny_made_long_for_every_step():
    # it extends tiny: the FR sections are tiny's, the generator keeps tiny's loss terms
    assert preset_section("toy-long", "fr_train") == preset_section("tiny", "fr_train")
    assert fr_train_config("toy-long") == fr_train_config("tiny")
    tiny = generator_train_config("tiny", overrides={"teacher_checkpoint": "t.pt"})
    long = generator_train_config("toy-long", overrides={"teacher_checkpoint": "t.pt"})
    assert (long.epochs, long.loss.disc_start, long.warmup_epochs) == (200, 120, 2.0)
    assert long.loss.model_copy(update={"disc_start": 3}) == tiny.loss
    assert (long.model, long.model_args, long.discriminator, long.batch_size) == (
        tiny.model, tiny.model_args, tiny.discriminator, tiny.batch_size)
    assert long.gan.official_leak is False
