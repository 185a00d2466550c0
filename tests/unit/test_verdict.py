"""The verdict rules: mean of segment probabilities, the kind of answer, the words shown,
and the typed dict form the API returns."""

from __future__ import annotations

import numpy as np
import pytest

from core import metrics
from core.verdict import (
    KINDS,
    Candidate,
    Verdict,
    WorkMatch,
    decide_kind,
    headline,
    recording_probabilities,
)

pytestmark = pytest.mark.unit

LABELS = ["Bach", "Chopin", "Mozart"]


def test_a_recording_is_the_mean_of_its_segments():
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    one = recording_probabilities(proba, labels=LABELS)
    assert one.shape == (1, 3)
    np.testing.assert_allclose(one.iloc[0].to_numpy(), proba.mean(axis=0))
    grouped = recording_probabilities(proba, ["b", "a", "b"], LABELS)
    assert list(grouped.index) == ["a", "b"] and list(grouped.columns) == LABELS
    np.testing.assert_allclose(grouped.loc["b"].to_numpy(), [0.35, 0.2, 0.45])
    # training's per-recording scores use the same rule
    assert metrics.aggregate_recordings(proba, ["b", "a", "b"], LABELS).equals(grouped)


@pytest.mark.parametrize(
    ("top", "piano", "work", "kind"),
    [
        (0.9, False, True, "not_piano"),  # not piano beats everything
        (0.2, True, True, "work"),
        (0.34, True, False, "not_sure"),
        (0.35, True, False, "composer"),
        (0.9, True, False, "composer"),
    ],
)
def test_the_kind_of_an_answer(top, piano, work, kind):
    assert decide_kind(top, piano, 0.35, work_found=work) == kind
    assert kind in KINDS


def test_each_kind_in_plain_words():
    ranked = [Candidate(composer=c, probability=p) for c, p in [("Haydn", 0.3), ("Mozart", 0.2)]]
    ranked.append(Candidate(composer="Clementi", probability=0.1))
    assert headline("not_sure", ranked) == "Not sure: Haydn, Mozart or Clementi"
    chopin = [Candidate(composer="Chopin", probability=0.7231)]
    assert headline("composer", chopin) == "Probably Chopin (72 %)"
    assert headline("not_piano", [], "sounds like noise") == (
        "This does not sound like piano music (sounds like noise)"
    )
    etude = WorkMatch(title="Étude Op. 10 No. 3", composer="Chopin", position_s=40.4)
    assert headline("work", chopin, work=etude) == (
        "This sounds like Chopin's Étude Op. 10 No. 3, from about 0:40"
    )


def test_the_dict_form_round_trips_and_leaves_the_features_out():
    verdict = Verdict(
        kind="composer",
        headline="Probably Chopin (72 %)",
        composer="Chopin",
        probability=0.72,
        candidates=[Candidate(composer="Chopin", probability=0.72)],
        probabilities={"Chopin": 0.72, "Bach": 0.28},
        features=[1.0, 2.0],
        prediction_id="abc",
    )
    data = verdict.as_dict()
    assert "features" not in data and data["kind"] == "composer" and data["work"] is None
    back = Verdict.model_validate(data)
    assert back == verdict.model_copy(update={"features": []})
    with pytest.raises(ValueError):
        Verdict.model_validate({**data, "kind": "guess"})
