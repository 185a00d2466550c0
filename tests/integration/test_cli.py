"""The `composer-id` CLI against a real trained registry (the session's SQLite store)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from core.cli import app

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture()
def cli_env(trained, monkeypatch):
    settings, result = trained
    monkeypatch.setenv("COMPOSER_HOME", str(settings.home))
    monkeypatch.setenv("COMPOSER_MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    monkeypatch.setenv("COMPOSER_MLFLOW_ARTIFACT_ROOT", str(settings.mlflow_artifact_root))
    return settings, result


def test_help_explains_every_step():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    commands = ("download", "featurize", "train", "promote", "predict", "evaluate", "info")
    for command in (*commands, "monitor", "simulate", "serve"):
        assert command in result.output


def test_predict_json(cli_env, demo_manifest, tmp_path):
    clip = demo_manifest["path"].iloc[0]
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all")
    result = runner.invoke(app, ["predict", clip, str(bad), "--json", "--top", "2"])
    assert result.exit_code == 1, result.output  # one of two files failed
    payload = json.loads(result.stdout)
    good, failed = payload["results"]
    assert good["kind"] in ("work", "composer", "not_sure", "not_piano") and good["headline"]
    assert len(good["candidates"]) == 2 or good["kind"] == "not_piano"
    assert "notes.wav" in failed["error"]


def test_predict_without_champion_says_how_to_fix(tmp_path, monkeypatch, demo_manifest):
    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path))
    result = runner.invoke(app, ["predict", demo_manifest["path"].iloc[0]])
    assert result.exit_code == 1
    assert "composer-id train" in result.output


def test_evaluate_scores_known_and_lists_unknown(cli_env, demo_manifest, tmp_path):
    _, trained_result = cli_env
    test_ids = set(trained_result.trained.split.query("split == 'test'")["recording_id"])
    rows = demo_manifest[demo_manifest["recording_id"].isin(test_ids)].head(6)
    lines = ["file,composer"] + [
        f"{p},{c}" for p, c in zip(rows["path"], rows["composer"], strict=True)
    ]
    lines.append(f"{rows['path'].iloc[0]},Hildegard")  # a composer the model does not know
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(lines))
    plot = tmp_path / "confusion.png"
    result = runner.invoke(app, ["evaluate", str(labels), "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n_scored"] == 6 and payload["n_unknown"] == 1
    assert payload["unknown_composers"] == ["Hildegard"]
    assert 0 <= payload["accuracy"] <= 1
    assert plot.stat().st_size > 1000


def test_info_lists_versions(cli_env):
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert "champion" in result.output and "composer-classifier" in result.output
