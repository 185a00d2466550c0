"""core.features: the feature schema, determinism, and sanity on signals with known answers."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from core.audio import SilentAudioError, from_array, load_audio
from core.config import FeatureConfig
from core.features import extract, feature_names, spectral_feature_names
from core.featurize import featurize_audio
from core.note_features import note_feature_names

pytestmark = pytest.mark.unit

CONFIG = FeatureConfig()
SR = CONFIG.sample_rate


def tone(freq: float, seconds: float = 4.0, amp: float = 0.5, sr: int = SR) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def click_train(bpm: float, seconds: float = 10.0, sr: int = SR) -> np.ndarray:
    """Short 2 kHz bursts (Hann-windowed, 9 ms) every beat."""
    y = np.zeros(int(seconds * sr), dtype=np.float32)
    burst = np.hanning(200) * np.sin(2 * np.pi * 2000 * np.arange(200) / sr)
    period = round(60.0 / bpm * sr)
    for start in range(0, len(y) - len(burst), period):
        y[start : start + len(burst)] += burst.astype(np.float32)
    return y


def named(vector: np.ndarray, config: FeatureConfig = CONFIG) -> dict[str, float]:
    return dict(zip(spectral_feature_names(config), vector.tolist(), strict=True))


@pytest.fixture(scope="module")
def a4() -> dict[str, float]:
    return named(extract(tone(440.0), CONFIG))


# --------------------------------------------------------------------------- schema


def test_default_spectral_block_has_118_features() -> None:
    names = spectral_feature_names(CONFIG)
    vector = extract(tone(440.0, seconds=2.0), CONFIG)
    assert len(names) == 118
    assert len(vector) == len(names)
    assert len(set(names)) == len(names)
    assert names[0] == "mfcc_01_mean"
    assert names[-1] == "contrast_7_std"


def test_schema_v4_is_the_spectral_block_then_the_note_block() -> None:
    names = feature_names(CONFIG)
    assert CONFIG.schema_version == 4
    assert names == [*spectral_feature_names(CONFIG), *note_feature_names()]
    assert len(names) == 118 + len(note_feature_names())
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"n_mfcc": 20}, 118 + 7 * 4),
        ({"n_mfcc": 4}, 118 - 9 * 4),
        ({"n_chroma": 24}, 118 + 12 * 2),
        ({"n_contrast_bands": 4}, 118 - 2 * 2),
    ],
)
def test_schema_follows_the_config(overrides: dict, expected: int) -> None:
    config = FeatureConfig(**overrides)
    names = spectral_feature_names(config)
    vector = extract(tone(440.0, seconds=2.0), config)
    assert len(names) == expected
    assert len(vector) == expected
    assert len(set(names)) == len(names)


def test_vector_is_finite_float32() -> None:
    rng = np.random.default_rng(0)
    inputs = {
        "tone": tone(440.0, seconds=2.0),
        "noise": (0.1 * rng.standard_normal(2 * SR)).astype(np.float32),
        "zeros": np.zeros(2 * SR, dtype=np.float32),  # extract itself does not reject silence
        "shorter_than_n_fft": tone(440.0, seconds=0.05),
        "float64_input": tone(440.0, seconds=2.0).astype(np.float64),
    }
    for label, y in inputs.items():
        vector = extract(y, CONFIG)
        assert vector.dtype == np.float32, label
        assert vector.shape == (118,), label
        assert np.all(np.isfinite(vector)), label


# --------------------------------------------------------------------------- determinism


def test_same_input_same_vector() -> None:
    y = (0.2 * np.random.default_rng(1).standard_normal(3 * SR)).astype(np.float32)
    y += tone(330.0, seconds=3.0)
    first = extract(y, CONFIG)
    second = extract(y.copy(), CONFIG)
    third = extract(y, FeatureConfig())
    assert np.array_equal(first, second)
    assert np.array_equal(first, third)


def test_fingerprint_is_stable_and_parameter_sensitive() -> None:
    base = FeatureConfig().fingerprint()
    assert base == FeatureConfig().fingerprint()
    assert base == FeatureConfig(n_mfcc=13, sample_rate=22050).fingerprint()
    assert len(base) == 16
    assert all(c in "0123456789abcdef" for c in base)
    changed = {
        FeatureConfig(n_mfcc=20).fingerprint(),
        FeatureConfig(hop_length=256).fingerprint(),
        FeatureConfig(segment_seconds=5.0).fingerprint(),
        FeatureConfig(sample_rate=16000).fingerprint(),
        FeatureConfig(hpss_kernel=31).fingerprint(),
    }
    assert base not in changed
    assert len(changed) == 5


# --------------------------------------------------------------------------- known signals


def test_a4_chroma_peaks_at_a(a4: dict[str, float]) -> None:
    """librosa's chroma starts at C, so A is bin index 9: ``chroma_10_mean``."""
    chroma = [a4[f"chroma_{i:02d}_mean"] for i in range(1, 13)]
    assert int(np.argmax(chroma)) == 9
    assert a4["chroma_10_mean"] == pytest.approx(1.0, abs=0.01)  # max-normalised per frame
    neighbours = (a4["chroma_09_mean"], a4["chroma_11_mean"])
    assert max(neighbours) < 0.5
    assert all(chroma[i] < 0.05 for i in range(12) if i not in (8, 9, 10))


