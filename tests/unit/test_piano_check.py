"""'Not piano music': every non-music kind is rejected, piano passes, through the real
featurizer (transcription included).

Generated kinds use seed 0 (the detector was trained on seeds 1..6); speech and instruments are
the shipped test clips in data/negatives (the detector was trained on other voices, texts,
phrases, keys and tempi). The piano controls play the instruments' phrases on a piano, so a
pass there shows the detector judges the sound, not the phrase.
"""

from __future__ import annotations

import dataclasses
import hashlib
from functools import cache

import numpy as np
import pandas as pd
import pytest

from core import nonmusic
from core.audio import load_audio
from core.config import REPO_ROOT, FeatureConfig
from core.datasets.demo import load_manifest
from core.featurize import featurize_audio
from core.piano_check import (
    PIANO_REASON,
    PianoCheck,
    assess,
    assess_rows,
    input_names,
    load_detector,
)

pytestmark = pytest.mark.unit

CONFIG = FeatureConfig()
SR = CONFIG.sample_rate
SECONDS = 10.0  # one segment (the demo clips below have three)
CLIPS = {clip.kind: clip for clip in nonmusic.shipped_clips()}
OTHER = sorted(k for k, c in CLIPS.items() if c.group != "piano")
PIANO_CONTROLS = sorted(k for k, c in CLIPS.items() if c.group == "piano")
REQUIRED_INSTRUMENTS = {"violin", "flute", "organ", "drums", "trumpet"}
DEMO_CLIPS = ("Borodin/bor_ps7", "Schubert/schuim-1")


@cache
def judged(kind: str) -> tuple[PianoCheck, pd.DataFrame]:
    """Featurize (real transcription) and assess one clip, once per test session."""
    if kind in nonmusic.GENERATED:
        samples = nonmusic.generate(kind, SECONDS, SR, seed=0)
    else:
        samples = load_audio(CLIPS[kind].path, SR).samples
    rows = featurize_audio(samples, CONFIG)
    return assess(samples, SR, rows), rows


def test_the_suite_covers_at_least_twenty_kinds_of_non_music() -> None:
    assert len(nonmusic.GENERATED) + len(OTHER) >= 20
    assert len(nonmusic.GENERATED) >= 20  # the synthetic kinds alone
    assert set(OTHER) >= REQUIRED_INSTRUMENTS
    assert sum(CLIPS[k].group == "speech" for k in OTHER) >= 2
    assert len(PIANO_CONTROLS) >= 2


@pytest.mark.parametrize("kind", [*nonmusic.GENERATED, *OTHER])
def test_every_non_music_kind_is_not_piano(kind: str) -> None:
    check, _ = judged(kind)
    assert not check.is_piano, f"{kind} passed as piano (score {check.score:.3f})"
    assert 0.0 <= check.score < load_detector().threshold
    assert check.reason and check.reason != PIANO_REASON


@pytest.mark.parametrize("kind", PIANO_CONTROLS)
def test_piano_playing_the_same_phrases_passes(kind: str) -> None:
    check, _ = judged(kind)
    assert check.is_piano, f"{kind}: {check.reason} ({check.score:.3f})"
    assert check.reason == PIANO_REASON


@pytest.mark.parametrize("recording_id", DEMO_CLIPS)
def test_demo_piano_clips_pass_end_to_end(recording_id: str) -> None:
    manifest = load_manifest(REPO_ROOT / "data" / "demo").set_index("recording_id")
    samples = load_audio(manifest.loc[recording_id, "path"], SR).samples
    check = assess(samples, SR, featurize_audio(samples, CONFIG))
    assert check.is_piano, f"{recording_id}: {check.reason} ({check.score:.3f})"
    assert check.score >= load_detector().threshold


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("white_noise", "noise"),
        ("brown_noise", "no notes"),
        ("sine_mid", "steady tone"),
        ("hum_50hz", "steady tone"),
        ("dc_offset", "offset"),
        ("near_silence", "silent"),
        ("silence_blip", "no notes"),
        ("clipped_sine", "steady tone"),
        ("speech_en_male", "speech"),
        ("violin", "instrument"),
    ],
)
def test_reasons_are_plain_words(kind: str, words: str) -> None:
    check, _ = judged(kind)
    assert words in check.reason


def test_silence_and_empty_input_are_rejected_without_rows() -> None:
    empty = pd.DataFrame(columns=input_names())
    assert not assess(np.zeros(SR * 5, np.float32), SR, empty).is_piano
    assert assess(np.zeros(SR * 5, np.float32), SR, empty).reason == "the clip is silent"
    assert not assess(np.zeros(0, np.float32), SR, empty).is_piano
    assert not assess(np.full(SR, np.nan, np.float32), SR, empty).is_piano
    assert not assess_rows(empty).is_piano


def test_a_clipped_piano_clip_is_still_judged_by_its_rows() -> None:
    """Clipping alone rejects only when most of the waveform sits at the rails."""
    _, rows = judged(PIANO_CONTROLS[0])
    samples = load_audio(CLIPS[PIANO_CONTROLS[0]].path, SR).samples
    assert assess(np.clip(samples * 1.5, -0.9, 0.9), SR, rows).is_piano
    flat = np.sign(samples) * 0.9  # a fully clipped waveform
    assert not assess(flat, SR, rows).is_piano


def test_check_is_a_frozen_typed_result() -> None:
    check, _ = judged("white_noise")
    assert isinstance(check, PianoCheck)
    with pytest.raises(dataclasses.FrozenInstanceError):
        check.is_piano = True  # type: ignore[misc]
    assert isinstance(check.score, float) and isinstance(check.reason, str)


def test_generated_kinds_are_deterministic_and_vary_with_the_seed() -> None:
    for kind in ("white_noise", "sine_mid", "dtmf"):
        first = nonmusic.generate(kind, 2.0, SR, seed=0)
        assert np.array_equal(first, nonmusic.generate(kind, 2.0, SR, seed=0))
        assert not np.array_equal(first, nonmusic.generate(kind, 2.0, SR, seed=1))
        assert first.dtype == np.float32 and len(first) == 2 * SR
    with pytest.raises(KeyError):
        nonmusic.generate("birdsong", 1.0, SR)


def test_shipped_clips_match_their_index() -> None:
    assert CLIPS, "data/negatives/clips.json is missing: run scripts/build_negatives.py"
    for clip in CLIPS.values():
        assert hashlib.sha256(clip.path.read_bytes()).hexdigest() == clip.sha256, clip.kind


def test_the_shipped_detector_reads_the_current_columns() -> None:
    detector = load_detector()
    assert list(detector.columns) == input_names()
    assert len(detector.coef) == len(detector.mean) == len(detector.scale) == len(input_names())
    assert 0.0 < detector.threshold < 1.0
