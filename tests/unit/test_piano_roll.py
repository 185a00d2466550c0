"""The piano roll shows what the transcription heard."""

import numpy as np
import pytest

from core import piano_roll
from core.transcription import Transcription

pytestmark = pytest.mark.unit


def _scale() -> Transcription:
    pitches = np.array([60, 62, 64, 65, 67, 69, 71, 72], dtype=np.int16)
    onsets = np.arange(8, dtype=np.float32) * 0.5
    return Transcription(
        onset_s=onsets,
        offset_s=onsets + 0.45,
        pitch=pitches,
        amplitude=np.linspace(0.2, 0.9, 8).astype(np.float32),
        posteriorgram=np.zeros((10, 88), dtype=np.float32),
        frame_rate=86.0,
        duration_s=4.0,
    )


def test_notes_keep_pitch_timing_and_loudness():
    notes = piano_roll.notes_of(_scale())
    assert [n.pitch for n in notes] == [60, 62, 64, 65, 67, 69, 71, 72]
    assert notes[3].onset_s == pytest.approx(1.5)
    assert notes[-1].velocity > notes[0].velocity
    assert piano_roll.note_name(60) == "C4" and piano_roll.note_name(69) == "A4"


def test_figure_draws_one_bar_per_note_and_names_c_keys():
    fig = piano_roll.figure(piano_roll.notes_of(_scale()), seconds=4.0)
    ax = fig.axes[0]
    assert len(ax.collections[0].get_paths()) == 8
    assert [t.get_text() for t in ax.get_yticklabels()] == ["C4", "C5"]
    assert "8 notes" in ax.get_title()


def test_silence_says_no_notes():
    fig = piano_roll.figure([], seconds=3.0)
    assert any("no notes" in t.get_text() for t in fig.axes[0].texts)


def test_too_many_notes_keeps_the_loudest():
    n = piano_roll.MAX_NOTES + 500
    many = Transcription(
        onset_s=np.linspace(0, 30, n).astype(np.float32),
        offset_s=np.linspace(0.1, 30.1, n).astype(np.float32),
        pitch=np.full(n, 60, dtype=np.int16),
        amplitude=np.linspace(0, 1, n).astype(np.float32),
        posteriorgram=np.zeros((1, 88), dtype=np.float32),
        frame_rate=86.0,
        duration_s=30.0,
    )
    kept = piano_roll.notes_of(many)
    assert len(kept) == piano_roll.MAX_NOTES
    assert min(k.velocity for k in kept) > 0.15
