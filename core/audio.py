"""Decode any audio clip into a mono float32 waveform at the analysis rate, or say why not.

Every failure is an ``AudioError`` subclass whose message names the file and the problem in
words a user can act on; front doors show ``str(error)`` as is.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from core.config import AudioLimits

SUPPORTED_BY_SOUNDFILE = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif"}


class AudioError(ValueError):
    """Base class: the input cannot be analysed."""


class NotAudioError(AudioError):
    pass


class CorruptAudioError(AudioError):
    pass


class EmptyAudioError(AudioError):
    pass


class SilentAudioError(AudioError):
    pass


class TooShortError(AudioError):
    pass


class DecoderMissingError(AudioError):
    pass


@dataclass(frozen=True)
class Audio:
    """A decoded clip, with what was done to it (for messages and the prediction store)."""

    samples: np.ndarray  # mono float32 at ``sample_rate``
    sample_rate: int
    source_sample_rate: int
    source_channels: int
    source_seconds: float
    truncated: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def load_audio(path: str | Path, sample_rate: int, limits: AudioLimits | None = None) -> Audio:
    """Decode, downmix, trim to ``limits.max_seconds``, resample and validate one file."""
    limits = limits or AudioLimits()
    path = Path(path)
    if not path.is_file():
        raise NotAudioError(f"{path.name}: file not found ({path}).")
    if path.stat().st_size == 0:
        raise EmptyAudioError(f"{path.name}: the file is empty (0 bytes).")
    data, source_rate = _decode(path, limits.max_seconds)
    if data.ndim == 2:
        channels = data.shape[1]
        data = data.mean(axis=1)
    else:
        channels = 1
    source_seconds = _source_duration(path, len(data) / source_rate)
    return validate(
        _finish(data, source_rate, channels, source_seconds, sample_rate, limits),
        path.name,
        limits,
    )


def from_array(
    samples: np.ndarray,
    source_rate: int,
    sample_rate: int,
    limits: AudioLimits | None = None,
    name: str = "clip",
) -> Audio:
    """The same checks for audio that arrives as an array (microphone, tests)."""
    limits = limits or AudioLimits()
    data = np.asarray(samples)
    if np.issubdtype(data.dtype, np.integer):  # scale before downmixing (mean gives float64)
        info = np.iinfo(data.dtype)
        centre = (info.max + info.min + 1) / 2  # 128 for uint8, 0 for signed types
        data = (data.astype(np.float32) - centre) / float(info.max - centre)
    if data.ndim == 2:
        # Accept (frames, channels) and (channels, frames): channels is the short axis.
        if data.shape[0] < data.shape[1]:
            data = data.T
        channels = data.shape[1]
        data = data.mean(axis=1)
    else:
        channels = 1
    max_frames = int(limits.max_seconds * source_rate)
    source_seconds = len(data) / source_rate if source_rate else 0.0
    audio = _finish(data[:max_frames], source_rate, channels, source_seconds, sample_rate, limits)
    return validate(audio, name, limits)


def validate(audio: Audio, name: str, limits: AudioLimits) -> Audio:
    """Reject clips with nothing to analyse; the order matches what a user would fix first."""
    y = audio.samples
    if y.size == 0:
        raise EmptyAudioError(f"{name}: the file decodes to no audio samples.")
    if not np.all(np.isfinite(y)):
        raise CorruptAudioError(f"{name}: the audio contains NaN or infinite sample values.")
    if audio.seconds < limits.min_seconds:
        raise TooShortError(
            f"{name}: the clip is {audio.seconds:.2f} s long; at least "
            f"{limits.min_seconds:g} s is needed."
        )
    rms = float(np.sqrt(np.dot(y, y) / y.size))  # one BLAS pass, no float64 copy
    if rms < limits.silence_rms:
        raise SilentAudioError(
            f"{name}: the clip is silent (RMS level {rms:.1e}); record or upload music."
        )
    return audio


def segments(
    samples: np.ndarray, sample_rate: int, segment_seconds: float, hop_seconds: float
) -> Iterator[tuple[float, np.ndarray]]:
    """Fixed-length windows (start second, samples); a tail shorter than half a segment is
    dropped unless it is the only one, so short clips still give one row."""
    size = round(segment_seconds * sample_rate)
    hop = max(1, round(hop_seconds * sample_rate))
    n = len(samples)
    if n <= size:
        yield 0.0, samples
        return
    for start in range(0, n, hop):
        window = samples[start : start + size]
        if len(window) < size // 2:
            break
        yield start / sample_rate, window
        if start + size >= n:
            break


def _decode(path: Path, max_seconds: float) -> tuple[np.ndarray, int]:
    """soundfile first (wav, flac, ogg, mp3); anything else through ffmpeg when present."""
    try:
        with sf.SoundFile(path) as handle:
            frames = min(handle.frames, int(max_seconds * handle.samplerate))
            data = handle.read(frames=frames, dtype="float32", always_2d=False)
            rate = handle.samplerate
    except sf.LibsndfileError as error:
        if path.suffix.lower() in SUPPORTED_BY_SOUNDFILE and _looks_truncated(error):
            raise CorruptAudioError(
                f"{path.name}: the audio data is corrupt or truncated ({error})."
            ) from error
        return _decode_with_ffmpeg(path, max_seconds, error)
    except RuntimeError as error:  # libsndfile decode errors surface as RuntimeError too
        raise CorruptAudioError(f"{path.name}: the audio data is corrupt ({error}).") from error
    if rate <= 0:
        raise CorruptAudioError(f"{path.name}: the header gives no valid sample rate.")
    return data, rate


def _looks_truncated(error: Exception) -> bool:
    text = str(error).lower()
    return "truncat" in text or "unexpected end" in text or "malformed" in text


def _decode_with_ffmpeg(path: Path, max_seconds: float, cause: Exception) -> tuple[np.ndarray, int]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise DecoderMissingError(
            f"{path.name}: not a format this machine can decode without ffmpeg "
            f"(soundfile says: {cause}). Use wav, flac, ogg or mp3, or install ffmpeg."
        ) from cause
    duration, probed_rate = _probe(path)
    rate = probed_rate or 44100
    command = [
        ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-t", str(max_seconds),
        "-vn", "-ac", "1", "-ar", str(rate), "-f", "f32le", "-",
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as error:
        raise CorruptAudioError(f"{path.name}: decoding took too long; giving up.") from error
    if result.returncode != 0 or not result.stdout:
        if duration is not None and probed_rate is None:  # ffprobe read it: no audio stream
            raise NotAudioError(
                f"{path.name}: the file has no audio track (a video or other media without "
                "sound). Upload a recording with sound."
            )
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        reason = (detail[-1] if detail else "no audio stream").replace(str(path), path.name)
        raise NotAudioError(
            f"{path.name}: not a readable audio file ({reason}). "
            "Supported: wav, mp3, ogg, flac (others need ffmpeg)."
        )
    return np.frombuffer(result.stdout, dtype=np.float32).copy(), rate


def _probe(path: Path) -> tuple[float | None, int | None]:
    """Duration and native rate from ffprobe, so ffmpeg decodes without resampling twice and
    a long clip is reported as truncated even though ffmpeg stops at the limit."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return None, None
    command = [
        ffprobe, "-v", "error", "-select_streams", "a:0", "-of", "json",
        "-show_entries", "stream=sample_rate:format=duration", str(path),
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, timeout=30, check=False)
        info = json.loads(result.stdout or b"{}")
    except (subprocess.TimeoutExpired, json.JSONDecodeError):
        return None, None
    streams = info.get("streams") or [{}]
    rate = streams[0].get("sample_rate")
    duration = (info.get("format") or {}).get("duration")
    return (float(duration) if duration else None), (int(rate) if rate else None)


def _source_duration(path: Path, decoded_seconds: float) -> float:
    try:
        return float(sf.info(path).duration)
    except (sf.LibsndfileError, RuntimeError):
        probed, _ = _probe(path)
        return max(probed or 0.0, decoded_seconds)


def _finish(
    data: np.ndarray,
    source_rate: int,
    channels: int,
    source_seconds: float,
    sample_rate: int,
    limits: AudioLimits,
) -> Audio:
    data = np.ascontiguousarray(data, dtype=np.float32)
    notes: list[str] = []
    truncated = source_seconds > limits.max_seconds + 1e-6
    if truncated:
        notes.append(
            f"only the first {limits.max_seconds:g} s of {source_seconds:.0f} s were analysed"
        )
    if channels > 1:
        notes.append(f"downmixed {channels} channels to mono")
    if source_rate != sample_rate and data.size:
        data = soxr.resample(data, source_rate, sample_rate, quality="HQ").astype(np.float32)
        notes.append(f"resampled {source_rate} Hz to {sample_rate} Hz")
    return Audio(
        samples=data,
        sample_rate=sample_rate,
        source_sample_rate=source_rate,
        source_channels=channels,
        source_seconds=source_seconds,
        truncated=truncated,
        notes=tuple(notes),
    )
