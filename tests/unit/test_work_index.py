"""core.work_index on the shipped index: a demo clip from the middle of a piece (as it is and
8 % faster) is recognised with its position, a work removed from the index is not matched,
non-piano audio is not matched, and the index survives pickling (the model file carries it)."""

from __future__ import annotations

import pickle

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from core.config import REPO_ROOT
from core.transcription import transcribe
from core.work_index import WorkIndex, WorkMatch

pytestmark = pytest.mark.unit

WORKS = REPO_ROOT / "data" / "works"
DEMO = REPO_ROOT / "data" / "demo"
CLIP = "Beethoven/beethoven_opus10_2"  # the demo excerpt starts 98 s into the movement


@pytest.fixture(scope="module")
def index() -> WorkIndex:
    return WorkIndex.load(WORKS)


@pytest.fixture(scope="module")
def demo_row() -> pd.Series:
    manifest = pd.read_csv(DEMO / "manifest.csv").set_index("recording_id")
    return manifest.loc[CLIP]


@pytest.fixture(scope="module")
def demo_audio(demo_row) -> tuple[np.ndarray, int]:
    y, sr = sf.read(DEMO / demo_row["path"], dtype="float32")
    return y, sr


@pytest.fixture(scope="module")
def demo_notes(demo_audio):
    return transcribe(*demo_audio)


def test_finds_the_work_and_where_the_clip_starts(index, demo_notes, demo_row):
    found = index.match(demo_notes)
    assert isinstance(found, WorkMatch)
    assert found.piece == CLIP
    assert found.work == demo_row["work"]
    assert found.composer == "Beethoven"
    assert found.score >= index.threshold
    assert abs(found.position_s - demo_row["start_s"]) < 5.0


def test_finds_the_work_played_8_percent_faster(index, demo_audio, demo_row):
    y, sr = demo_audio
    faster = librosa.effects.time_stretch(y, rate=1.08)
    found = index.match(transcribe(faster, sr))
    assert found is not None and found.piece == CLIP
    assert abs(found.position_s - demo_row["start_s"]) < 5.0


def test_a_work_removed_from_the_index_is_not_matched(index, demo_notes, demo_row):
    others = set(index.meta["work"]) - {demo_row["work"]}
    restricted = index.restrict(others)
    movements = int((index.meta["work"] == demo_row["work"]).sum())
    assert len(restricted) == len(index) - movements
    assert demo_row["work"] not in set(restricted.meta["work"])
    assert restricted.threshold == index.threshold
    assert restricted.match(demo_notes) is None


@pytest.mark.parametrize("clip", ["speech_en_male.ogg", "drums.ogg", "violin.ogg"])
def test_non_piano_audio_is_not_matched(index, clip):
    y, sr = sf.read(REPO_ROOT / "data" / "negatives" / clip, dtype="float32")
    assert index.match(transcribe(y, sr)) is None


def test_silence_is_not_matched(index):
    assert index.match(transcribe(np.zeros(22050 * 10, dtype=np.float32), 22050)) is None


def test_pickles_compactly_and_still_matches(index, demo_notes):
    index.match(demo_notes)  # builds the float matrix, which must not be pickled
    blob = pickle.dumps(index)
    assert len(blob) < 3_000_000
    again = pickle.loads(blob)
    assert again.threshold == index.threshold
    assert again.match(demo_notes) == index.match(demo_notes)