def test_a4_spectral_centroid_is_near_440(a4: dict[str, float]) -> None:
    # the Hann window's leakage and the edge frames pull it a little (measured: ~442 Hz)
    assert a4["spectral_centroid_mean"] == pytest.approx(440.0, abs=15.0)
    assert a4["spectral_rolloff_mean"] == pytest.approx(440.0, abs=40.0)
    assert a4["spectral_bandwidth_mean"] < 100.0


def test_louder_copy_has_higher_rms() -> None:
    quiet = named(extract(tone(440.0, amp=0.1), CONFIG))
    loud = named(extract(tone(440.0, amp=0.4), CONFIG))
    assert loud["rms_mean"] > quiet["rms_mean"]
    assert loud["rms_mean"] / quiet["rms_mean"] == pytest.approx(4.0, rel=0.01)
    assert loud["rms_max"] > quiet["rms_max"]
    # level does not move pitch or timbre features
    assert loud["spectral_centroid_mean"] == pytest.approx(
        quiet["spectral_centroid_mean"], rel=1e-3
    )


@pytest.mark.parametrize("bpm", [90.0, 120.0, 140.0])
def test_click_train_tempo(bpm: float) -> None:
    """Tempo is the seed's: librosa's default ``beat_track`` on the waveform gives the same
    value (including its octave choice on clean clicks), and it is an octave of the truth."""
    clicks = click_train(bpm)
    values = named(extract(clicks, CONFIG))
    seed_tempo, seed_beats = librosa.beat.beat_track(y=clicks, sr=SR)
    assert values["tempo_bpm"] == pytest.approx(float(np.atleast_1d(seed_tempo)[0]), rel=1e-6)
    octave = values["tempo_bpm"] / bpm
    assert min(abs(octave - r) for r in (0.5, 1.0, 2.0)) < 0.05
    assert values["onset_rate"] == pytest.approx(bpm / 60.0, rel=0.15)
    seed_std = float(np.std(np.diff(seed_beats) * CONFIG.hop_length / SR))
    assert values["beat_interval_std"] == pytest.approx(seed_std, abs=1e-6)


def test_noise_crosses_zero_more_than_a_low_sine() -> None:
    noise = (0.1 * np.random.default_rng(2).standard_normal(4 * SR)).astype(np.float32)
    white = named(extract(noise, CONFIG))
    low = named(extract(tone(100.0), CONFIG))
    assert white["zero_crossing_mean"] > low["zero_crossing_mean"]
    assert white["zero_crossing_mean"] == pytest.approx(0.5, abs=0.05)  # white noise: 1/2
    assert low["zero_crossing_mean"] == pytest.approx(2 * 100.0 / SR, rel=0.1)
    assert white["spectral_centroid_mean"] > 4 * low["spectral_centroid_mean"]


def test_silence_is_rejected_before_features(tmp_path: Path) -> None:
    silence = np.zeros(3 * SR, dtype=np.float32)
    with pytest.raises(SilentAudioError):
        from_array(silence, SR, SR)
    path = tmp_path / "silence.wav"
    sf.write(path, silence, SR)
    with pytest.raises(SilentAudioError, match=r"^silence\.wav: "):
        load_audio(path, SR)


