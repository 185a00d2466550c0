"""ffprobe, locked down: only stdin, only allowlisted demuxers; what the first audio stream
is (``core.audio`` decodes with ffmpeg under the same options)."""

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from core.audio_formats import (
    FFMPEG_DEMUXERS,
    FFPROBE_TIMEOUT_S,
    SUPPORTED_TEXT,
    CorruptAudioError,
    NotAudioError,
)


def restricted_options() -> list[str]:
    """Options that keep ffmpeg/ffprobe on the bytes they are given: stdin only, and only
    demuxers that read one self-contained stream."""
    return ["-protocol_whitelist", "pipe", "-format_whitelist", ",".join(FFMPEG_DEMUXERS)]


@dataclass(frozen=True)
class Probe:
    demuxer: str  # the allowlisted name passed to ``-f``
    sample_rate: int
    channels: int
    duration: float | None


def probe_stream(ffprobe: str, path: Path, name: str) -> Probe:
    """Container and first audio stream, read from stdin by an ffprobe that may only use
    allowlisted demuxers; anything else is refused here, before decoding."""
    command = [
        ffprobe, "-v", "error", *restricted_options(), "-i", "pipe:0", "-of", "json",
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
        sample_rate=as_int(audio[0].get("sample_rate")),
        channels=as_int(audio[0].get("channels")),
        duration=float(duration) if duration not in (None, "N/A") else None,
    )


def as_int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
