"""Behavioural tests (in the Made-With-ML sense): changes a listener would not call a
different performance do not change the answer. On a few demo clips the model answers with
confidence, the verdict's top composer (and that it is piano music) survives a change of
gain, a short leading silence, and the clip arriving at 44.1 kHz (resampled to the model's
22.05 kHz by the request path)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from core import registry
from core.identify import identify
from core.verdict import Verdict

pytestmark = pytest.mark.model

CLIPS = 3
# Calibrated probabilities over ~19 composers: 0.4 is a clear first choice (the temperature
# softens the raw segment averages; see README, "Calibrated confidence").
CONFIDENT = 0.4


def louder_and_softer(samples: np.ndarray, rate: int) -> list[tuple[np.ndarray, int]]:
    peak = float(np.max(np.abs(samples)))
    return [(samples * 0.25, rate), (samples * (0.95 / peak), rate)]


def leading_silence(samples: np.ndarray, rate: int) -> list[tuple[np.ndarray, int]]:
    return [(np.concatenate([np.zeros(rate // 2, np.float32), samples]), rate)]


def at_44k(samples: np.ndarray, rate: int) -> list[tuple[np.ndarray, int]]:
    assert rate == 22050
    return [(signal.resample_poly(samples, 2, 1).astype(np.float32), 44100)]


@pytest.fixture(scope="module")
def served(trained, demo_manifest):
    """The champion and the first few demo clips (every 9th of the manifest) it answers with
    a confident composer, with those answers. Near-ties are what "not sure" is for: there the
    top candidate may flip (on the demo-only model, a 0.5 s leading silence changed it on 6 of
    12 held-out clips, nearly all "not sure"; on 15 of 15 confident answers nothing changed)."""
    settings, _ = trained
    model, _ = registry.load_version(settings)
    clips, answers = [], []
    for path in demo_manifest["path"].iloc[::9]:
        samples, rate = sf.read(path, dtype="float32")
        answer = identify(model, (samples, rate))
        # Demo clips are known works ("work"); the classifier's first choice is what is tested.
        top = answer.candidates[0].probability if answer.candidates else 0.0
        if answer.kind in ("work", "composer") and top >= CONFIDENT:
            clips.append((samples, rate))
            answers.append(answer)
        if len(clips) == CLIPS:
            break
    assert len(clips) == CLIPS, f"only {len(clips)} confident answers on the demo clips"
    return model, clips, answers


def same_answer(changed: Verdict, original: Verdict) -> None:
    # Still piano music; "composer" vs "not sure" may flip at the threshold, the top may not.
    assert (changed.kind == "not_piano") == (original.kind == "not_piano")
    assert changed.top_composer == original.top_composer, (
        f"{original.top_composer} became {changed.top_composer}: "
        f"{original.candidates[:3]} -> {changed.candidates[:3]}"
    )


@pytest.mark.parametrize(
    "change", [louder_and_softer, leading_silence, at_44k], ids=["gain", "silence", "44k"]
)
def test_the_verdict_is_invariant(served, change: Callable):
    model, clips, answers = served
    for (samples, rate), original in zip(clips, answers, strict=True):
        for changed in change(samples, rate):
            same_answer(identify(model, changed), original)
