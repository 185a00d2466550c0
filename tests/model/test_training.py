"""The main job end to end on the demo corpus into a real (SQLite) MLflow store."""

from __future__ import annotations

import json

import mlflow
import pytest

from core import pipeline, registry
from core.identify import identify
from core.train import PRIMARY_METRIC

pytestmark = pytest.mark.model


def test_champion_registered_and_well_above_chance(trained):
    settings, result = trained
    client = registry.connect(settings)
    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    assert str(champion.version) == result.version
    assert result.promotion.promoted and result.promotion.reason == registry.FIRST_CHAMPION
    chance = 1 / len(result.trained.model.labels)
    assert result.trained.metrics["recording_accuracy"] >= 2 * chance
    assert result.trained.metrics["recording_macro_f1"] > chance
    assert champion.tags["promotion"] == "promoted"


def test_selection_uses_cv_not_the_test_set(trained):
    _, result = trained
    best = max(result.trained.cv, key=lambda s: (s.recording_macro_f1, s.recording_accuracy))
    assert result.trained.model.candidate == best.name
    assert {s.name for s in result.trained.cv} >= {"random_forest", "logistic_regression"}


def test_run_logs_what_is_needed_to_trust_the_model(trained):
    settings, result = trained
    client = registry.connect(settings)
    run = client.get_run(result.run_id)
    assert run.data.params["feature_schema"] == settings.features.schema_id
    assert run.data.metrics[f"test_{PRIMARY_METRIC}"] == pytest.approx(
        result.trained.metrics[PRIMARY_METRIC]
    )
    artifacts = {
        a.path
        for folder in ("plots", "evaluation")
        for a in client.list_artifacts(result.run_id, folder)
    }
    assert {"plots/confusion_matrix.png", "plots/feature_importance.png"} <= artifacts
    assert "evaluation/dataset_split.json" in artifacts
    split_path = client.download_artifacts(result.run_id, "evaluation/dataset_split.json")
    with open(split_path) as handle:
        works = json.load(handle)
    assert works["test"] and not set(works["train"]) & set(works["test"])
    assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"demo-train", "demo-test"}
    info = mlflow.models.get_model_info(f"models:/{settings.model_name}/{result.version}")
    assert info.signature is not None  # from the pyfunc's type hints: audio in
    (audio,) = info.signature.inputs.to_dict()
    assert set(audio["properties"]) == {"path", "samples", "sample_rate"}


def test_model_carries_its_feature_config_and_serves(trained, demo_manifest):
    settings, result = trained
    model, version = registry.load_version(settings)
    assert str(version.version) == result.version
    assert model.feature_config == settings.features
    test_ids = result.trained.split.query("split == 'test'")["recording_id"]
    clip = demo_manifest.set_index("recording_id").loc[test_ids.iloc[0], "path"]
    verdict = identify(model, clip, limits=settings.audio)
    assert verdict.kind in ("work", "composer", "not_sure")  # demo clips are known works
    assert verdict.candidates[0].composer in model.labels
    assert sum(verdict.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert len(verdict.segments) == 3  # 30 s clip, 10 s segments
    distances = [n.distance for n in verdict.sounds_like]
    assert len(distances) == 5 and distances == sorted(distances)


def test_worse_model_is_not_promoted(trained):
    settings, first = trained
    worse = pipeline.run(settings, "demo", candidates=("dummy",))
    client = registry.connect(settings)
    assert not worse.promotion.promoted
    assert "does not beat champion" in worse.promotion.reason
    assert str(client.get_model_version_by_alias(settings.model_name, "champion").version) == (
        first.version
    )
    assert client.get_model_version(settings.model_name, worse.version).tags["promotion"] == (
        "rejected"
    )


def test_failed_gate_leaves_the_champion_in_place(trained):
    settings, first = trained
    client = registry.connect(settings)
    before = registry.champion(client, settings).version

    def broken_scorer(_model):
        raise RuntimeError("evaluation crashed")

    new_version = registry.register(client, settings, f"runs:/{first.run_id}/model", first.run_id)
    with pytest.raises(RuntimeError, match="evaluation crashed"):
        registry.promote_if_better(client, settings, new_version, 1.0, broken_scorer)
    assert registry.champion(client, settings).version == before
