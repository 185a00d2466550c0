"""core.audio: decoding, typed errors, limits, resampling, downmixing and segmentation.

Every input is generated in ``tmp_path``; nothing is read from the network or shared data.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core import audio as audio_mod
from core.audio import (
    Audio,
    AudioError,
    CorruptAudioError,
    DecoderMissingError,
    EmptyAudioError,
    NotAudioError,
    SilentAudioError,
    TooShortError,
    from_array,
    load_audio,
    segments,
)
from core.config import AudioLimits

pytestmark = pytest.mark.unit

SR = 22050
HAS_FFMPEG = shutil.which("ffmpeg") is not None
needs_ffmpeg = pytest.mark.skipif(not HAS_FFMPEG, reason="ffmpeg is not installed")


def tone(freq: float = 440.0, seconds: float = 3.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(audio: Audio) -> float:
    """Frequency of the strongest FFT bin of a decoded clip."""
    y = audio.samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1.0 / audio.sample_rate)[np.argmax(spectrum)])


def rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))


def ffmpeg_make(target: Path, *args: str) -> Path:
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y", *args, str(target)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return target


# --------------------------------------------------------------------------- typed errors


def test_errors_are_value_errors() -> None:
    for cls in (
        NotAudioError,
        CorruptAudioError,
        EmptyAudioError,
        SilentAudioError,
        TooShortError,
        DecoderMissingError,
    ):
        assert issubclass(cls, AudioError)
        assert issubclass(cls, ValueError)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotAudioError) as info:
        load_audio(tmp_path / "nowhere.wav", SR)
    assert str(info.value) == "nowhere.wav: file not found."  # no folder in the message


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(EmptyAudioError) as info:
        load_audio(path, SR)
    assert type(info.value) is EmptyAudioError
    assert "empty.wav" in str(info.value)
    assert "empty (0 bytes)" in str(info.value)


def test_text_renamed_wav_is_not_audio(tmp_path: Path) -> None:
    """Refused from its first bytes, with or without ffmpeg."""
    path = tmp_path / "notes.wav"
    path.write_text("this is a shopping list, not a recording\n" * 20)
    with pytest.raises(NotAudioError) as info:
        load_audio(path, SR)
    assert type(info.value) is NotAudioError
    assert str(info.value) == "notes.wav: not an audio file (text)."


def test_unknown_binary_without_ffmpeg_is_decoder_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notes.m4a"
    path.write_bytes(b"\x00\x01binary" * 300)
    monkeypatch.setattr(audio_mod.shutil, "which", lambda name: None)
    with pytest.raises(DecoderMissingError) as info:
        load_audio(path, SR)
    message = str(info.value)
    assert message.startswith("notes.m4a: ")
    assert "install ffmpeg" in message


@pytest.mark.parametrize("suffix", [".mp3", ".ogg", ".flac", ".m4a"])
def test_random_bytes_are_rejected_with_a_clear_message(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(np.random.default_rng(7).bytes(5000))
    with pytest.raises(AudioError) as info:
        load_audio(path, SR)
    assert isinstance(info.value, NotAudioError | CorruptAudioError)
    message = str(info.value)
    assert message.startswith(f"noise{suffix}: ")
    assert "not a readable audio file" in message or "corrupt" in message


def test_truncated_wav_decodes_the_samples_that_are_there(tmp_path: Path) -> None:
    y = tone(seconds=6.0)
    full = tmp_path / "full.wav"
    sf.write(full, y, SR, subtype="PCM_16")
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])  # the header still claims 6 s

    audio = load_audio(cut, SR)

    assert audio.seconds == pytest.approx(3.0, abs=0.01)
    n = len(audio.samples)
    np.testing.assert_allclose(audio.samples, y[:n], atol=1e-4)  # the real samples, in order
    assert not audio.truncated


@pytest.mark.parametrize(
    ("fmt", "subtype", "suffix"),
    [
        ("FLAC", "PCM_16", ".flac"),
        ("OGG", "VORBIS", ".ogg"),
        ("MP3", "MPEG_LAYER_III", ".mp3"),
    ],
)
def test_truncated_compressed_file_decodes_a_prefix(
    tmp_path: Path, fmt: str, subtype: str, suffix: str
) -> None:
    """Cut in the middle of the data: what is left is decoded (FLAC through the ffmpeg
    fallback when libsndfile loses sync), and it is still the same tone."""
    rng = np.random.default_rng(3)
    y = tone(seconds=6.0) + (0.02 * rng.standard_normal(6 * SR)).astype(np.float32)
    full = tmp_path / f"full{suffix}"
    sf.write(full, y, SR, format=fmt, subtype=subtype)
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: int(len(data) * 0.6)])

    try:
        audio = load_audio(cut, SR)
    except CorruptAudioError as error:  # the other acceptable outcome: a clear refusal
        assert str(error).startswith(f"cut{suffix}: ")
        return
    assert 1.5 < audio.seconds < 5.5
    assert peak_hz(audio) == pytest.approx(440, abs=3)


def test_wav_cut_inside_the_header_area_is_too_short(tmp_path: Path) -> None:
    full = tmp_path / "full.wav"
    sf.write(full, tone(seconds=2.0), SR, subtype="PCM_16")
    cut = tmp_path / "stub.wav"
    cut.write_bytes(full.read_bytes()[:60])  # header + 8 samples
    with pytest.raises(TooShortError, match=r"^stub\.wav: the clip is 0\.00 s long"):
        load_audio(cut, SR)


def test_silence(tmp_path: Path) -> None:
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(3 * SR, dtype=np.float32), SR)
    with pytest.raises(SilentAudioError) as info:
        load_audio(path, SR)
    message = str(info.value)
    assert message.startswith("quiet.wav: ")
    assert "silent" in message


def test_near_silence_below_threshold_is_silent(tmp_path: Path) -> None:
    path = tmp_path / "hiss.wav"
    sf.write(path, tone(amp=1e-5), SR, subtype="FLOAT")
    with pytest.raises(SilentAudioError):
        load_audio(path, SR)
    # ... and a lower threshold lets the same clip through
    assert load_audio(path, SR, AudioLimits(silence_rms=1e-7)).seconds == pytest.approx(3.0)


def test_too_short(tmp_path: Path) -> None:
    path = tmp_path / "blip.wav"
    sf.write(path, tone(seconds=0.2), SR)
    with pytest.raises(TooShortError) as info:
        load_audio(path, SR)
    message = str(info.value)
    assert message.startswith("blip.wav: ")
    assert "0.20 s long" in message
    assert "at least 1 s" in message


@pytest.mark.parametrize("source_rate", [SR, 44100])
def test_float_wav_with_nan_is_corrupt(tmp_path: Path, source_rate: int) -> None:
    y = tone(seconds=2.0, sr=source_rate)
    y[1000:1100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, y, source_rate, subtype="FLOAT")
    with pytest.raises(CorruptAudioError) as info:
        load_audio(path, SR)
    message = str(info.value)
    assert message.startswith("nan.wav: ")
    assert "NaN" in message


def test_wav_with_header_and_zero_frames_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "hollow.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    assert path.stat().st_size > 0  # a valid header, no data
    with pytest.raises(EmptyAudioError) as info:
        load_audio(path, SR)
    message = str(info.value)
    assert message.startswith("hollow.wav: ")
    assert "no audio samples" in message


# --------------------------------------------------------------------------- limits


def test_too_long_is_truncated_to_max_seconds(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, tone(seconds=5.0), SR)

    audio = load_audio(path, SR, AudioLimits(max_seconds=2.0))

    # soundfile reads int(max_seconds * rate) + 1 frames: within one sample of the limit
    assert abs(len(audio.samples) - 2 * SR) <= 1
    assert audio.truncated is True
    assert audio.source_seconds == pytest.approx(5.0)
    assert any("only the first 2 s of 5 s" in note for note in audio.notes)


def test_too_long_with_resampling(tmp_path: Path) -> None:
    path = tmp_path / "long44.wav"
    sf.write(path, tone(seconds=5.0, sr=44100), 44100)

    audio = load_audio(path, SR, AudioLimits(max_seconds=2.0))

    assert audio.seconds == pytest.approx(2.0, abs=2 / SR)
    assert audio.truncated
    assert any("only the first" in note for note in audio.notes)
    assert any("resampled 44100 Hz to 22050 Hz" in note for note in audio.notes)


def test_within_limit_is_not_truncated(tmp_path: Path) -> None:
    path = tmp_path / "fits.wav"
    sf.write(path, tone(seconds=3.0), SR)
    audio = load_audio(path, SR, AudioLimits(max_seconds=10.0))
    assert len(audio.samples) == 3 * SR
    assert audio.truncated is False
    assert audio.notes == ()


def test_from_array_too_long_is_truncated() -> None:
    audio = from_array(tone(seconds=5.0), SR, SR, AudioLimits(max_seconds=2.0))
    assert len(audio.samples) == 2 * SR
    assert audio.truncated
    assert any("only the first 2 s of 5 s" in note for note in audio.notes)


@needs_ffmpeg
def test_too_long_through_ffmpeg_is_reported_as_truncated(tmp_path: Path) -> None:
    path = ffmpeg_make(
        tmp_path / "long.m4a",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100:duration=5",
    )
    audio = load_audio(path, SR, AudioLimits(max_seconds=2.0))
    assert audio.seconds == pytest.approx(2.0, abs=0.01)  # this part holds
    assert audio.truncated


# --------------------------------------------------------------------------- resampling & depth


def test_resample_44100_to_22050_keeps_length_and_pitch(tmp_path: Path) -> None:
    path = tmp_path / "khz.wav"
    sf.write(path, tone(1000.0, seconds=3.0, sr=44100), 44100)

    audio = load_audio(path, SR)

    assert audio.sample_rate == SR
    assert audio.source_sample_rate == 44100
    assert audio.samples.dtype == np.float32
    assert len(audio.samples) == 3 * SR
    assert peak_hz(audio) == pytest.approx(1000.0, abs=1.0)
    assert rms(audio.samples) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    assert "resampled 44100 Hz to 22050 Hz" in audio.notes


@pytest.mark.parametrize(
    ("subtype", "rate", "tolerance"),
    [("PCM_U8", SR, 0.02), ("PCM_24", SR, 1e-3), ("PCM_16", 96000, 0.01), ("FLOAT", 8000, 0.01)],
)
def test_bit_depths_and_rates_load(
    tmp_path: Path, subtype: str, rate: int, tolerance: float
) -> None:
    path = tmp_path / f"{subtype.lower()}_{rate}.wav"
    sf.write(path, tone(1000.0, seconds=2.0, sr=rate), rate, subtype=subtype)

    audio = load_audio(path, SR)

    assert audio.source_sample_rate == rate
    assert len(audio.samples) == pytest.approx(2 * SR, abs=1)
    assert peak_hz(audio) == pytest.approx(1000.0, abs=1.0)
    assert rms(audio.samples) == pytest.approx(0.5 / np.sqrt(2), abs=tolerance)
    assert abs(float(audio.samples.mean())) < 0.01  # 8-bit unsigned is re-centred
    resampled = [note for note in audio.notes if note.startswith("resampled")]
    assert resampled == ([] if rate == SR else [f"resampled {rate} Hz to {SR} Hz"])


# --------------------------------------------------------------------------- downmixing


def test_stereo_downmix_is_the_channel_mean(tmp_path: Path) -> None:
    base = tone(seconds=2.0, amp=1.0)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([0.6 * base, 0.2 * base], axis=1), SR, subtype="FLOAT")

    audio = load_audio(path, SR)

    assert audio.source_channels == 2
    np.testing.assert_allclose(audio.samples, 0.4 * base, atol=1e-6)
    assert "downmixed 2 channels to mono" in audio.notes


def test_stereo_in_antiphase_cancels_to_silence(tmp_path: Path) -> None:
    """L = sine, R = -sine: the mono mean is exactly zero, so the clip is rejected as silent."""
    base = tone(seconds=2.0)
    path = tmp_path / "antiphase.wav"
    sf.write(path, np.stack([base, -base], axis=1), SR, subtype="FLOAT")
    with pytest.raises(SilentAudioError, match=r"^antiphase\.wav: "):
        load_audio(path, SR)


def test_six_channel_downmix(tmp_path: Path) -> None:
    base = tone(seconds=2.0, sr=44100, amp=1.0)
    gains = np.arange(1, 7) / 10.0  # mean 0.35
    path = tmp_path / "surround.wav"
    sf.write(path, base[:, None] * gains[None, :], 44100, subtype="FLOAT")

    audio = load_audio(path, SR)

    assert audio.source_channels == 6
    assert len(audio.samples) == 2 * SR
    assert rms(audio.samples) == pytest.approx(0.35 / np.sqrt(2), rel=0.01)
    assert audio.notes == ("downmixed 6 channels to mono", "resampled 44100 Hz to 22050 Hz")


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("fmt", "subtype", "suffix"),
    [
        ("WAV", "PCM_16", ".wav"),
        ("FLAC", "PCM_16", ".flac"),
        ("OGG", "VORBIS", ".ogg"),
        ("MP3", "MPEG_LAYER_III", ".mp3"),
    ],
)
def test_soundfile_formats_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, subtype: str, suffix: str
) -> None:
    path = tmp_path / f"clip{suffix}"
    sf.write(path, tone(seconds=3.0), SR, format=fmt, subtype=subtype)

    def no_ffmpeg(*args, **kwargs):
        raise AssertionError("soundfile should decode this format by itself")

    monkeypatch.setattr(audio_mod, "_decode_with_ffmpeg", no_ffmpeg)
    audio = load_audio(path, SR)

    assert audio.seconds == pytest.approx(3.0, abs=0.1)
    assert peak_hz(audio) == pytest.approx(440.0, abs=2.0)
    assert rms(audio.samples) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


@needs_ffmpeg
@pytest.mark.parametrize(
    ("name", "inputs"),
    [
        ("clip.m4a", ["-c:a", "aac"]),
        ("clip.aac", ["-c:a", "aac"]),
        (
            "clip.mp4",
            ["-f", "lavfi", "-i", "color=c=black:s=32x32:d=3", "-shortest", "-c:v", "mpeg4"],
        ),
    ],
)
def test_ffmpeg_fallback_formats_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, inputs: list[str]
) -> None:
    source = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3"]
    path = ffmpeg_make(tmp_path / name, *source, *inputs)

    calls: list[Path] = []
    real = audio_mod._decode_with_ffmpeg

    def spy(path, name, max_seconds):
        calls.append(path)
        return real(path, name, max_seconds)

    monkeypatch.setattr(audio_mod, "_decode_with_ffmpeg", spy)
    audio = load_audio(path, SR)

    assert calls == [path]
    assert audio.seconds == pytest.approx(3.0, abs=0.1)
    assert peak_hz(audio) == pytest.approx(440.0, abs=2.0)
    assert rms(audio.samples) > 0.01  # lavfi's sine is at 1/8 full scale
    assert any(note.startswith("resampled") for note in audio.notes)


# --------------------------------------------------------------------------- from_array


def test_from_array_int16() -> None:
    y = tone(seconds=2.0)
    ints = np.round(y * 32767).astype(np.int16)

    audio = from_array(ints, SR, SR)

    assert audio.samples.dtype == np.float32
    np.testing.assert_allclose(audio.samples, y, atol=1e-4)
    assert audio.source_channels == 1


@pytest.mark.parametrize("layout", ["channels_frames", "frames_channels"])
def test_from_array_two_dimensional_float(layout: str) -> None:
    base = tone(seconds=2.0, amp=1.0)
    stereo = np.stack([0.6 * base, 0.2 * base])  # (channels, frames)
    if layout == "frames_channels":
        stereo = stereo.T

    audio = from_array(stereo, SR, SR)

    assert audio.source_channels == 2
    assert len(audio.samples) == len(base)
    np.testing.assert_allclose(audio.samples, 0.4 * base, atol=1e-6)
    assert "downmixed 2 channels to mono" in audio.notes


def test_from_array_int16_channels_by_frames_is_scaled() -> None:
    base = tone(seconds=2.0, amp=1.0)
    stereo = np.round(np.stack([0.6 * base, 0.2 * base]) * 32767).astype(np.int16)

    audio = from_array(stereo, 44100, SR)

    assert audio.source_channels == 2
    assert len(audio.samples) == len(base) // 2
    assert float(np.abs(audio.samples).max()) == pytest.approx(0.4, abs=0.01)


def test_from_array_resamples_and_validates() -> None:
    audio = from_array(tone(1000.0, seconds=2.0, sr=44100), 44100, SR)
    assert len(audio.samples) == 2 * SR
    assert peak_hz(audio) == pytest.approx(1000.0, abs=1.0)
    with pytest.raises(TooShortError, match=r"^mic: "):
        from_array(tone(seconds=0.5), SR, SR, name="mic")
    with pytest.raises(EmptyAudioError, match=r"^clip: "):
        from_array(np.zeros(0, dtype=np.float32), SR, SR)


# --------------------------------------------------------------------------- segments


@pytest.mark.parametrize(
    ("seconds", "segment", "hop", "starts"),
    [
        (3.0, 10.0, 10.0, [0.0]),  # shorter than a segment -> one (short) row
        (10.0, 10.0, 10.0, [0.0]),
        (14.9, 10.0, 10.0, [0.0]),  # 4.9 s tail < half a segment: dropped
        (15.0, 10.0, 10.0, [0.0, 10.0]),  # exactly half: kept
        (25.0, 10.0, 10.0, [0.0, 10.0, 20.0]),
        (34.9, 10.0, 10.0, [0.0, 10.0, 20.0]),
        (35.0, 10.0, 10.0, [0.0, 10.0, 20.0, 30.0]),
        (22.0, 10.0, 5.0, [0.0, 5.0, 10.0, 15.0]),  # overlapping; stops at the end
        (2.0, 1.0, 0.5, [0.0, 0.5, 1.0]),
    ],
)
def test_segments_counts_and_starts(
    seconds: float, segment: float, hop: float, starts: list[float]
) -> None:
    sr = 100
    samples = np.arange(round(seconds * sr), dtype=np.float32)

    got = list(segments(samples, sr, segment, hop))

    assert [start for start, _ in got] == pytest.approx(starts)
    size = int(segment * sr)
    for start, window in got:
        first = round(start * sr)
        np.testing.assert_array_equal(window, samples[first : first + size])
        assert len(window) <= size
        assert len(window) >= min(size // 2, len(samples))


def test_segments_of_empty_input_is_one_empty_window() -> None:
    got = list(segments(np.zeros(0, dtype=np.float32), 100, 10.0, 10.0))
    assert len(got) == 1
    assert got[0][0] == 0.0
    assert got[0][1].size == 0
