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

import json
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from core.config import AudioLimits

SUPPORTED_BY_SOUNDFILE = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif"}
# libsndfile's own formats that are accepted; its exotic ones (MAT5, PVF, XI, ...) are not.
SOUNDFILE_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "FLAC", "OGG", "MP3", "AIFF", "CAF"})
# ffmpeg demuxers a clip may come in: single-stream audio files and A/V containers whose
# demuxers never open other files (mov's external references are off by default).
FFMPEG_DEMUXERS = (
    "wav", "w64", "flac", "ogg", "mp3", "mov", "aac", "matroska", "aiff", "caf", "wv",
)  # fmt: skip
SUPPORTED_TEXT = "wav, flac, ogg, mp3, m4a/mp4/aac, webm/mkv, aiff"
MIN_RATE, MAX_RATE = 1000, 192_000  # Hz a header may claim
MAX_CHANNELS = 64
MAX_PEAK = 64.0  # |sample| beyond 36 dB over full scale is garbage, not loud music
BLOCK_FRAMES = 1 << 16
SNIFF_BYTES = 4096
FFPROBE_TIMEOUT_S = 20
FFMPEG_TIMEOUT_S = 120
FFMPEG_MAX_OUTPUT_RATE = 96_000  # ffmpeg resamples anything above (bounds its output size)


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


# --------------------------------------------------------------------------- sniffing

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"%PDF-", "PDF document"),
    (b"PK\x03\x04", "ZIP archive or office document"),
    (b"\x1f\x8b", "gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"Rar!", "RAR archive"),
    (b"\x7fELF", "program (ELF executable)"),
    (b"MZ", "Windows program"),
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
    (b"SQLite format 3\x00", "SQLite database"),
)


_AUDIO_MAGIC = (b"RIFF", b"RF64", b"fLaC", b"OggS", b"ID3", b"FORM", b"caff", b".snd", b"wvpk")


def refuse_non_audio(head: bytes, name: str) -> None:
    """Refuse what is certainly not a recording from its first bytes, before a decoder (which
    might follow a playlist's references) sees it."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            raise NotAudioError(f"{name}: not an audio file (looks like {kind}).")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        raise NotAudioError(f"{name}: not an audio file (looks like WebP image).")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        raise NotAudioError(f"{name}: AVI video is not accepted; upload the audio itself.")
    if head.startswith(_AUDIO_MAGIC):
        if len(head) < 32 and not head.startswith(b"ID3"):  # a bare ID3 tag: decoders say
            raise CorruptAudioError(
                f"{name}: the file is truncated ({len(head)} bytes: not even a whole header)."
            )
        return
    text = _as_text(head)
    if text is None:
        return
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("#EXTM3U") or "#EXT-X-" in text or "#EXTINF" in text:
        raise NotAudioError(
            f"{name}: not an audio file (a playlist that points to other media); "
            "upload the recording itself."
        )
    if stripped.startswith("ffconcat") or stripped.lower().startswith("file "):
        raise NotAudioError(
            f"{name}: not an audio file (a concat list that points to other media); "
            "upload the recording itself."
        )
    raise NotAudioError(f"{name}: not an audio file (text).")


def _as_text(head: bytes) -> str | None:
    """The head decoded when it is plainly text: no NUL, UTF-8 (a multi-byte character cut
    at the end is allowed) or else Latin-1, and almost no control characters."""
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start >= len(head) - 3 and error.reason.startswith("unexpected end"):
            text = head[: error.start].decode("utf-8")
        else:
            text = head.decode("latin-1")
    controls = sum((ord(c) < 32 and c not in "\t\n\r\f") or 127 <= ord(c) < 160 for c in text)
    return text if text and controls <= 0.02 * len(text) else None


def check_header(name: str, rate: float, channels: int, container: str = "header") -> None:
    """Header values a decoder would choke on or turn into a memory bomb."""
    if channels <= 0:
        raise CorruptAudioError(
            f"{name}: the {container} is invalid: it says {channels} audio channels."
        )
    if rate <= 0:
        raise CorruptAudioError(f"{name}: the {container} is invalid: sample rate {rate:g} Hz.")
    if channels > MAX_CHANNELS:
        raise CorruptAudioError(
            f"{name}: the {container} says {channels} channels; at most {MAX_CHANNELS} "
            "are accepted."
        )
    if not MIN_RATE <= rate <= MAX_RATE:
        raise CorruptAudioError(
            f"{name}: the {container} says a sample rate of {rate:g} Hz; "
            f"{MIN_RATE}-{MAX_RATE} Hz are accepted."
        )


def _check_wav_header(path: Path, name: str) -> None:
    """RIFF/RF64 WAVE: read the ``fmt `` chunk ourselves, so that 0 channels or rate 0 get a
    message naming the field rather than a decoder's generic failure."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return
    offset = 12
    while offset + 8 <= len(head):
        chunk, size = (
            head[offset : offset + 4],
            struct.unpack("<I", head[offset + 4 : offset + 8])[0],
        )
        if chunk == b"fmt ":
            body = head[offset + 8 : offset + 8 + min(size, 16)]
            if len(body) < 16:
                raise CorruptAudioError(f"{name}: the WAV header is truncated (no format).")
            _tag, channels, rate, _bps, _align, bits = struct.unpack("<HHIIHH", body)
            check_header(name, rate, channels, "WAV header")
            if bits == 0:
                raise CorruptAudioError(
                    f"{name}: the WAV header is invalid: it says 0 bits per sample."
                )
            return
        offset += 8 + size + (size & 1)


