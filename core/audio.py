"""Decode any audio clip into a mono float32 waveform at the analysis rate, or say why not.

Every failure is an ``AudioError`` subclass whose message starts with the file's display name
and names the problem in words a user can act on; front doors show ``str(error)`` as is.
Messages never contain a server path (uploads live in temporary folders).

Hostile input is expected (uploads come from anyone):
- the first bytes are sniffed: images, documents, archives, text, playlists and concat lists
  are refused before any decoder sees them;
- libsndfile gets an open file object, never a path (with a path, a file it cannot identify
  makes it look for an SD2 resource fork *next to* the file: ``._name``, ``.AppleDouble/``);
- ffmpeg/ffprobe read the bytes on stdin (``-i pipe:0``) with ``-protocol_whitelist pipe``,
  so they cannot open any file or URL a playlist names, and ``-format_whitelist`` limits
  them to plain audio/AV containers (no HLS, concat, image sequences, ...); the probe's
  format is checked against the same allowlist and forced with ``-f`` for decoding;
- header values are checked (0 channels, rate 0, absurd rates or channel counts) and
  decoding is bounded: block-wise reads, at most ``max_seconds`` decoded, subprocess timeouts;
- decoded samples must be finite and within a sane range of full scale.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from core.audio_ffmpeg import Probe, probe_stream, restricted_options
from core.audio_formats import (
    BLOCK_FRAMES,
    FFMPEG_DEMUXERS,
    FFMPEG_MAX_OUTPUT_RATE,
    FFMPEG_TIMEOUT_S,
    FFPROBE_TIMEOUT_S,
    MAX_CHANNELS,
    MAX_PEAK,
    MAX_RATE,
    MIN_RATE,
    SNIFF_BYTES,
    SOUNDFILE_FORMATS,
    SUPPORTED_BY_SOUNDFILE,
    SUPPORTED_TEXT,
    AudioError,
    CorruptAudioError,
    DecoderMissingError,
    EmptyAudioError,
    NotAudioError,
    SilentAudioError,
    TooShortError,
)
from core.audio_sniff import check_header, check_wav_header, refuse_non_audio
from core.config import AudioLimits

__all__ = [
    "BLOCK_FRAMES",
    "FFMPEG_DEMUXERS",
    "FFMPEG_MAX_OUTPUT_RATE",
    "FFMPEG_TIMEOUT_S",
    "FFPROBE_TIMEOUT_S",
    "MAX_CHANNELS",
    "MAX_PEAK",
    "MAX_RATE",
    "MIN_RATE",
    "SNIFF_BYTES",
    "SOUNDFILE_FORMATS",
    "SUPPORTED_BY_SOUNDFILE",
    "SUPPORTED_TEXT",
    "Audio",
    "AudioError",
    "CorruptAudioError",
    "DecoderMissingError",
    "EmptyAudioError",
    "NotAudioError",
    "Probe",
    "SilentAudioError",
    "TooShortError",
    "check_header",
    "from_array",
    "load_audio",
    "refuse_non_audio",
    "segments",
    "validate",
]


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


def load_audio(
    path: str | Path,
    sample_rate: int,
    limits: AudioLimits | None = None,
    name: str | None = None,
) -> Audio:
    """Decode, downmix, trim to ``limits.max_seconds``, resample and validate one file.
    ``name`` is what messages call the file (default: its file name, never its folder)."""
    limits = limits or AudioLimits()
    path = Path(path)
    name = name or path.name
    if not path.is_file():
        raise NotAudioError(f"{name}: file not found.")
    if path.stat().st_size == 0:
        raise EmptyAudioError(f"{name}: the file is empty (0 bytes).")
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    refuse_non_audio(head, name)
    data, source_rate, channels, source_seconds = _decode(path, name, limits.max_seconds)
    return validate(
        _finish(data, source_rate, channels, source_seconds, sample_rate, limits), name, limits
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
    peak = float(np.max(np.abs(y)))  # NaN propagates, inf stays inf
    if not np.isfinite(peak) or peak > MAX_PEAK:
        raise CorruptAudioError(
            f"{name}: the audio contains non-finite or out-of-range samples (NaN, infinite, "
            f"or peaks far beyond full scale: {peak:.1e}); the file is corrupt."
        )
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


# --------------------------------------------------------------------------- decoding


def _decode(path: Path, name: str, max_seconds: float) -> tuple[np.ndarray, int, int, float]:
    """(mono samples, rate, source channels, source seconds): soundfile first (wav, flac, ogg,
    mp3), anything else through ffmpeg when present."""
    check_wav_header(path, name)
    with path.open("rb") as fileobj:
        try:
            handle = sf.SoundFile(fileobj)  # a file object: libsndfile never sees the path
        except (sf.LibsndfileError, RuntimeError, TypeError) as error:
            reason = _libsndfile_reason(error)
            if path.suffix.lower() in SUPPORTED_BY_SOUNDFILE and _looks_truncated(reason):
                raise CorruptAudioError(
                    f"{name}: the audio data is corrupt or truncated ({reason})."
                ) from error
            return _decode_with_ffmpeg(path, name, max_seconds)
        with handle:
            if handle.format not in SOUNDFILE_FORMATS:
                raise NotAudioError(
                    f"{name}: {handle.format} files are not accepted. Use {SUPPORTED_TEXT}."
                )
            check_header(name, handle.samplerate, handle.channels, f"{handle.format} header")
            try:
                decoded = _read_blocks(handle, max_seconds)
            except (sf.LibsndfileError, RuntimeError) as error:
                # e.g. "flac decoder lost sync" on a cut upload: ffmpeg decodes what is there
                reason = _libsndfile_reason(error)
                return _ffmpeg_or_corrupt(path, name, max_seconds, reason, error)
    if not len(decoded[0]) and path.stat().st_size > SNIFF_BYTES:
        # libsndfile found nothing in a sizeable file (a cut Ogg stream): ask ffmpeg
        return _ffmpeg_or_corrupt(path, name, max_seconds, "no samples found", None)
    return decoded


def _ffmpeg_or_corrupt(
    path: Path, name: str, max_seconds: float, reason: str, cause: Exception | None
) -> tuple[np.ndarray, int, int, float]:
    try:
        return _decode_with_ffmpeg(path, name, max_seconds)
    except AudioError as error:
        raise CorruptAudioError(
            f"{name}: the audio data is corrupt or truncated ({reason})."
        ) from cause or error


def _read_blocks(handle: sf.SoundFile, max_seconds: float) -> tuple[np.ndarray, int, int, float]:
    """Read in blocks, downmixing each: memory follows the data actually present (a header
    may claim hours), never more than ``max_seconds`` of mono samples."""
    rate, channels = handle.samplerate, handle.channels
    limit = int(max_seconds * rate)
    parts: list[np.ndarray] = []
    read = 0
    while read < limit:
        block = handle.read(frames=min(BLOCK_FRAMES, limit - read), dtype="float32", always_2d=True)
        if not len(block):
            break
        parts.append(block.mean(axis=1) if channels > 1 else block[:, 0])
        read += len(block)
    data = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    claimed = handle.frames / rate if 0 < handle.frames < 2**62 else 0.0
    source_seconds = max(claimed, read / rate) if read >= limit else read / rate
    return data, rate, channels, source_seconds


def _libsndfile_reason(error: Exception) -> str:
    """libsndfile's own words without the object or path it was given."""
    reason = getattr(error, "error_string", None) or str(error).rsplit(":", 1)[-1]
    reason = reason.strip().removeprefix("Error :").strip()
    return reason.rstrip(".") or "unreadable"


