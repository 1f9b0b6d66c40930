"""Report figures: valid PNGs, several datasets per figure, atomic writes, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vec2face.reports import (
    genuine_impostor,
    identity_leakage,
    inter_class_noise,
    intra_class_noise,
    plot_age,
    plot_distributions,
    plot_genuine_impostor,
    plot_inter_class_similarity,
    plot_intra_class_similarity,
    plot_leakage_similarity,
    plot_pose,
)


@pytest.fixture(scope="module")
def datasets():
    rng = np.random.default_rng(0)
    out = {}
    for name, noise in (("synthetic", 0.8), ("real", 1.3)):
        base = rng.standard_normal((30, 16))
        labels = np.repeat(np.arange(30), 6)
        features = base[labels] + noise * rng.standard_normal((labels.size, 16))
        intra = intra_class_noise(features, labels)
        out[name] = {
            "intra": intra,
            "inter": inter_class_noise(intra.centers),
            "gi": genuine_impostor(features, labels, impostor_pairs=3000),
            "leak": identity_leakage(intra.centers, base),
        }
    return out


def _assert_png(path, min_width=600):
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] >= min_width
        # Something was drawn: a blank canvas has a single colour.
        assert len(img.convert("L").getcolors(maxcolors=1 << 16) or ()) > 10
    leftovers = [p for p in path.parent.iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers


def test_similarity_figures_accept_results_and_arrays(tmp_path, datasets):
    plot_intra_class_similarity(
        {k: v["intra"] for k, v in datasets.items()}, tmp_path / "intra.png"
    )
    plot_inter_class_similarity(
        {"synthetic": datasets["synthetic"]["inter"], "real": datasets["real"]["inter"].max_cosine},
        tmp_path / "inter.png",
    )
    plot_leakage_similarity({k: v["leak"] for k, v in datasets.items()}, tmp_path / "leak.png")
    plot_genuine_impostor(
        {
            "synthetic": datasets["synthetic"]["gi"],
            "real": (datasets["real"]["gi"].genuine, datasets["real"]["gi"].impostor),
        },
        tmp_path / "gi.png",
    )
    for name in ("intra", "inter", "leak", "gi"):
        _assert_png(tmp_path / f"{name}.png")


def test_pose_and_age_figures(tmp_path):
    rng = np.random.default_rng(1)
    yaw = np.append(rng.normal(0, 30, 500), np.nan)  # a failed estimate is dropped, not plotted
    plot_pose(
        {
            "a": {"yaw": yaw, "pitch": rng.normal(0, 10, 501)},
            "b": (rng.normal(0, 15, 300), rng.normal(0, 5, 300)),
        },
        tmp_path / "pose.png",
    )
    _assert_png(tmp_path / "pose.png", min_width=1200)
    plot_age({"a": rng.normal(35, 12, 400), "b": rng.gamma(8, 4, 300)}, tmp_path / "age.png")
    _assert_png(tmp_path / "age.png")


def test_existing_file_is_replaced_and_bad_input_leaves_it(tmp_path):
    path = tmp_path / "fig.png"
    path.write_bytes(b"old")
    plot_distributions({"x": [0.1, 0.2, 0.3]}, path, title="t", xlabel="x", threshold=0.15)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = path.read_bytes()
    with pytest.raises(ValueError, match="no dataset"):
        plot_distributions({}, path, title="t", xlabel="x")
    with pytest.raises(ValueError, match="dataset 'x': no finite value"):
        plot_age({"x": [np.nan]}, path)
    with pytest.raises(ValueError, match="lacks \\['pitch'\\]"):
        plot_pose({"x": {"yaw": [1.0]}}, path)
    assert path.read_bytes() == before
