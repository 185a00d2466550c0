"""Refusing non-audio before any decoder sees it: magic bytes, text, playlists, and header
values (rate, channels) that no real recording has."""

import struct
from pathlib import Path

from core.audio_formats import (
    MAX_CHANNELS,
    MAX_RATE,
    MIN_RATE,
    SNIFF_BYTES,
    CorruptAudioError,
    NotAudioError,
)

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


def check_wav_header(path: Path, name: str) -> None:
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
