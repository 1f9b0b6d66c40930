"""Step configs from params.yaml, previews, and the steps by their dvc.yaml stage."""

from __future__ import annotations

import pytest
from PIL import Image

from assets_defs._produce import preview_markdown
from assets_defs.steps import step_for_stage
from assets_defs.toy_world import pool_config
from vec2face.errors import ConfigError


def test_pool_config_reads_the_pool_section_and_world_seed():
    cfg = pool_config(
        {"world": {"seed": 7, "pools": {"pca": {"identities": 5, "images": 2}}}}, "pca"
    )
    assert (cfg.pool, cfg.identities, cfg.images, cfg.seed) == ("pca", 5, 2, 7)


def test_pool_config_names_the_missing_or_invalid_key():
    with pytest.raises(ConfigError, match=r"world\.model_pools\.judge"):
        pool_config({"world": {"pools": {}}}, "judge")
    with pytest.raises(ConfigError, match=r"world\.pools\.pca\.identities"):
        pool_config({"world": {"pools": {"pca": {"identities": 0, "images": 2}}}}, "pca")


def test_preview_markdown_inlines_a_shrunk_png(tmp_path):
    Image.new("RGB", (900, 300), "white").save(tmp_path / "preview.png")
    md = preview_markdown(tmp_path / "preview.png", width=300)
    assert md.startswith("![preview.png](data:image/png;base64,")
    assert preview_markdown(tmp_path / "absent.png") is None


def test_step_for_stage_lists_known_stages_on_a_miss():
    assert step_for_stage("webface_pool").asset == "webface_pool"
    with pytest.raises(KeyError, match="teacher_pool"):
        step_for_stage("nope")
