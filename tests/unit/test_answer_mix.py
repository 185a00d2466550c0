"""Each kind of answer is counted per window; many non-music uploads are reported as input
drift without asking for a retrain."""

import pandas as pd
import pytest

from core import answer_mix, monitor
from core.config import Settings

pytestmark = pytest.mark.unit


def _window(kinds: list[str | None], composers: list[str | None]) -> pd.DataFrame:
    return pd.DataFrame({"kind": kinds, "composer": composers})


def test_every_kind_is_counted_and_old_rows_count_as_composer():
    frame = _window(
        ["composer", "not_piano", "not_sure", "work", None, "not_piano"],
        ["Chopin", None, "Haydn", "Chopin", "Liszt", None],
    )
    kinds = answer_mix.answer_kinds(frame)
    assert kinds == {"work": 1, "composer": 2, "not_sure": 1, "not_piano": 2}
    assert answer_mix.not_piano_share(kinds) == pytest.approx(2 / 6, abs=1e-4)
    assert answer_mix.composer_mix(frame["composer"]) == {
        "Chopin": 0.5,
        "Haydn": 0.25,
        "Liszt": 0.25,
    }


def test_an_empty_window_has_no_share():
    kinds = answer_mix.answer_kinds(_window([], []))
    assert sum(kinds.values()) == 0 and answer_mix.not_piano_share(kinds) is None


def _summary(not_piano_share: float | None) -> dict:
    return {
        "status": monitor.OK,
        "drift_share": 0.05,
        "drifted_columns": 5,
        "n_columns": 100,
        "prediction_drift": False,
        "prediction_drift_score": 0.4,
        "prediction_drift_method": "chi-square p_value",
        "feedback_accuracy": None,
        "feedback_rows": 0,
        "not_piano_share": not_piano_share,
        "max_not_piano": 0.25,
    }


def test_many_non_music_uploads_are_input_drift_but_no_retrain():
    settings = Settings()
    flagged = monitor.decide(settings, _summary(0.4))
    assert flagged["decision"] == monitor.NO_ACTION
    assert "input drift: 40% of uploads were not piano music" in flagged["reason"]
    quiet = monitor.decide(settings, _summary(0.1))
    assert "input drift" not in quiet["reason"]
    assert "input drift" not in monitor.decide(settings, _summary(None))["reason"]