# --------------------------------------------------------------------------- decoding


def _decode(path: Path, name: str, max_seconds: float) -> tuple[np.ndarray, int, int, float]:
    """(mono samples, rate, source channels, source seconds): soundfile first (wav, flac, ogg,
    mp3), anything else through ffmpeg when present."""
    _check_wav_header(path, name)
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
    probe = _probe(ffprobe, path, name)
    check_header(name, probe.sample_rate, probe.channels, f"{probe.demuxer} stream")
    rate = min(probe.sample_rate, FFMPEG_MAX_OUTPUT_RATE)
    command = [
        ffmpeg, "-nostdin", "-v", "error", *_restricted(), "-f", probe.demuxer, "-i", "pipe:0",
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


def _restricted() -> list[str]:
    """Options that keep ffmpeg/ffprobe on the bytes they are given: stdin only, and only
    demuxers that read one self-contained stream."""
    return ["-protocol_whitelist", "pipe", "-format_whitelist", ",".join(FFMPEG_DEMUXERS)]


@dataclass(frozen=True)
class Probe:
    demuxer: str  # the allowlisted name passed to ``-f``
    sample_rate: int
    channels: int
    duration: float | None


def _probe(ffprobe: str, path: Path, name: str) -> Probe:
    """Container and first audio stream, read from stdin by an ffprobe that may only use
    allowlisted demuxers; anything else is refused here, before decoding."""
    command = [
        ffprobe, "-v", "error", *_restricted(), "-i", "pipe:0", "-of", "json",
        "-show_entries", "format=format_name,duration:stream=codec_type,sample_rate,channels",
    ]  # fmt: skip
    with path.open("rb") as stdin:
        try:
            result = subprocess.run(
                command, stdin=stdin, capture_output=True, timeout=FFPROBE_TIMEOUT_S, check=False
            )
            info = json.loads(result.stdout or b"{}")
        except subprocess.TimeoutExpired as error:
            raise CorruptAudioError(
                f"{name}: reading the file took too long; giving up."
            ) from error
        except json.JSONDecodeError:
            info = {}
    format_name = (info.get("format") or {}).get("format_name") or ""
    demuxer = next((d for d in format_name.split(",") if d in FFMPEG_DEMUXERS), None)
    if result.returncode != 0 or demuxer is None:
        raise NotAudioError(
            f"{name}: not a readable audio file (format not recognised or not accepted). "
            f"Use {SUPPORTED_TEXT}."
        )
    audio = [s for s in info.get("streams") or [] if s.get("codec_type") == "audio"]
    if not audio:
        raise NotAudioError(
            f"{name}: the file has no audio track (a video or other media without sound). "
            "Upload a recording with sound."
        )
    duration = (info.get("format") or {}).get("duration")
    return Probe(
        demuxer=demuxer,
        sample_rate=_int(audio[0].get("sample_rate")),
        channels=_int(audio[0].get("channels")),
        duration=float(duration) if duration not in (None, "N/A") else None,
    )


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


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