def _looks_truncated(text: str) -> bool:
    text = text.lower()
    return "truncat" in text or "unexpected end" in text or "malformed" in text


def _decode_with_ffmpeg(
    path: Path, name: str, max_seconds: float
) -> tuple[np.ndarray, int, int, float]:
    ffmpeg, ffprobe = shutil.which("ffmpeg"), shutil.which("ffprobe")
    if ffmpeg is None or ffprobe is None:
        raise DecoderMissingError(
            f"{name}: not a format this machine can decode without ffmpeg. "
            "Use wav, flac, ogg or mp3, or install ffmpeg."
        )
    probe = probe_stream(ffprobe, path, name)
    check_header(name, probe.sample_rate, probe.channels, f"{probe.demuxer} stream")
    rate = min(probe.sample_rate, FFMPEG_MAX_OUTPUT_RATE)
    command = [
        ffmpeg, "-nostdin", "-v", "error", *restricted_options(),
        "-f", probe.demuxer, "-i", "pipe:0",
        "-map", "0:a:0", "-t", f"{max_seconds:g}", "-vn", "-sn", "-dn",
        "-ac", "1", "-ar", str(rate), "-f", "f32le", "pipe:1",
    ]  # fmt: skip
    with path.open("rb") as stdin:
        try:
            result = subprocess.run(
                command, stdin=stdin, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as error:
            raise CorruptAudioError(f"{name}: decoding took too long; giving up.") from error
    if result.returncode != 0 and not result.stdout:
        raise CorruptAudioError(
            f"{name}: the {probe.demuxer} audio could not be decoded (corrupt or truncated)."
        )
    data = np.frombuffer(result.stdout[: len(result.stdout) // 4 * 4], dtype=np.float32).copy()
    decoded = len(data) / rate
    reached_limit = decoded >= max_seconds - 1.0 / rate
    source_seconds = max(probe.duration or 0.0, decoded) if reached_limit else decoded
    return data, rate, probe.channels, source_seconds


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
