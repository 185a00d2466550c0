"""core.note_features on note sets with known answers, and the block-collision guard."""

from __future__ import annotations

import numpy as np
import pytest

from core import features
from core.config import FeatureConfig
from core.note_features import estimate_key, note_feature_names, note_features
from core.transcription import Transcription

pytestmark = pytest.mark.unit

NAMES = note_feature_names()
C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62, 60]


def notes(
    pitches: list[int] | list[list[int]], step: float = 0.5, length: float = 0.4
) -> Transcription:
    """One note (or chord) every ``step`` seconds; posteriorgram frames at 100 fps."""
    onset, offset, pitch, amplitude = [], [], [], []
    for i, group in enumerate(pitches):
        for p in np.atleast_1d(group):
            onset.append(i * step)
            offset.append(i * step + length)
            pitch.append(p)
            amplitude.append(0.5 + 0.02 * (i % 5))
    duration = len(pitches) * step + 1.0
    post = np.zeros((int(duration * 100), 88), dtype=np.float32)
    for on, off, p in zip(onset, offset, pitch, strict=True):
        post[int(on * 100) : int(off * 100), p - 21] = 0.9
    return Transcription(
        onset_s=np.asarray(onset, np.float32),
        offset_s=np.asarray(offset, np.float32),
        pitch=np.asarray(pitch, np.int16),
        amplitude=np.asarray(amplitude, np.float32),
        posteriorgram=post,
        frame_rate=100.0,
        duration_s=duration,
    )


def named(vector: np.ndarray) -> dict[str, float]:
    return dict(zip(NAMES, vector.tolist(), strict=True))


def block(vector: dict[str, float], stem: str, n: int = 12) -> np.ndarray:
    return np.array([vector[f"note_{stem}_{i:02d}"] for i in range(n)])


def test_names_are_prefixed_unique_and_match_the_vector() -> None:
    assert all(name.startswith("note_") for name in NAMES)
    assert len(set(NAMES)) == len(NAMES)
    vector = note_features(notes(C_MAJOR), 0.0, 10.0)
    assert vector.shape == (len(NAMES),)
    assert vector.dtype == np.float32


def test_c_major_scale_peaks_on_the_scale_degrees_after_key_normalisation() -> None:
    f = named(note_features(notes(C_MAJOR), 0.0, 10.0))
    key_pcs = block(f, "pc_key")
    scale = [0, 2, 4, 5, 7, 9, 11]
    assert key_pcs[scale].min() > 0.05
    assert key_pcs[[1, 3, 6, 8, 10]].max() == 0.0
    assert key_pcs.sum() == pytest.approx(1.0)
    assert f["note_key_minor"] == 0.0
    assert np.argmax(key_pcs) == 0  # C, the tonic (first and last, twice as often)


def test_transposed_scale_gives_the_same_key_normalised_features() -> None:
    in_c = named(note_features(notes(C_MAJOR), 0.0, 10.0))
    in_d = named(note_features(notes([p + 2 for p in C_MAJOR]), 0.0, 10.0))
    for stem in ("pc_key", "act_chroma_key"):
        np.testing.assert_allclose(block(in_c, stem), block(in_d, stem), atol=1e-6)
    trans = [k for k in NAMES if k.startswith("note_trans_key_")]
    assert [in_c[k] for k in trans] == pytest.approx([in_d[k] for k in trans])
    # absolute pitch classes do move by two semitones
    np.testing.assert_allclose(np.roll(block(in_c, "pc_abs"), 2), block(in_d, "pc_abs"))
    assert in_d["note_pitch_mean"] == pytest.approx(in_c["note_pitch_mean"] + 2)


def test_key_estimate_of_a_minor_triad_profile() -> None:
    pcs = np.zeros(12)
    pcs[[9, 0, 4]] = [3, 2, 2]  # A, C, E: A minor
    pcs[[11, 2, 5, 7]] = 0.5
    tonic, minor, strength, margin = estimate_key(pcs)
    assert (tonic, minor) == (9, 1.0)
    assert strength > 0.5 and margin > 0


def test_chords_intervals_and_density() -> None:
    triads = notes([[60, 64, 67]] * 4 + [[62, 65, 69]] * 4, step=1.0, length=0.9)
    f = named(note_features(triads, 0.0, 8.0))
    assert f["note_chord_size_3"] == 1.0
    assert f["note_chord_size_mean"] == 3.0
    assert f["note_density"] == pytest.approx(24 / 8)
    assert f["note_chord_rate"] == pytest.approx(8 / 8)
    # major/minor triads: intervals 3, 4 and 7 (mod 12), each a third of the pairs
    harm = block(f, "harm_ic")
    np.testing.assert_allclose(harm[[3, 4, 7]], [1 / 3] * 3)
    assert f["note_harm_dissonant"] == 0.0
    assert f["note_polyphony_max"] == 3.0
    # top voice G,G,G,G,A,...: repeats and one whole-tone step
    assert f["note_mel_top_+00"] == pytest.approx(6 / 7)
    assert f["note_mel_top_+02"] == pytest.approx(1 / 7)


def test_rising_scale_melodic_histogram() -> None:
    f = named(note_features(notes(C_MAJOR[:8]), 0.0, 10.0))
    ups = f["note_mel_top_+01"] + f["note_mel_top_+02"]
    assert ups == pytest.approx(1.0)
    assert f["note_mel_top_+02"] == pytest.approx(5 / 7)
    assert f["note_mel_step_frac"] == 1.0


def test_segment_bounds_select_notes_by_onset() -> None:
    scale = notes(C_MAJOR)  # onsets 0, 0.5, ..., 7.0
    first, second = note_features(scale, 0.0, 3.0), note_features(scale, 3.0, 10.0)
    assert named(first)["note_density"] == pytest.approx(6 / 3)
    assert named(second)["note_density"] == pytest.approx(9 / 7)
    assert named(first)["note_key_act_39"] > 0  # C4 sounds in the first three seconds


def test_empty_segment_is_finite_and_zero() -> None:
    empty = Transcription.empty(duration_s=10.0, frame_rate=100.0)
    for transcription, bounds in ((empty, (0.0, 10.0)), (notes(C_MAJOR), (50.0, 60.0))):
        f = named(note_features(transcription, *bounds))
        assert all(np.isfinite(v) for v in f.values())
        assert f["note_silence_frac"] == 1.0  # nothing sounds
        assert all(v == 0.0 for k, v in f.items() if k != "note_silence_frac")


def test_name_collision_between_blocks_raises(monkeypatch) -> None:
    config = FeatureConfig()
    with pytest.raises(ValueError, match="'mfcc_01_mean' is in both the spectral and the note"):
        features.join_blocks({"spectral": ["mfcc_01_mean"], "note": ["x", "mfcc_01_mean"]})
    clash = [*note_feature_names(), "rms_mean"]
    monkeypatch.setattr(features, "note_feature_names", lambda: clash)
    with pytest.raises(ValueError, match="rms_mean"):
        features.feature_names(config)
