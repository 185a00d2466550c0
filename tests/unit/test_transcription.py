"""core.transcription: notes from synthesised piano-like tones, quiet edge cases, and the
one-transcription-per-clip rule of featurize_audio."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import soxr

from core import featurize, transcription
from core.config import FeatureConfig
from core.features import feature_names, spectral_feature_names
from core.note_features import note_feature_names, note_features
from core.transcription import FLOAT_MODEL, INT8_MODEL, Transcriber, _decode_notes, transcribe

pytestmark = pytest.mark.unit

SR = transcription.SAMPLE_RATE
# (onset s, MIDI pitch, duration s): a broken chord, leaps down, a low bass note
MELODY = [(0.5 + 0.6 * i, p, 0.5) for i, p in enumerate([60, 64, 67, 72, 65, 57, 71, 48])]


def piano(notes: list[tuple[float, int, float]], seconds: float, sr: int = SR) -> np.ndarray:
    """Harmonic tones (6 partials, 0.6 roll-off) with a 5 ms attack and exponential decay."""
    y = np.zeros(int(seconds * sr))
    for onset, pitch, duration in notes:
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        t = np.arange(int(duration * sr)) / sr
        partials = sum(
            0.6 ** (h - 1) * np.sin(2 * np.pi * h * f0 * t) for h in range(1, 7) if h * f0 < sr / 2
        )
        envelope = np.exp(-3.0 * t) * np.minimum(1.0, t / 0.005)
        start = int(onset * sr)
        y[start : start + len(t)] += 0.2 * partials * envelope
    return y.astype(np.float32)


def assert_recovers(result: transcription.Transcription, notes: list) -> None:
    for onset, pitch, _ in notes:
        close = (result.pitch == pitch) & (np.abs(result.onset_s - onset) <= 0.05)
        assert close.any(), f"MIDI {pitch} at {onset:.2f} s not found: {list(result.pitch)}"
    # harmonics may add an odd extra note, but the melody must dominate
    assert len(result) <= len(notes) + 3


@pytest.fixture(scope="module")
def melody() -> transcription.Transcription:
    return transcribe(piano(MELODY, 6.0), SR)


def test_recovers_a_synthesised_note_sequence(melody: transcription.Transcription) -> None:
    assert_recovers(melody, MELODY)
    found = melody.pitch == 60
    assert melody.offset_s[found][0] - melody.onset_s[found][0] == pytest.approx(0.5, abs=0.1)
    assert np.all(np.diff(melody.onset_s) >= 0)  # sorted by onset
    assert ((melody.amplitude > 0) & (melody.amplitude <= 1)).all()


def test_posteriorgram_covers_the_clip(melody: transcription.Transcription) -> None:
    frames, keys = melody.posteriorgram.shape
    assert keys == 88
    assert melody.posteriorgram.dtype == np.float32
    assert frames == pytest.approx(6.0 * melody.frame_rate, abs=1)
    # the C4 key (index 60 - 21) is active around its onset, not before
    c4 = melody.posteriorgram[:, 60 - 21]
    assert c4[int(0.7 * melody.frame_rate)] > 0.5 > c4[int(0.2 * melody.frame_rate)]


def test_other_sample_rates_are_resampled() -> None:
    y = soxr.resample(piano(MELODY, 6.0), SR, 44100)
    assert_recovers(transcribe(y, 44100), MELODY)


@pytest.mark.parametrize("samples", [np.zeros(0), np.zeros(3 * SR), np.zeros(10)])
def test_silence_and_empty_input_give_no_notes(samples: np.ndarray) -> None:
    result = transcribe(samples.astype(np.float32), SR)
    assert len(result) == 0
    assert result.onset_s.shape == result.pitch.shape == (0,)
    assert result.posteriorgram.shape[1] == 88


def test_int8_network_with_less_overlap_finds_the_same_notes() -> None:
    result = Transcriber(INT8_MODEL, overlap_frames=20).transcribe(piano(MELODY, 6.0), SR)
    assert_recovers(result, MELODY)


def test_int8_network_stays_close_to_the_float_network() -> None:
    y = piano(MELODY, 6.0)
    float_note, _ = Transcriber(FLOAT_MODEL).posteriorgrams(y)
    int8_note, _ = Transcriber(INT8_MODEL).posteriorgrams(y)
    assert float_note.shape == int8_note.shape
    assert np.abs(float_note - int8_note).mean() < 0.01
    assert np.abs(float_note - int8_note).max() < 0.15


def test_transcriber_pickles_without_its_session(melody) -> None:
    transcriber = Transcriber()
    transcriber.transcribe(piano(MELODY[:2], 2.0), SR)
    assert transcriber._session is not None
    copy = pickle.loads(pickle.dumps(transcriber))
    assert copy._session is None  # each process builds its own
    assert_recovers(copy.transcribe(piano(MELODY, 6.0), SR), MELODY)


def test_decoding_a_hand_made_posteriorgram() -> None:
    frames = np.zeros((100, 88), dtype=np.float32)
    onsets = np.zeros_like(frames)
    frames[20:50, 39] = 0.8  # C4 sounds for 30 frames
    onsets[19:22, 39] = [0.3, 0.9, 0.3]  # with an onset peak at frame 20
    frames[60:64, 50] = 0.9  # too short to be a note (min 11 frames)
    events = _decode_notes(frames, onsets)
    assert events.shape == (1, 4)
    start, end, key, amplitude = events[0]
    assert (start, end, key) == (20, 50, 39)
    assert amplitude == pytest.approx(0.8)


# ---- featurize_audio: one transcription per clip, spectral + note columns per segment


def test_featurize_audio_transcribes_each_clip_once(monkeypatch) -> None:
    calls = []
    real = transcription.transcribe

    def counting(samples, sample_rate):
        calls.append(len(samples))
        return real(samples, sample_rate)

    monkeypatch.setattr(transcription, "transcribe", counting)
    config = FeatureConfig()
    notes = [(0.5 + 0.6 * i, 60 + (i % 12), 0.5) for i in range(40)]
    y = piano(notes, 25.0)
    frame = featurize.featurize_audio(y, config)

    assert calls == [len(y)]
    assert len(frame) == 3  # 0-10, 10-20, 20-25 s
    assert list(frame.columns) == ["segment", "start_s", *feature_names(config)]
    assert set(spectral_feature_names(config)) < set(frame.columns)
    assert set(note_feature_names()) < set(frame.columns)
    # each segment's note block is built from the one transcription, restricted to the segment
    whole = real(y, config.sample_rate)
    for row, (start, end) in enumerate([(0.0, 10.0), (10.0, 20.0), (20.0, 25.0)]):
        expected = note_features(whole, start, end)
        got = frame[note_feature_names()].iloc[row].to_numpy(dtype=np.float32)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        in_segment = ((whole.onset_s >= start) & (whole.onset_s < end)).sum()
        assert frame["note_density"].iloc[row] == pytest.approx(in_segment / (end - start))
