"""Generator analyses: the vector edits, the grids, folder pairing, the driver and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vec2face.cli.main import main
from vec2face.errors import ConfigError, DataFormatError
from vec2face.generator.analysis import (
    HALVING_FACTORS,
    NEGATIVE_FACTORS,
    SCALE_FACTORS,
    AnalysisConfig,
    analyze_generator,
    dimension_sweep,
    interpolate,
    labelled_grid,
    paired_folder_images,
    scale,
)
from vec2face.generator.data import tensor_to_image
from vec2face.generator.quality import embed_images
from vec2face.models import build_backbone, build_generator
from vec2face.models.generator import save_generator_checkpoint

FILES = {"interpolation.png", "scaling.png", "dimension_sweep.png", "chunk_sweep.png",
         "stochasticity.png", "analysis.json"}


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    gen = build_generator("tiny").eval()
    return gen, build_backbone("tiny").eval(), build_backbone("tiny_judge").eval()


@pytest.fixture(scope="module")
def ids():
    return np.random.default_rng(0).standard_normal((3, 512)).astype(np.float32)


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_interpolate_runs_from_a_to_b_in_equal_steps():
    a, b = np.array([1.0, 0.0, 2.0]), np.array([0.0, 1.0, -2.0])
    out = interpolate(a, b, 6)
    assert out.shape == (6, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], a)
    np.testing.assert_allclose(out[-1], b)
    np.testing.assert_allclose(np.diff(out, axis=0), np.tile((b - a) / 5, (5, 1)), atol=1e-6)
    with pytest.raises(ValueError, match="steps must be >= 2"):
        interpolate(a, b, 1)
    with pytest.raises(ValueError, match=r"two \(d,\) vectors"):
        interpolate(a, b[:2])


def test_scale_factors_and_the_paper_rows():
    v = np.array([1.0, -2.0])
    np.testing.assert_allclose(scale(v, [0, 1.5, -200]), [[0, 0], [1.5, -3], [-200, 400]])
    assert SCALE_FACTORS == (0, 1, 1.5, 2, 3, 10, 100, 200)
    assert NEGATIVE_FACTORS == (-0.5, -1, -1.5, -2, -3, -10, -100, -200)
    assert HALVING_FACTORS[:3] == (1, 0.5, 0.25) and len(HALVING_FACTORS) == 8


def test_dimension_sweep_changes_only_the_chosen_coordinates():
    v = np.arange(1.0, 17.0)
    rms = np.linalg.norm(v) / 4.0
    one = dimension_sweep(v, 3, 1, (-2.0, 0.0, 5.0))
    assert one.shape == (3, 16)
    np.testing.assert_allclose(one[:, 3], [-2 * rms, 0, 5 * rms], rtol=1e-6)
    np.testing.assert_allclose(np.delete(one, 3, axis=1), np.tile(np.delete(v, 3), (3, 1)))
    chunk = dimension_sweep(v, 8, 8, (1.0,))
    np.testing.assert_allclose(chunk[0, 8:], rms, rtol=1e-6)
    np.testing.assert_allclose(chunk[0, :8], v[:8])
    with pytest.raises(ValueError, match=r"coordinates \[12, 20\) outside 0..16"):
        dimension_sweep(v, 12, 8)


def test_labelled_grid_places_every_image():
    images = np.zeros((2, 3, 4, 5, 3), np.uint8)
    for r in range(2):
        for c in range(3):
            images[r, c] = 10 * (3 * r + c + 1)
    plain = labelled_grid(images)
    assert plain.shape == (2 * (4 + 2) + 2, 3 * (5 + 2) + 2, 3)
    assert plain[2 + 6 + 1, 2 + 2 * 7 + 1, 0] == 60  # row 1, column 2
    labelled = labelled_grid(images, ["a", "b", "c"], ["r0", "r1"], [["x"] * 3] * 2)
    assert labelled.shape[0] == plain.shape[0] + 12 + 2 * 12
    assert labelled.shape[1] > plain.shape[1]  # room for the row labels


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_paired_folders_match_by_relative_path_across_suffixes(tmp_path):
    rng = np.random.default_rng(0)
    a, b, c = (rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(3))
    _write(tmp_path / "orig" / "p1" / "0.png", a)
    _write(tmp_path / "orig" / "p2" / "0.png", b)
    _write(tmp_path / "gen" / "p2" / "0.png", c)
    names, originals, generated = paired_folder_images(tmp_path / "gen", tmp_path / "orig")
    assert names == ["p2/0"]
    np.testing.assert_array_equal(originals[0], b)
    np.testing.assert_array_equal(generated[0], c)
    _write(tmp_path / "gen" / "p3" / "1.png", c)
    with pytest.raises(ConfigError, match=r"1 generated images have no original .*\['p3/1'\]"):
        paired_folder_images(tmp_path / "gen", tmp_path / "orig")
    (tmp_path / "gen" / "p3" / "1.png").unlink()
    _write(tmp_path / "orig" / "p2" / "0.png", np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(DataFormatError, match=r"p2/0\.png: expected a 112x112 RGB image"):
        paired_folder_images(tmp_path / "gen", tmp_path / "orig")
    with pytest.raises(ConfigError, match="missing: not an image folder"):
        paired_folder_images(tmp_path / "gen", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty: no images"):
        paired_folder_images(tmp_path / "empty", tmp_path / "orig")


def test_analyze_generator_writes_every_grid_and_measures_what_it_drew(models, ids, tmp_path):
    gen, teacher, judge = models
    rng = np.random.default_rng(1)
    bench = rng.integers(0, 256, (20, 112, 112, 3), dtype=np.uint8)
    issame = np.array([True, False] * 5)
    cfg = AnalysisConfig(identities=3, steps=4, repeats=3, sweep_dims=(0, 504), amp=False)
    out = tmp_path / "an"
    summary = analyze_generator(
        gen, teacher, ids, out, cfg, judge=judge, benchmark=(bench, issame),
        compare=("other", bench[0::2], bench[1::2]),
    )
    assert {p.name for p in out.iterdir()} == FILES | {
        "reconstruction.png", "reconstruction_similarity.png"
    }
    assert json.loads((out / "analysis.json").read_text()) == json.loads(json.dumps(summary))
    interp = summary["interpolation"]
    assert interp["pairs"] == [[0, 1], [1, 2], [2, 0]] and len(interp["t"]) == 4
    # t = 0 is identity a itself: the teacher's cosine of its image to a, averaged over pairs
    keep, mask = gen.draw_masks(1, gen.gen_masking, torch.Generator().manual_seed(0), "cpu")
    made = gen.iter_generate(torch.from_numpy(ids), keep.expand(3, -1), mask.expand(3, -1))
    images = tensor_to_image(torch.cat([x for _, x in made]))
    feats = embed_images(teacher, images, amp=False, flip=False)
    expected = np.mean([_cos(feats[i], ids[i]) for i in range(3)])
    assert interp["teacher_cos_to_start"][0] == pytest.approx(expected, abs=1e-4)
    assert interp["teacher_cos_to_end"][-1] == pytest.approx(expected, abs=1e-4)
    assert summary["scaling"]["scale"]["factors"] == list(SCALE_FACTORS)
    # factor 1 is the vector itself
    assert summary["scaling"]["scale"]["teacher_cos_to_vector"][1] == pytest.approx(
        _cos(feats[0], ids[0]), abs=1e-4
    )
    sweep = summary["chunk_sweep"]
    assert sweep["width"] == 8 and np.shape(sweep["teacher_cos_to_vector"]) == (2, 7)
    sto = summary["stochasticity"]
    assert sto["repeats"] == 3 and -1 <= sto["teacher_cos_between_repeats"]["min"] <= 1
    assert summary["reconstruction"]["pairs"] == 10
    j_first = embed_images(judge, bench[0::2], amp=False)
    j_second = embed_images(judge, bench[1::2], amp=False)
    cosines = [_cos(x, y) for x, y in zip(j_first, j_second, strict=True)]
    assert summary["compare"] == {
        "name": "other", "images": 10, "judge_cos_mean": pytest.approx(np.mean(cosines), abs=1e-4)
    }
    # the same seed draws the same grids
    again = analyze_generator(gen, teacher, ids, tmp_path / "again", cfg)
    assert (tmp_path / "again" / "scaling.png").read_bytes() == (out / "scaling.png").read_bytes()
    assert again["stochasticity"] == summary["stochasticity"]


def test_analyze_generator_bad_input_writes_nothing(models, ids, tmp_path):
    gen, teacher, judge = models
    out = tmp_path / "x"
    with pytest.raises(ConfigError, match="at least 2 identity vectors"):
        analyze_generator(gen, teacher, ids[:1], out)
    with pytest.raises(ConfigError, match=r"must be \(N, 512\)"):
        analyze_generator(gen, teacher, ids[:, :256], out)
    with pytest.raises(ConfigError, match="needs a judge"):
        z = np.zeros((1, 112, 112, 3), np.uint8)
        analyze_generator(gen, teacher, ids, out, compare=("o", z, z))
    with pytest.raises(ConfigError, match="sweep dimension 510"):
        analyze_generator(gen, teacher, ids, out, AnalysisConfig(sweep_dims=(510,)))
    bad = ids.copy()
    bad[1, 3] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        analyze_generator(gen, teacher, bad, out)
    with pytest.raises(ConfigError, match="repeats must be >= 1"):
        AnalysisConfig(repeats=0)
    assert not out.exists()


def test_cli_analyze_generator(models, ids, tmp_path, capsys):
    gen, teacher, judge = models
    save_generator_checkpoint(gen, tmp_path / "g.pt")
    torch.save(teacher.state_dict(), tmp_path / "t.pt")
    torch.save(judge.state_dict(), tmp_path / "j.pt")
    np.save(tmp_path / "ids.npy", ids)
    rng = np.random.default_rng(2)
    for i in range(3):
        _write(tmp_path / "orig" / f"{i}.jpg", rng.integers(0, 255, (112, 112, 3), dtype=np.uint8))
        _write(tmp_path / "arc" / f"{i}.png", rng.integers(0, 255, (112, 112, 3), dtype=np.uint8))
    argv = ["analyze", "generator", "--generator", str(tmp_path / "g.pt"),
            "--teacher", str(tmp_path / "t.pt"), "--teacher-backbone", "tiny",
            "--identities", str(tmp_path / "ids.npy"), "--num-identities", "2",
            "--repeats", "2", "--sweep-dims", "0", "--out", str(tmp_path / "out")]
    more = ["--judge", str(tmp_path / "j.pt"), "--judge-backbone", "tiny_judge",
            "--compare", str(tmp_path / "arc"), "--originals", str(tmp_path / "orig"),
            "--compare-name", "Arc2Face"]
    capsys.readouterr()
    assert main(argv + more) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["compare"]["name"] == "Arc2Face" and printed["compare"]["images"] == 3
    assert FILES | {"reconstruction_similarity.png"} == {
        p.name for p in (tmp_path / "out").iterdir()
    }
    # errors are one line, exit status 2
    assert main(argv + ["--compare", str(tmp_path / "arc")]) == 2
    assert "--compare and --originals go together" in capsys.readouterr().err
    assert main([*argv[:-2], "--sweep-dims", "a,b", "--out", str(tmp_path / "o2")]) == 2
    assert "--sweep-dims" in capsys.readouterr().err
    assert main(["analyze", "generator", "--generator", str(tmp_path / "nope.pt"),
                 "--teacher", str(tmp_path / "t.pt"), "--identities", str(tmp_path / "ids.npy"),
                 "--out", str(tmp_path / "o3")]) == 2
    assert "generator checkpoint not found" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()