# --------------------------------------------------------------------------- featurize_audio


@pytest.mark.parametrize(
    ("seconds", "starts"),
    [
        (3.0, [0.0]),  # shorter than one segment: one row
        (34.9, [0.0, 10.0, 20.0]),  # 4.9 s tail < half a segment: dropped
        (35.0, [0.0, 10.0, 20.0, 30.0]),  # 5 s tail == half a segment: kept (`< size // 2`)
    ],
)
def test_featurize_audio_rows(seconds: float, starts: list[float]) -> None:
    rng = np.random.default_rng(4)
    y = (0.1 * rng.standard_normal(round(seconds * SR))).astype(np.float32)

    frame = featurize_audio(y, CONFIG)

    assert list(frame.columns) == ["segment", "start_s", *feature_names(CONFIG)]
    assert len(frame) == len(starts)
    assert frame["start_s"].tolist() == pytest.approx(starts)
    assert frame["segment"].tolist() == list(range(len(starts)))
    assert frame["segment"].dtype == np.int32
    assert frame["start_s"].dtype == np.float32
    assert all(frame[name].dtype == np.float32 for name in feature_names(CONFIG))
    # each row's spectral block is exactly extract() of its window
    size = int(CONFIG.segment_seconds * SR)
    last = len(starts) - 1
    first = int(starts[last] * SR)
    expected = extract(y[first : first + size], CONFIG)
    spectral = frame[spectral_feature_names(CONFIG)].iloc[last].to_numpy(dtype=np.float32)
    np.testing.assert_array_equal(spectral, expected)


# ---- the fast kernels give librosa's / scipy's values

DEMO_CLIP = sorted((Path(__file__).parents[2] / "data" / "demo" / "audio").rglob("*.ogg"))[0]


def _signals() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    near_zero = np.zeros(30000, dtype=np.float32)
    near_zero[100::3] = -1e-11  # below librosa's threshold: counts as zero (positive)
    near_zero[200::5] = 0.3
    near_zero[301::7] = -0.2
    clip = load_audio(DEMO_CLIP, SR).samples[: 10 * SR]
    return [rng.standard_normal(5 * SR).astype(np.float32), near_zero, tone(440.0), clip]


@pytest.mark.parametrize("index", range(4))
def test_zero_crossing_rate_is_librosas(index):
    from core.features import _zero_crossing_rate

    y = _signals()[index]
    expected = librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512)[0]
    np.testing.assert_array_equal(_zero_crossing_rate(y, 2048, 512), expected)


@pytest.mark.parametrize("index", range(4))
def test_spectral_contrast_is_librosas(index):
    from core.features import _spectral_contrast

    magnitude = np.abs(librosa.stft(_signals()[index], n_fft=CONFIG.n_fft, hop_length=512))
    expected = librosa.feature.spectral_contrast(
        S=magnitude, sr=SR, n_fft=CONFIG.n_fft, n_bands=CONFIG.n_contrast_bands
    )
    np.testing.assert_allclose(_spectral_contrast(magnitude, CONFIG), expected, atol=1e-4)


@pytest.mark.parametrize(("size", "axis"), [(5, 1), (17, 0), (4, 1), (3, 0)])
def test_median_along_is_scipys_reflect_median_filter(size, axis):
    from scipy.ndimage import median_filter

    from core.features import _median_along

    x = np.random.default_rng(size).random((40, 37)).astype(np.float32)
    shape = (size, 1) if axis == 0 else (1, size)
    expected = median_filter(x, size=shape, mode="reflect")
    np.testing.assert_array_equal(_median_along(x, size, axis), expected)


def test_tempo_and_beats_are_librosas_beat_track():
    from core.features import _tempo_and_beats

    hop = CONFIG.hop_length
    for y in [click_train(100.0), click_train(140.0), _signals()[3]]:
        envelope = librosa.onset.onset_strength(y=y, sr=SR, hop_length=hop, aggregate=np.median)
        tempo, beats = librosa.beat.beat_track(onset_envelope=envelope, sr=SR, hop_length=hop)
        fast_tempo, fast_beats = _tempo_and_beats(envelope, SR, hop)
        np.testing.assert_allclose(fast_tempo, tempo)
        np.testing.assert_array_equal(fast_beats, beats)
