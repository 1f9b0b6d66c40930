"""Benchmark table and the champion promotions of 'fr-model' and 'vec2face-generator' in
the MLflow registry."""

from __future__ import annotations

import pytest

from assets_defs._registry import CHAMPION, REGISTERED_FR_MODEL, REGISTERED_GENERATOR, promotion
from assets_defs.evaluation import promote_fr_model, promote_generator, report_config
from assets_defs.resources import MlflowResource
from vec2face.fr.benchmark import accuracy_table, combined_table

RESULTS = {
    "teacher": {"lfw": {"accuracy": 0.9, "accuracy_std": 0.01}, "average": {"accuracy": 0.9}},
    "hsface": {"lfw": {"accuracy": 0.8, "accuracy_std": 0.02}, "average": {"accuracy": 0.8}},
}


def test_promotion_takes_the_best_candidate_only_when_it_beats_the_champion():
    assert promotion({"3": 0.7, "4": 0.8}, None) == "4"
    assert promotion({"3": 0.7, "4": 0.8}, ("1", 0.75)) == "4"
    assert promotion({"3": 0.7, "4": 0.8}, ("1", 0.8)) is None  # a tie keeps the champion
    assert promotion({"3": 0.8, "4": 0.8}, None) == "4"  # equal averages: the newer version
    assert promotion({}, ("1", 0.1)) is None


def test_accuracy_and_markdown_tables_have_a_row_per_model():
    table = accuracy_table(RESULTS)
    assert table[["model", "set"]].values.tolist() == [
        ["teacher", "lfw"],
        ["teacher", "average"],
        ["hsface", "lfw"],
        ["hsface", "average"],
    ]
    lines = combined_table(RESULTS).splitlines()
    assert lines[0] == "| Model | LFW | Avg. |" and len(lines) == 4
    assert lines[2].startswith("| teacher | 90.00") and lines[3].startswith("| hsface | 80.00")


def _register(mlflow: MlflowResource, md5: str, trained_on: str) -> str:
    with mlflow.start_run("fr_model") as tracker:
        run_id = tracker.run_id
    return mlflow.register_model(
        REGISTERED_FR_MODEL, run_id, trained_on, {"dvc_md5": md5, "trained_on": trained_on}
    )


def test_promote_fr_model_moves_the_champion_only_to_a_better_new_version(tmp_path):
    mlflow = MlflowResource(root=str(tmp_path))
    first = {name: _register(mlflow, "a.dir", name) for name in ("webface", "hsface")}
    decision = promote_fr_model(mlflow, "a.dir", {"webface": 0.6, "hsface": 0.7})
    assert decision["promoted"] == first["hsface"] and decision["previous_champion"] is None
    assert str(mlflow.alias_version(REGISTERED_FR_MODEL, CHAMPION).version) == first["hsface"]

    worse = {name: _register(mlflow, "b.dir", name) for name in ("webface", "hsface")}
    decision = promote_fr_model(mlflow, "b.dir", {"webface": 0.65, "hsface": 0.68})
    assert decision["promoted"] is None and decision["champion"] == first["hsface"]
    assert str(mlflow.alias_version(REGISTERED_FR_MODEL, CHAMPION).version) == first["hsface"]
    tagged = {
        str(v.version): v.tags.get("benchmark_average")
        for v in mlflow.model_versions(REGISTERED_FR_MODEL)
    }
    assert float(tagged[worse["webface"]]) == pytest.approx(0.65)

    better = _register(mlflow, "c.dir", "hsface")
    decision = promote_fr_model(mlflow, "c.dir", {"hsface": 0.71, "webface": 0.5})
    assert decision == {
        "candidates": {better: 0.71},
        "previous_champion": first["hsface"],
        "promoted": better,
        "champion": better,
    }
    assert str(mlflow.alias_version(REGISTERED_FR_MODEL, CHAMPION).version) == better


def _register_generator(mlflow: MlflowResource, md5: str) -> str:
    with mlflow.start_run("fmae_generator") as tracker:
        run_id = tracker.run_id
    return mlflow.register_model(REGISTERED_GENERATOR, run_id, "model", {"dvc_md5": md5})


def test_the_generator_champion_is_the_one_whose_hsface_trains_the_better_model(tmp_path):
    mlflow = MlflowResource(root=str(tmp_path))
    assert promote_generator(mlflow, None, 0.9)["champion"] is None  # nothing recorded
    first = _register_generator(mlflow, "g1.dir")
    assert promote_generator(mlflow, "g1.dir", 0.62)["promoted"] == first
    second = _register_generator(mlflow, "g2.dir")
    decision = promote_generator(mlflow, "g2.dir", 0.61)
    assert decision["promoted"] is None and decision["champion"] == first
    third = _register_generator(mlflow, "g3.dir")
    decision = promote_generator(mlflow, "g3.dir", 0.64)
    assert decision["previous_champion"] == first and decision["promoted"] == third
    champion = mlflow.alias_version(REGISTERED_GENERATOR, CHAMPION)
    assert str(champion.version) == third
    assert float(champion.tags["hsface_fr_average"]) == pytest.approx(0.64)
    tags = {str(v.version): v.tags for v in mlflow.model_versions(REGISTERED_GENERATOR)}
    assert float(tags[second]["hsface_fr_average"]) == pytest.approx(0.61)


def test_report_config_adds_the_chains_teacher_only_when_the_section_names_one(tmp_path):
    inputs = {n: tmp_path / n for n in ("fr_judge", "fr_teacher", "attribute_estimator")}
    params = {"dataset_reports": {"judge": "elsewhere/judge", "max_images": 40, "bf16": True}}
    config = report_config(params, inputs)
    assert config.teacher is None
    assert config.judge == str(tmp_path / "fr_judge")  # the chain's judge, not the literal
    assert config.attribute_estimator.checkpoint == str(
        tmp_path / "attribute_estimator" / "model.pt"
    )
    assert (config.max_images, config.bf16) == (40, True)
    params["dataset_reports"]["teacher"] = "outputs/tiny/fr_teacher"
    assert report_config(params, inputs).teacher == str(tmp_path / "fr_teacher")
