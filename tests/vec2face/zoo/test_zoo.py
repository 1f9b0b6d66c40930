"""The toy zoo: building, verified loading, export, verification and the shipped entries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from vec2face import zoo
from vec2face.cli.main import main
from vec2face.config import read_params
from vec2face.errors import ConfigError
from vec2face.fr.extract import load_trained_backbone
from vec2face.utils.hashing import file_sha256
from vec2face.zoo.build import build, on_recorded_sets
from vec2face.zoo.figures import improves, out_of_tolerance, regressions
from vec2face.zoo.store import PACKAGE_ZOO, ZooError
from vec2face.zoo.verify import rescore

MICRO_PARAMS = Path(__file__).resolve().parents[2] / "orchestration" / "micro_params.yaml"


@pytest.fixture(scope="module")
def micro_zoo(tmp_path_factory):
    """Every zoo entry built on the micro profile (seconds-sized pools, one epoch)."""
    base = tmp_path_factory.mktemp("zoo")
    params = read_params(MICRO_PARAMS)
    results = {
        name: build(name, params, base / "work", base / "zoo", command=f"test build {name}",
                    progress=False)
        for name in zoo.ZOO_NAMES
    }
    return base, results


def _copy_zoo(micro_zoo, tmp_path) -> Path:
    base, _ = micro_zoo
    return Path(shutil.copytree(base / "zoo", tmp_path / "zoo"))


def test_build_writes_every_entry_with_its_manifest(micro_zoo):
    base, results = micro_zoo
    assert zoo.available(base / "zoo") == list(zoo.ZOO_NAMES)
    for name, result in results.items():
        m = zoo.manifest(name, base / "zoo")
        assert result.written and result.reason == "new entry"
        assert m["version"] == 1 and m["command"] == f"test build {name}"
        assert m["sha256"] == file_sha256(base / "zoo" / f"{name}.safetensors")
        assert m["bytes"] == (base / "zoo" / f"{name}.safetensors").stat().st_size
        assert m["figures"] and set(m["tolerances"]) == set(m["figures"])
        assert len(m["code_commit"]) >= 7 and m["params"] and m["data"]["train"]
        assert all(n > 0 for n in m["parameters"].values())
    fr = zoo.manifest("teacher", base / "zoo")
    assert {"lfw", "cfp_fp", "agedb_30", "calfw", "cplfw", "average"} <= set(fr["figures"])
    assert fr["params"]["fr_teacher_train"]["epochs"] == 1
    assert fr["data"]["train"][0] == {"pool": "teacher", "seed": 0, "identities": 6,
                                      "images_per_identity": 4}
    assert {"yaw_mae", "age_mae"} <= set(zoo.manifest("attributes", base / "zoo")["figures"])
    gen = zoo.manifest("generator", base / "zoo")
    assert {"judge_cosine_recon", "identity_preservation", "sharpness_ratio", "face_mae"} <= set(
        gen["figures"]
    )
    assert set(gen["parameters"]) == {"generator", "discriminator"}


def test_loaded_models_are_ready_and_match_their_training_outputs(micro_zoo):
    base, _ = micro_zoo
    root = base / "zoo"
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    teacher = zoo.load("teacher", root)
    assert not teacher.training
    with torch.no_grad():
        emb = teacher(x)
        trained = load_trained_backbone(base / "work" / "teacher")(x)
    assert emb.shape == (2, 512)
    # float16 storage: the same model up to half-precision rounding of its weights
    assert torch.nn.functional.cosine_similarity(emb, trained).min() > 0.999
    generator = zoo.load("generator", root)
    images = generator.generate(torch.randn(3, 512), seed=0)
    assert images.shape == (3, 3, 112, 112) and images.min() >= -1 and images.max() <= 1
    disc = zoo.load_discriminator(root)
    assert not disc.training and disc(images).ndim == 4
    estimates = zoo.load("attributes", root)(x)
    assert set(estimates) == {"yaw", "pitch", "roll", "age", "quality"}
    trunk = zoo.load("perceptual", root)
    assert not trunk.training and trunk.classify is None
    assert [m.shape[1] for m in trunk.stages(x)] == list(trunk.cfg.widths)
    assert {"identity_r2", "prefers_sharp"} <= set(zoo.manifest("perceptual", root)["figures"])


def test_generation_is_deterministic_per_seed(micro_zoo):
    base, _ = micro_zoo
    generator = zoo.load("generator", base / "zoo")
    v = torch.randn(2, 512, generator=torch.Generator().manual_seed(1))
    assert torch.equal(generator.generate(v, seed=3), generator.generate(v, seed=3))


def test_wrong_sha256_is_refused_naming_the_file(micro_zoo, tmp_path):
    root = _copy_zoo(micro_zoo, tmp_path)
    path = root / "judge.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ZooError, match="sha256") as err:
        zoo.load("judge", root)
    assert str(path) in str(err.value) and "vec2face zoo build judge" in str(err.value)


def test_truncated_file_is_refused_naming_the_file(micro_zoo, tmp_path):
    root = _copy_zoo(micro_zoo, tmp_path)
    path = root / "teacher.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ZooError, match="truncated") as err:
        zoo.load("teacher", root)
    assert str(path) in str(err.value)


def test_missing_entry_names_the_file_and_the_rebuild_command(tmp_path):
    with pytest.raises(ZooError) as err:
        zoo.load("attributes", tmp_path)
    assert str(tmp_path / "attributes.json") in str(err.value)
    assert "vec2face zoo build attributes" in str(err.value)


def test_missing_weights_beside_a_manifest(micro_zoo, tmp_path):
    root = _copy_zoo(micro_zoo, tmp_path)
    (root / "generator.safetensors").unlink()
    with pytest.raises(ZooError, match="not found") as err:
        zoo.load("generator", root)
    assert str(root / "generator.safetensors") in str(err.value)


def test_unknown_name_lists_the_known_ones(micro_zoo):
    with pytest.raises(Exception, match="known: teacher, judge, attributes, perceptual, generator"):
        zoo.load("glint360k", micro_zoo[0] / "zoo")


def test_another_architecture_than_configured_names_both(micro_zoo):
    with pytest.raises(ZooError) as err:
        zoo.load("judge", micro_zoo[0] / "zoo", arch="r100")
    assert "'tiny_judge'" in str(err.value) and "'r100'" in str(err.value)


def test_export_writes_the_pipeline_layouts(micro_zoo, tmp_path):
    base, _ = micro_zoo
    root = base / "zoo"
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    path = zoo.export("teacher", tmp_path / "t", root)
    assert path.name == "backbone.pt"
    assert json.loads((tmp_path / "t" / "backbone.json").read_text())["backbone"] == "tiny"
    with torch.no_grad():
        assert torch.equal(load_trained_backbone(tmp_path / "t")(x), zoo.load("teacher", root)(x))
    assert json.loads((tmp_path / "t" / "zoo_manifest.json").read_text())["name"] == "teacher"

    from vec2face.attributes.estimators import load_toy_estimator
    from vec2face.models import load_generator_checkpoint

    est = load_toy_estimator(zoo.export("attributes", tmp_path / "a", root))
    with torch.no_grad():
        assert torch.equal(est(x)["yaw"], zoo.load("attributes", root)(x)["yaw"])
    gen, report = load_generator_checkpoint(zoo.export("generator", tmp_path / "g", root))
    v = torch.randn(2, 512)
    assert torch.equal(gen.generate(v, seed=0), zoo.load("generator", root).generate(v, seed=0))
    assert report.metadata["zoo_version"] == 1 and (tmp_path / "g" / "discriminator.pt").is_file()


def test_rebuild_replaces_only_when_the_headline_improves(micro_zoo, tmp_path):
    base, _ = micro_zoo
    root = _copy_zoo(micro_zoo, tmp_path)
    params = read_params(MICRO_PARAMS)
    before = (root / "teacher.safetensors").read_bytes()
    # the same recipe from the same (finished) work folder: same figures, not an improvement
    kept = build("teacher", params, base / "work", root, command="again", progress=False)
    assert not kept.written and "does not improve" in kept.reason
    assert (root / "teacher.safetensors").read_bytes() == before
    forced = build("teacher", params, base / "work", root, command="again", force=True,
                   progress=False)
    assert forced.written and zoo.manifest("teacher", root)["version"] == 2
    # equal weights give equal bytes
    assert (root / "teacher.safetensors").read_bytes() == before


def test_a_rebuild_is_measured_on_the_sets_of_the_shipped_entry(micro_zoo, tmp_path):
    base, _ = micro_zoo
    root = base / "zoo"
    params = read_params(MICRO_PARAMS)
    recorded = zoo.manifest("teacher", root)["data"]["heldout"]["benchmarks"]
    chain = {**params, "benchmarks": {**(params.get("benchmarks") or {}), "pairs": 2 * 10 * 7}}
    assert on_recorded_sets(chain, "teacher", root)["benchmarks"] == recorded
    assert on_recorded_sets(chain, "generator", root)["benchmarks"] == zoo.manifest(
        "generator", root)["data"]["heldout"]["benchmarks"]
    # an entry the zoo does not hold yet is measured on the params' own sets
    (tmp_path / "empty").mkdir()
    assert on_recorded_sets(chain, "teacher", tmp_path / "empty") is chain


def test_verify_passes_on_the_built_zoo_and_fails_when_a_figure_is_off(micro_zoo, tmp_path,
                                                                       capsys):
    base, _ = micro_zoo
    root = _copy_zoo(micro_zoo, tmp_path)
    work = str(base / "work")
    assert main(["zoo", "verify", "teacher", "attributes", "--zoo-dir", str(root), "--work",
                 work, "--quiet"]) == 0
    assert "teacher: ok" in capsys.readouterr().out
    m = json.loads((root / "attributes.json").read_text())
    m["figures"]["yaw_mae"] += 1.0
    (root / "attributes.json").write_text(json.dumps(m))
    assert main(["zoo", "verify", "attributes", "--zoo-dir", str(root), "--work", work,
                 "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "attributes: FAILED" in captured.out and "yaw_mae recorded" in captured.err


def test_rescore_records_the_chain_sets_figures_and_keeps_the_weights(micro_zoo, tmp_path,
                                                                     capsys):
    from vec2face.fr.benchmark import recorded_results
    from vec2face.toyfaces.benchmarks import BenchmarksConfig

    base, _ = micro_zoo
    root = _copy_zoo(micro_zoo, tmp_path)
    before = zoo.manifest("teacher", root)
    weights = file_sha256(root / "teacher.safetensors")
    chain = {**read_params(MICRO_PARAMS)}
    chain["benchmarks"] = {**chain["benchmarks"], "pairs": 40}
    params_file = tmp_path / "params.yaml"
    params_file.write_text(json.dumps(chain))  # JSON is YAML
    assert main(["zoo", "rescore", "teacher", "--params", str(params_file), "--zoo-dir",
                 str(root), "--work", str(tmp_path / "work"), "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)["teacher"]
    after = zoo.manifest("teacher", root)
    assert after["data"]["heldout"]["benchmarks"]["pairs"] == 40 == out["benchmarks"]["pairs"]
    assert after["params"]["benchmarks"]["pairs"] == 40
    assert after["figures"] == out["figures"] and set(after["figures"]) == set(before["figures"])
    assert after["earlier_figures"] == [{
        "benchmarks": before["data"]["heldout"]["benchmarks"],
        "figures": before["figures"], "figures_float32": before["figures_float32"]}]
    assert "figures_float32" not in after and after["rescored"]["command"].startswith(
        "vec2face zoo rescore teacher")
    # the weights, their version and digest are untouched, and still load
    assert file_sha256(root / "teacher.safetensors") == weights == after["sha256"]
    assert after["version"] == before["version"]
    zoo.load("teacher", root)
    # the chain now reuses the row on its own sets, and no longer on the old ones
    exported = tmp_path / "teacher_out"
    zoo.export("teacher", exported, root)
    on_new = BenchmarksConfig(**chain["benchmarks"])
    on_old = BenchmarksConfig(**read_params(MICRO_PARAMS)["benchmarks"])
    assert recorded_results(exported, on_new)["average"]["accuracy"] == after["figures"]["average"]
    assert recorded_results(exported, on_old) is None
    # verify re-measures on the sets now recorded
    assert main(["zoo", "verify", "teacher", "--zoo-dir", str(root), "--work",
                 str(tmp_path / "work"), "--quiet"]) == 0
    # only the FR entries are measured on the benchmark sets
    with pytest.raises(ConfigError, match="rescore attributes: a attributes entry"):
        rescore("attributes", chain, tmp_path / "work", root, command="test", progress=False)


def test_tolerance_and_improvement_rules():
    assert out_of_tolerance("fr", {"lfw": 0.95}, {"lfw": 0.953}) == {}
    assert set(out_of_tolerance("fr", {"lfw": 0.95, "average": 0.9}, {"lfw": 0.96})) == {
        "lfw", "average"}  # moved, and missing
    assert improves("fr", {"average": 0.95}, {"average": 0.94})
    assert not improves("fr", {"average": 0.942}, {"average": 0.94})
    assert improves("attributes", {"age_mae": 4.0}, {"age_mae": 4.6})
    assert not improves("attributes", {"age_mae": 4.7}, {"age_mae": 4.6})
    # a sharper generator that loses identity is not better; one within tolerance is
    old = {"sharpness_ratio": 0.0064, "judge_cosine_recon": 0.777, "identity_preservation": 0.98}
    assert improves("generator", {**old, "sharpness_ratio": 0.0135,
                                  "judge_cosine_recon": 0.769}, old)
    worse = {**old, "sharpness_ratio": 0.0174, "judge_cosine_recon": 0.674}
    assert not improves("generator", worse, old)
    assert regressions("generator", worse, old) == {
        "judge_cosine_recon": (0.777, 0.674, 0.01)}
    assert not improves("generator", {**old, "sharpness_ratio": 0.0080}, old)  # within 0.002


def test_zoo_list_command(micro_zoo, capsys):
    assert main(["zoo", "list", "--zoo-dir", str(micro_zoo[0] / "zoo")]) == 0
    out = capsys.readouterr().out
    assert "teacher     v1 tiny" in out and "generator   v1 tiny" in out


# ----------------------------------------------------------------------------- shipped zoo


def test_every_shipped_entry_loads_and_the_zoo_stays_small():
    names = zoo.available(PACKAGE_ZOO)
    total = sum((PACKAGE_ZOO / f"{n}.safetensors").stat().st_size for n in names)
    assert total <= 40 * 2**20
    for name in names:
        model = zoo.load(name, PACKAGE_ZOO)  # checks size and sha256
        assert not model.training
        assert zoo.manifest(name, PACKAGE_ZOO)["command"].startswith(f"vec2face zoo build {name}")
