"""The long generator run: run-folder chunks through the CLI, their curve, reconstruction
grids, and a chunk's checkpoint exported to the zoo."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vec2face.cli.main import main
from vec2face.config import read_params
from vec2face.errors import ConfigError
from vec2face.generator.long_run import TARGETS, append_curve, plot_curve, read_curve
from vec2face.models import build_generator
from vec2face.training import load_checkpoint
from vec2face.zoo.build import build
from vec2face.zoo.store import PACKAGE_ZOO, manifest

MICRO_PARAMS = Path(__file__).resolve().parents[2] / "orchestration" / "micro_params.yaml"
PAIRS = 20  # the micro benchmark sets hold 20 pairs


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _zoo_with_teacher_and_judge(root: Path) -> Path:
    """A zoo holding the shipped teacher and judge only (no generator entry yet)."""
    root.mkdir(parents=True)
    for name in ("teacher", "judge"):
        for suffix in (".json", ".safetensors"):
            shutil.copyfile(PACKAGE_ZOO / f"{name}{suffix}", root / f"{name}{suffix}")
    return root


def _chunk(run: Path, zoo: Path, capsys) -> dict:
    """One CLI chunk of a toy-long run sized for a test; returns its JSON summary."""
    code = main([
        "generator", "train", "--profile", "toy-long", "--resume", str(run),
        "--max-minutes", "0.0001",  # spent by the first step: the chunk pauses after it
        "--params", str(MICRO_PARAMS), "--zoo-dir", str(zoo), "--score-pairs", str(PAIRS),
        "--batch-size", "4", "--epochs", "2", "--num-workers", "0", "--device", "cpu",
        "--quiet",
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "paused at step" in captured.err
    return json.loads(captured.out)


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("long_run")
    zoo = _zoo_with_teacher_and_judge(base / "zoo")
    return base, zoo, base / "run"


def test_run_folder_chunks_prepare_the_data_pause_and_draw_the_curve(long_run, capsys):
    base, zoo, run = long_run
    first = _chunk(run, zoo, capsys)
    # the data was prepared inside the run folder, as the zoo prepares its generator's
    assert (run / "generator_data" / "train.lmdb").exists()
    assert (run / "benchmarks" / "lfw.bin").is_file()
    assert (first["paused"], first["global_step"], first["chunk_steps"]) == (True, 1, 1)
    second = _chunk(run, zoo, capsys)
    assert (second["global_step"], second["chunk_steps"]) == (2, 1)
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["step_in_epoch"] == 2
    # the curve's time is the one the checkpoint records, which the next chunk counts on from
    assert second["train_seconds"] == pytest.approx(last["train_seconds"])

    rows = read_curve(run / "curve.csv")
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert [int(r["images_seen"]) for r in rows] == [4, 8]
    assert {r["device"] for r in rows} == {"cpu"}
    assert float(rows[1]["wall_s"]) >= float(rows[0]["wall_s"])
    for name in TARGETS:
        assert float(rows[1][name]) == pytest.approx(second["figures"][name], abs=1e-6)
    assert -1 <= float(rows[0]["judge_cosine_recon"]) <= 1
    with Image.open(run / "curve.png") as png:
        assert png.format == "PNG" and png.size[0] > 400
    for step in (1, 2):
        with Image.open(run / "recon" / f"step_{step}.png") as grid:
            assert grid.size == (224, 6 * 112)  # six rows: original | reconstruction
    assert not list(run.rglob("*.tmp*"))  # every file went through a temporary name


def test_zoo_build_from_a_chunk_checkpoint_records_the_long_run(long_run, capsys):
    base, zoo, run = long_run
    if not (run / "checkpoints" / "last.pt").is_file():
        test_run_folder_chunks_prepare_the_data_pause_and_draw_the_curve(long_run, capsys)
    params = read_params(MICRO_PARAMS)
    ckpt = run / "checkpoints" / "last.pt"
    result = build("generator", params, run, zoo, command="test --from", progress=False,
                   source=ckpt)
    assert result.written and result.reason == "new entry"
    entry = manifest("generator", zoo)
    assert entry["training"]["source"] == "long run"
    assert entry["training"]["run"] == str(run.resolve())
    assert entry["training"]["step"] == 2
    assert entry["training"]["recipe"]["epochs"] == 2
    assert entry["architecture"]["discriminator"] == "patchgan_tiny"
    assert set(entry["figures"]) >= set(TARGETS)
    # exported exactly like a built generator: the chain warm-starts from it
    exported = base / "exported"
    assert main(["zoo", "export", "generator", "--out", str(exported),
                 "--zoo-dir", str(zoo)]) == 0
    assert (exported / "generator.pt").is_file() and (exported / "discriminator.pt").is_file()
    capsys.readouterr()

    # kept unless the headline figure improves: the same checkpoint again is not written
    again = build("generator", params, run, zoo, command="again", progress=False, source=ckpt)
    assert not again.written and "does not improve" in again.reason

    other = base / "other.pt"
    state = load_checkpoint(ckpt)
    state["arch"] = build_generator("vit_base_patch16").arch.to_dict()
    torch.save(state, other)
    with pytest.raises(ConfigError, match=r"holds a 'vit_base_patch16' generator .* builds "
                                          r"'tiny'"):
        build("generator", params, run, zoo, command="x", progress=False, source=other)
    assert manifest("generator", zoo)["version"] == 1
    with pytest.raises(ConfigError, match="only the generator"):
        build("judge", params, run, zoo, command="x", progress=False, source=ckpt)


def test_curve_rows_replace_a_rescored_step_and_the_plot_draws_the_targets(tmp_path):
    figures = {name: 0.5 for name in TARGETS}
    csv_path = tmp_path / "curve.csv"
    for step, value in ((10, 0.1), (5, 0.2), (10, 0.3)):
        append_curve(csv_path, {"step": step, "epoch": 0, "images_seen": step * 4,
                                "wall_s": 1.0, "device": "cpu",
                                **figures, "judge_cosine_recon": value})
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["judge_cosine_recon"]) for r in rows] == [("5", "0.2"), ("10", "0.3")]
    assert list(rows[0])[:5] == ["step", "epoch", "images_seen", "wall_s", "device"]
    png = plot_curve(csv_path, tmp_path / "curve.png")
    pixels = np.asarray(Image.open(png).convert("RGB"))
    # the dashed target lines are drawn in matplotlib's tab:red
    assert ((pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)).sum() > 100


@pytest.mark.parametrize(("args", "message"), [
    (["--resume", "RUN", "--out", "ELSEWHERE"], "name two folders"),
    (["--resume"], "--out is required"),
    (["--out", "RUN"], "--data is required"),
    (["--resume", "RUN", "--max-minutes", "0"], "--max-minutes must be > 0"),
])
def test_generator_train_flags_that_do_not_fit_are_one_line_errors(tmp_path, capsys, args,
                                                                  message):
    args = [str(tmp_path / a) if a in ("RUN", "ELSEWHERE") else a for a in args]
    assert main(["generator", "train", "--profile", "toy-long", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written
