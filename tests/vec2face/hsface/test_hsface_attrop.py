"""HSFace with AttrOP: identity refinement and pose/quality-targeted images in the writer,
recorded in the manifest and the settings stamp, deterministic and resumable byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from vec2face.attributes import build_attribute_net
from vec2face.attributes.estimators import toy_checkpoint_state
from vec2face.cli.main import main
from vec2face.config import load_step_config
from vec2face.errors import ConfigError
from vec2face.hsface import writer as hsface
from vec2face.hsface.attrop import refine_identities
from vec2face.hsface.writer import (
    HSFaceConfig,
    generate_hsface,
    shard_name,
    shard_vectors,
    targeted_samples,
)
from vec2face.models import build_backbone
from vec2face.models.generator import load_generator_checkpoint

from .test_hsface import plain_read, shard_bytes

N_IDS, M = 4, 5
CFG = dict(
    identities=N_IDS,
    images_per_identity=M,
    shard_identities=2,
    batch_size=8,
    device="cpu",
    refine_steps=2,
    targeted_share=0.4,  # 2 of 5 images per identity
    target_yaw=45.0,
    target_steps=4,
)


@pytest.fixture(scope="module")
def teacher() -> torch.nn.Module:
    torch.manual_seed(1)
    return build_backbone("tiny").eval()


@pytest.fixture(scope="module")
def estimator(half_contrast):
    return half_contrast


@pytest.fixture(scope="module")
def reference(inputs, teacher, estimator, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("attrop_ref") / "ds"
    summary = generate_hsface(
        HSFaceConfig(**CFG), *inputs, out, progress=False, estimator=estimator, fr_model=teacher
    )
    return out, summary


def test_manifest_records_targeting_and_targets_move_the_yaw(reference, inputs):
    out, summary = reference
    assert summary["complete"]
    man = pd.concat(
        [pd.read_parquet(out / "shards" / shard_name(k) / "manifest.parquet") for k in (0, 1)]
    )
    for ident, rows in man.groupby("identity"):
        targeted = rows["sample"][rows["targeted"]].tolist()
        assert targeted == targeted_samples(HSFaceConfig(**CFG), ident).tolist()
        assert len(targeted) == 2
    on, off = man[man["targeted"]], man[~man["targeted"]]
    assert (on["target_yaw"] == 45).all() and off["target_yaw"].isna().all()
    assert (on["target_quality"] == 27).all() and off["target_quality"].isna().all()
    assert on["attrop_steps"].between(0, 4).all() and (off["attrop_steps"] == 0).all()
    assert on["attrop_converged"].notna().all() and off["attrop_converged"].isna().all()
    # the estimator filled the columns it gives; AttrOP pulled the targeted images' |yaw|
    # toward 45 (the untargeted ones start tens of degrees away)
    assert man[["yaw", "quality"]].notna().all().all() and man["pitch"].isna().all()
    err_on = (45 - on["yaw"].abs()).abs().mean()
    err_off = (45 - off["yaw"].abs()).abs().mean()
    assert err_on < err_off - 10, (err_on, err_off)
    # reports: 2 identities refined and 4 images targeted per shard
    info = json.loads((out / "shards" / "shard_00001" / "shard.json").read_text())
    assert info["refinement"]["items"] == 2 and info["refinement"]["max_steps"] == 2
    assert info["targeting"]["items"] == 4 and info["targeting"]["max_steps"] == 4
    assert set(info["targeting"]["shortfall"]) == {"id_loss", "quality", "yaw"}
    for part in ("refinement", "targeting"):
        assert summary["attrop"][part]["items"] == {"refinement": 4, "targeting": 8}[part]
    stamp = info["stamp"]
    assert stamp["refine_steps"] == 2 and stamp["target_yaw"] == 45.0
    assert stamp["targeted_share"] == 0.4 and stamp["target_steps"] == 4
    assert len(stamp["fr_model_sha256"]) == 64 and len(stamp["attribute_estimator_sha256"]) == 64


def test_vectors_are_refined_centers_plus_variation_and_targeted_rows_moved(
    reference, inputs, teacher
):
    out, _ = reference
    cfg = HSFaceConfig(**CFG)
    generator, _ = load_generator_checkpoint(inputs[0])
    ids = np.load(inputs[1])
    d = out / "shards" / "shard_00001"
    centers = np.load(d / "identities.npy")
    # refinement of identities 2 and 3, seeded by their global indices
    refined = refine_identities(
        generator, ids[2:4], teacher, max_steps=2, identity_indices=[2, 3], batch_size=8
    )
    np.testing.assert_array_equal(centers, refined.vectors)
    assert not np.allclose(centers, ids[2:4])
    vec = np.load(d / "vectors.npy")
    man = pd.read_parquet(d / "manifest.parquet")
    drawn, sigmas, _ = shard_vectors(centers, 2, 4, cfg, offset=2)
    on = man["targeted"].to_numpy()
    np.testing.assert_array_equal(vec[~on], drawn[~on])  # untargeted: the plain variation
    assert not np.allclose(vec[on], drawn[on])  # targeted: moved by AttrOP
    np.testing.assert_array_equal(man["sigma"], sigmas)
    center_of = np.repeat(centers, M, axis=0).astype(np.float64)
    cos = (vec * center_of).sum(1) / np.linalg.norm(vec, axis=1) / np.linalg.norm(center_of, axis=1)
    np.testing.assert_allclose(man["cos_identity"], cos, rtol=1e-5)


def test_same_settings_same_bytes_and_killed_run_resumes_identically(
    reference, inputs, teacher, estimator, tmp_path, monkeypatch
):
    ref, _ = reference
    cfg = HSFaceConfig(**CFG)
    kwargs = dict(progress=False, estimator=estimator, fr_model=teacher)
    generate_hsface(cfg, *inputs, tmp_path / "again", **kwargs)
    assert shard_bytes(tmp_path / "again") == shard_bytes(ref)

    out = tmp_path / "killed"
    real = hsface.encode_image
    calls = {"n": 0}

    def dying_encode(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2 * M + 4:  # in the second shard, after its AttrOP ran
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kw)

    monkeypatch.setattr(hsface, "encode_image", dying_encode)
    with pytest.raises(KeyboardInterrupt):
        generate_hsface(cfg, *inputs, out, **kwargs)
    monkeypatch.setattr(hsface, "encode_image", real)
    assert sorted(p.name for p in (out / "shards").iterdir()) == [".shard_00001.tmp", "shard_00000"]
    summary = generate_hsface(cfg, *inputs, out, **kwargs)
    assert summary["generated_shards"] == [1] and summary["skipped_shards"] == [0]
    assert shard_bytes(out) == shard_bytes(ref)
    for k in (0, 1):
        name = f"shards/{shard_name(k)}/identities.npy"
        assert (out / name).read_bytes() == (ref / name).read_bytes()


def test_changed_targets_or_teacher_are_other_settings(
    reference, inputs, teacher, estimator, tmp_path
):
    ref, _ = reference
    out = tmp_path / "copy"
    shutil.copytree(ref, out)
    kwargs = dict(progress=False, estimator=estimator, fr_model=teacher)
    with pytest.raises(ConfigError, match=r"other settings \(target_yaw\)"):
        generate_hsface(HSFaceConfig(**{**CFG, "target_yaw": 30.0}), *inputs, out, **kwargs)
    with pytest.raises(ConfigError, match=r"other settings \(refine_steps\)"):
        generate_hsface(HSFaceConfig(**{**CFG, "refine_steps": 3}), *inputs, out, **kwargs)
    torch.manual_seed(5)
    other = build_backbone("tiny").eval()
    with pytest.raises(ConfigError, match=r"other settings \(fr_model_sha256\)"):
        generate_hsface(HSFaceConfig(**CFG), *inputs, out, **{**kwargs, "fr_model": other})


def test_missing_models_are_refused_before_anything_is_written(inputs, teacher, tmp_path):
    out = tmp_path / "o"
    with pytest.raises(ConfigError, match="refine_steps > 0 runs AttrOP, which needs the teacher"):
        generate_hsface(HSFaceConfig(**CFG), *inputs, out, progress=False)
    with pytest.raises(ConfigError, match="targets yaw, quality need a differentiable attribute"):
        generate_hsface(HSFaceConfig(**CFG), *inputs, out, progress=False, fr_model=teacher)

    def numpy_estimator(images):
        return {"yaw": images.mean((1, 2, 3))}

    with pytest.raises(ConfigError, match="need a differentiable attribute estimator"):
        generate_hsface(
            HSFaceConfig(**CFG),
            *inputs,
            out,
            progress=False,
            fr_model=teacher,
            estimator=numpy_estimator,
        )
    pose_only = build_attribute_net().eval()
    pose_only.provides = ("yaw", "pitch", "roll")
    with pytest.raises(ConfigError, match="targets quality, which the attribute estimator"):
        generate_hsface(
            HSFaceConfig(**CFG),
            *inputs,
            out,
            progress=False,
            fr_model=teacher,
            estimator=pose_only,
        )
    assert not out.exists()


def test_config_targets_validation_and_per_identity_draw():
    def load(**values):
        return load_step_config(HSFaceConfig, "hsface", {"hsface": values})

    with pytest.raises(ConfigError, match="target_yaw set but targeted_share is 0"):
        load(target_yaw=45)
    with pytest.raises(ConfigError, match="target_quality set but targeted_share is 0"):
        load(target_quality=25)
    with pytest.raises(ConfigError, match="needs target_yaw or target_quality"):
        load(targeted_share=0.2, target_quality=None)
    with pytest.raises(ConfigError, match="hsface.target_yaw"):
        load(targeted_share=0.2, target_yaw=100)
    with pytest.raises(ConfigError, match="hsface.targeted_share"):
        load(targeted_share=1.5)
    with pytest.raises(ConfigError, match="hsface.target_steps"):
        load(targeted_share=0.2, target_steps=0)
    assert not load().uses_attrop and load(refine_steps=5).uses_attrop
    cfg = load(images_per_identity=50, targeted_share=0.2, target_yaw=45)
    assert cfg.targeted_per_identity == 10 and cfg.target_attributes == ("yaw", "quality")
    assert load(images_per_identity=50, targeted_share=0.2).target_attributes == ("quality",)
    # rounded half up; a share too small for the identity's images targets none
    assert load(images_per_identity=5, targeted_share=0.3).targeted_per_identity == 2
    tiny = load(images_per_identity=5, targeted_share=0.05)
    assert tiny.targeted_per_identity == 0 and not tiny.uses_attrop
    # the draw depends on the seed and the global identity only
    a = targeted_samples(cfg, 1234)
    assert a.tolist() == sorted(set(a.tolist())) and len(a) == 10 and a.max() < 50
    np.testing.assert_array_equal(
        a, targeted_samples(cfg.model_copy(update={"shard_identities": 7}), 1234)
    )
    assert not np.array_equal(a, targeted_samples(cfg, 1235))


def test_cli_teacher_attributes_and_targets(inputs, teacher, tmp_path, capsys):
    gen, ids = inputs
    torch.save(teacher.state_dict(), tmp_path / "teacher.pt")
    torch.manual_seed(2)
    torch.save(
        toy_checkpoint_state(build_attribute_net().eval(), "attrnet_s"), tmp_path / "attr.pt"
    )
    common = [
        "generate", "--generator", str(gen), "--identities", str(ids), "--num-identities", "2",
        "--images-per-identity", str(M), "--shard-identities", "2", "--batch-size", "8",
        "--device", "cpu", "--quiet",
    ]  # fmt: skip
    out = tmp_path / "cli"
    rc = main(
        [
            *common, "--out", str(out), "--refine-steps", "1", "--targeted-share", "0.2",
            "--yaw", "30", "--quality", "25", "--target-steps", "2",
            "--teacher", str(tmp_path / "teacher.pt"), "--teacher-backbone", "tiny",
            "--attributes", str(tmp_path / "attr.pt"),
        ]
    )  # fmt: skip
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["complete"] and summary["config"]["target_yaw"] == 30.0
    assert summary["attrop"]["targeting"]["items"] == 2  # 1 of 5 images x 2 identities
    man = pd.read_parquet(out / "shards" / "shard_00000" / "manifest.parquet")
    # the toy estimator gives every column
    assert man[["yaw", "pitch", "age", "quality"]].notna().all().all()
    assert man["targeted"].sum() == 2 and (man.loc[man["targeted"], "target_quality"] == 25).all()
    # the manifest columns are filled without any AttrOP too
    rc = main(
        [*common, "--out", str(tmp_path / "plain"), "--attributes", str(tmp_path / "attr.pt")]
    )
    assert rc == 0
    capsys.readouterr()
    man = pd.read_parquet(tmp_path / "plain" / "shards" / "shard_00000" / "manifest.parquet")
    assert man[["yaw", "pitch", "age", "quality"]].notna().all().all()
    assert (
        not man["targeted"].any()
        and not (tmp_path / "plain" / "shards" / "shard_00000" / "identities.npy").exists()
    )
    assert (
        plain_read(tmp_path / "plain" / "shards" / "shard_00000" / "train.lmdb")[0]["len"] == 2 * M
    )
    # the same through --params: the hsface, fr_teacher and attribute_estimator sections
    params = {
        "hsface": {"refine_steps": 1, "targeted_share": 0.2, "target_yaw": 30, "target_steps": 2},
        "fr_teacher": {"backbone": "tiny", "checkpoint": str(tmp_path / "teacher.pt")},
        "attribute_estimator": {"checkpoint": str(tmp_path / "attr.pt")},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    rc = main([*common, "--out", str(tmp_path / "p"), "--params", str(tmp_path / "params.yaml")])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["attrop"]["refinement"]["items"] == 2
    man = pd.read_parquet(tmp_path / "p" / "shards" / "shard_00000" / "manifest.parquet")
    assert man["age"].notna().all() and (man.loc[man["targeted"], "target_yaw"] == 30).all()
    # targets without a share, and AttrOP without a teacher: clear errors
    rc = main([*common, "--out", str(tmp_path / "bad"), "--yaw", "45"])
    assert rc == 2 and "target_yaw set but targeted_share is 0" in capsys.readouterr().err
    rc = main([*common, "--out", str(tmp_path / "bad"), "--refine-steps", "2"])
    assert rc == 2 and "needs the teacher" in capsys.readouterr().err
