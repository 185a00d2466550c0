"""The four kinds of answer on the main job's champion (demo corpus + pack): a known work is
recognised with its position, the confidence is calibrated and says so in MLflow, "sounds
like" never lists the query itself, and non-music gets no composer."""

from __future__ import annotations

import pandas as pd
import pytest

from core import registry
from core.config import REPO_ROOT
from core.identify import identify

pytestmark = pytest.mark.model

KNOWN = "Chopin/chpn_op10_e12"  # a demo clip: an excerpt of an indexed piece


@pytest.fixture(scope="module")
def champion(trained):
    settings, _ = trained
    model, _ = registry.load_version(settings)
    return model


def test_a_known_work_is_recognised_where_the_clip_sits(champion, demo_manifest):
    row = demo_manifest.set_index("recording_id").loc[KNOWN]
    verdict = identify(champion, row["path"])
    assert verdict.kind == "work"
    assert verdict.composer == "Chopin"
    assert "Etudes Opus 10 12" in verdict.work.title
    assert verdict.work.position_s == pytest.approx(float(row["start_s"]), abs=6.0)
    assert verdict.headline.startswith("This sounds like Chopin's")
    # the style classifier's answer is still given beside the work
    assert len(verdict.candidates) >= 3
    assert len(verdict.heard) > 100  # the notes, for the piano roll


def test_sounds_like_never_lists_the_query_itself(champion, demo_manifest):
    for _, row in demo_manifest.iloc[::40].iterrows():
        verdict = identify(champion, row["path"])
        listed = [n.recording_id for n in verdict.sounds_like]
        assert row["recording_id"] not in listed
        assert all(n.distance > 0 for n in verdict.sounds_like)


def test_non_music_gets_no_composer(champion):
    verdict = identify(champion, REPO_ROOT / "data" / "negatives" / "drums.ogg")
    assert verdict.kind == "not_piano"
    assert verdict.composer is None and verdict.candidates == []
    assert verdict.work is None


def test_calibration_is_fitted_out_of_fold_and_logged(trained, champion):
    settings, result = trained
    calibration = champion.calibration
    assert calibration is not None and calibration.recordings > 50
    # fitted where it was measured: the out-of-fold error falls
    assert calibration.ece_calibrated < calibration.ece_raw
    client = registry.connect(settings)
    run = client.get_run(result.run_id)
    metrics = run.data.metrics
    assert {"test_ece", "test_ece_raw", "calibration_temperature"} <= set(metrics)
    assert metrics["calibration_temperature"] == pytest.approx(calibration.temperature)
    plots = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert "plots/reliability.png" in plots


def test_calibrated_probabilities_are_proper(champion, demo_manifest):
    verdict = identify(champion, demo_manifest["path"].iloc[5])
    total = sum(verdict.probabilities.values())
    assert total == pytest.approx(1.0, abs=1e-6)
    frame = pd.Series(verdict.probabilities)
    assert frame.is_monotonic_decreasing
