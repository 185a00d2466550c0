"""Hostile uploads straight into ``core.audio.load_audio``: more than a hundred generated
inputs (headers that lie, extreme rates and channel counts, non-finite and huge values,
truncations at many offsets, wrong extensions, containers without audio, playlists and concat
lists that point at a file outside the upload folder, compressed-silence bombs).

Each must either decode to a valid clip or raise an ``AudioError`` whose message starts with
the file's name, names the problem, and shows no server path; none may raise anything else
or take long. The app-level subset is in ``tests/app/test_bad_inputs.py``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core import audio as audio_mod
from core.audio import (
    AudioError,
    CorruptAudioError,
    EmptyAudioError,
    NotAudioError,
    SilentAudioError,
    TooShortError,
    load_audio,
)
from core.config import AudioLimits

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed"),
]

SR = 22050
LIMITS = AudioLimits(max_seconds=5.0)
MAX_CASE_SECONDS = 10.0  # a case that takes longer is treated as a hang


# --------------------------------------------------------------------------- signals & files


def tone(seconds: float = 2.0, sr: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    y = (0.4 * np.sin(2 * np.pi * 440.0 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(
        np.float32
    )
    return y if channels == 1 else np.repeat(y[:, None], channels, axis=1)


def pcm16(seconds: float = 2.0, sr: int = SR, channels: int = 1) -> bytes:
    y = tone(seconds, min(sr, 48000) if sr > 0 else SR, channels)
    return (y * 32767).astype("<i2").tobytes()


def riff_wav(
    *,
    tag: int = 1,
    channels: int = 1,
    rate: int = SR,
    bits: int = 16,
    data: bytes | None = None,
    data_size: int | None = None,
    riff_size: int | None = None,
) -> bytes:
    """A RIFF/WAVE file written by hand, so every header field can lie."""
    data = pcm16() if data is None else data
    align = (max(channels, 0) * bits // 8) & 0xFFFF
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * align) & 0xFFFFFFFF, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data) if data_size is None else data_size) + data
    size = len(body) if riff_size is None else riff_size
    return b"RIFF" + struct.pack("<I", size & 0xFFFFFFFF) + body


def write(path: Path, payload: bytes) -> Path:
    path.write_bytes(payload)
    return path


def ffmpeg(target: Path, *args: str) -> Path:
    command = ["ffmpeg", "-nostdin", "-v", "error", "-y", *args, str(target)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return target


def sf_file(target: Path, y: np.ndarray, sr: int = SR, **kw) -> Path:
    sf.write(target, y, sr, **kw)
    return target


def float_wav(d: Path, name: str, value: float, dtype: str = "FLOAT") -> Path:
    y = tone(2.0).astype(np.float64)
    y[SR // 2 : SR // 2 + 50] = value
    return sf_file(d / name, y, subtype=dtype)


def png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + b"\xff\x00\x00" * 4 for _ in range(4)))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    name: str  # the uploaded file's name (what the message must start with)
    make: Callable[[Path, Path], Path]  # (upload folder, a real clip outside it) -> the file
    error: type[AudioError] | None  # None: must decode to a valid clip
    words: tuple[str, ...] = ()  # all must be in the message (case-insensitive)
    either: bool = False  # decoding a valid prefix or a clear refusal are both right


CASES: list[Case] = []


def case(name: str, make, error=None, words=(), either=False) -> None:
    CASES.append(Case(name, make, error, tuple(words), either))


def raw(name: str, payload: bytes | Callable[[Path], bytes], error, *words: str) -> None:
    def make(d: Path, _outside: Path) -> Path:
        return write(d / name, payload(_outside) if callable(payload) else payload)

    case(name, make, error, words)


# ---- headers that lie
raw("zero_channels.wav", riff_wav(channels=0), CorruptAudioError, "WAV header", "0 audio channels")
raw("zero_rate.wav", riff_wav(rate=0), CorruptAudioError, "WAV header", "sample rate 0 Hz")
raw("zero_bits.wav", riff_wav(bits=0), CorruptAudioError, "0 bits per sample")
raw("rate_1hz.wav", riff_wav(rate=1), CorruptAudioError, "sample rate of 1 Hz")
raw("rate_999.wav", riff_wav(rate=999), CorruptAudioError, "999 Hz", "1000-192000")
raw("rate_4ghz.wav", riff_wav(rate=4_000_000_000), CorruptAudioError, "4e+09 Hz")
raw("rate_192001.wav", riff_wav(rate=192_001), CorruptAudioError, "192001 Hz")
raw("channels_65535.wav", riff_wav(channels=65535), CorruptAudioError, "65535 channels")
raw("channels_65.wav", riff_wav(channels=65), CorruptAudioError, "65 channels", "at most 64")
raw("channels_1000.wav", riff_wav(channels=1000), CorruptAudioError, "1000 channels")
raw("unknown_codec.wav", riff_wav(tag=0x1234), CorruptAudioError, "corrupt", "fmt")
case(
    "bits_7.wav",
    lambda d, _o: write(d / "bits_7.wav", riff_wav(bits=7)),
    AudioError,
    either=True,
)
raw("bits_64_pcm.wav", riff_wav(bits=64), AudioError)
raw("fmt_truncated.wav", riff_wav()[:30], AudioError)
raw("riff_only.wav", b"RIFF", AudioError)
raw("riff_wave_no_chunks.wav", b"RIFF\x04\x00\x00\x00WAVE", AudioError)
raw("no_fmt_chunk.wav", b"RIFF\x10\x00\x00\x00WAVEdata\x04\x00\x00\x00\x01\x02\x03\x04", AudioError)
case(
    "data_size_claims_4gb.wav",
    lambda d, _o: write(d / "data_size_claims_4gb.wav", riff_wav(data_size=0xFFFFFFF0)),
)
case(
    "riff_size_claims_4gb.wav",
    lambda d, _o: write(d / "riff_size_claims_4gb.wav", riff_wav(riff_size=0xFFFFFFF0)),
)
case(
    "data_size_zero.wav",
    lambda d, _o: write(d / "data_size_zero.wav", riff_wav(data_size=0)),
    AudioError,
    either=True,
)
case(
    "odd_block_stereo.wav",  # header says stereo, data is an odd number of bytes
    lambda d, _o: write(
        d / "odd_block_stereo.wav", riff_wav(channels=2, data=pcm16(2.0) + b"\x01")
    ),
)
case(
    "header_rate_lies_low.wav",  # 1000 Hz claimed for 22050 Hz data: slowed down, still decodes
    lambda d, _o: write(d / "header_rate_lies_low.wav", riff_wav(rate=1000, data=pcm16(1.0))),
)
case(
    "aiff_zero_channels.aiff",
    lambda d, _o: write(
        d / "aiff_zero_channels.aiff",
        b"FORM\x00\x00\x00\x2eAIFFCOMM\x00\x00\x00\x12\x00\x00\x00\x00\x10\x00\x00\x10"
        b"\x40\x0d\xac\x44\x00\x00\x00\x00\x00\x00SSND\x00\x00\x00\x08\x00\x00\x00\x00"
        b"\x00\x00\x00\x00",
    ),
    AudioError,
)

# ---- extreme rates and channel counts with real data
for rate in (1000, 4000, 8000, 192_000):
    case(
        f"rate_{rate}_real.wav",
        lambda d, _o, rate=rate: sf_file(d / f"rate_{rate}_real.wav", tone(2.0, rate), rate),
    )
for channels in (3, 8, 32, 64):
    case(
        f"channels_{channels}_real.wav",
        lambda d, _o, c=channels: sf_file(d / f"channels_{c}_real.wav", tone(1.5, SR, c), SR),
    )
case(
    "rate_500_real.wav",
    lambda d, _o: sf_file(d / "rate_500_real.wav", tone(4.0, 500), 500),
    CorruptAudioError,
    ("500 Hz",),
)
case(
    "channels_65_real.wav",
    lambda d, _o: sf_file(d / "channels_65_real.wav", tone(1.2, SR, 65), SR),
    CorruptAudioError,
    ("65 channels",),
)

# ---- non-finite and huge values
for label, value in [
    ("nan", np.nan),
    ("pos_inf", np.inf),
    ("neg_inf", -np.inf),
    ("max_float32", 3.0e38),
    ("neg_max_float32", -3.0e38),
    ("huge_1e10", 1e10),
    ("over_64", 100.0),
]:
    case(
        f"{label}.wav",
        lambda d, _o, label=label, value=value: float_wav(d, f"{label}.wav", value),
        CorruptAudioError,
        ("non-finite or out-of-range samples",),
    )
case(
    "float64_1e300.wav",
    lambda d, _o: float_wav(d, "float64_1e300.wav", 1e300, "DOUBLE"),
    CorruptAudioError,
    ("non-finite or out-of-range samples",),
)
case(
    "nan_in_one_channel.wav",
    lambda d, _o: sf_file(
        d / "nan_in_one_channel.wav",
        np.stack([tone(2.0), np.where(np.arange(2 * SR) == 5000, np.nan, tone(2.0))], axis=1),
        subtype="FLOAT",
    ),
    CorruptAudioError,
    ("non-finite",),
)
case("hot_but_sane.wav", lambda d, _o: float_wav(d, "hot_but_sane.wav", 8.0))  # clipping only
case(
    "all_nan.wav",
    lambda d, _o: sf_file(d / "all_nan.wav", np.full(2 * SR, np.nan, np.float32), subtype="FLOAT"),
    CorruptAudioError,
    ("non-finite",),
)

# ---- truncations at many offsets (a valid prefix or a clear refusal; never a crash)
for fmt, subtype, suffix in [
    ("WAV", "PCM_16", ".wav"),
    ("FLAC", "PCM_16", ".flac"),
    ("OGG", "VORBIS", ".ogg"),
    ("MP3", "MPEG_LAYER_III", ".mp3"),
]:
    for fraction in (0.001, 0.01, 0.05, 0.2, 0.5, 0.9):

        def make_cut(d, _o, fmt=fmt, subtype=subtype, suffix=suffix, fraction=fraction):
            full = sf_file(d / f"full{suffix}", tone(4.0), format=fmt, subtype=subtype)
            data = full.read_bytes()
            full.unlink()
            return write(d / f"cut_{fraction:g}{suffix}", data[: max(1, int(len(data) * fraction))])

        case(f"cut_{fraction:g}{suffix}", make_cut, AudioError, either=True)
for fraction in (0.05, 0.3, 0.7):

    def make_cut_m4a(d, _o, fraction=fraction):
        full = ffmpeg(d / "full.m4a", "-f", "lavfi", "-i", "sine=f=440:r=44100:d=4", "-c:a", "aac")
        data = full.read_bytes()
        full.unlink()
        return write(d / f"cut_{fraction:g}.m4a", data[: int(len(data) * fraction)])

    case(f"cut_{fraction:g}.m4a", make_cut_m4a, AudioError, either=True)
for offset in (1, 4, 11, 12, 20, 36, 43, 44, 45):
    raw(f"wav_cut_at_{offset}.wav", riff_wav()[:offset], AudioError)

# ---- wrong extensions: real audio under another name decodes; non-audio is named
for fmt, subtype, real, suffix in [
    ("FLAC", "PCM_16", "flac", ".mp3"),
    ("OGG", "VORBIS", "ogg", ".wav"),
    ("WAV", "PCM_16", "wav", ".ogg"),
    ("MP3", "MPEG_LAYER_III", "mp3", ".flac"),
    ("WAV", "PCM_24", "wav", ".m4a"),
    ("FLAC", "PCM_16", "flac", ""),
]:
    case(
        f"really_{real}{suffix or '_no_suffix'}",
        lambda d, _o, fmt=fmt, subtype=subtype, real=real, suffix=suffix: sf_file(
            d / f"really_{real}{suffix or '_no_suffix'}", tone(2.0), format=fmt, subtype=subtype
        ),
    )
case(
    "really_m4a.wav",
    lambda d, _o: ffmpeg(
        d / "really_m4a.wav",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:r=44100:d=2",
        "-c:a",
        "aac",
        "-f",
        "ipod",
    ),
)
case(
    "really_webm.mp3",
    lambda d, _o: ffmpeg(
        d / "really_webm.mp3",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:r=48000:d=2",
        "-c:a",
        "libopus",
        "-f",
        "webm",
    ),
)
for suffix in (".mp3", ".wav", ".flac", ".m4a"):
    raw(f"image{suffix}", png(), NotAudioError, "not an audio file (looks like PNG image)")
raw("photo.ogg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(500), NotAudioError, "JPEG image")
raw("anim.wav", b"GIF89a" + bytes(300), NotAudioError, "GIF image")
raw("paper.mp3", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(300), NotAudioError, "PDF document")
raw("bundle.flac", b"PK\x03\x04" + bytes(300), NotAudioError, "ZIP archive")
raw("program.wav", b"\x7fELF\x02\x01\x01" + bytes(300), NotAudioError, "ELF")
raw("picture.webp.wav", b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(300), NotAudioError, "WebP image")
raw("movie.wav", b"RIFF\x24\x00\x00\x00AVI LIST" + bytes(300), NotAudioError, "AVI video")
raw("db.ogg", b"SQLite format 3\x00" + bytes(300), NotAudioError, "SQLite database")
raw(
    "zipped.wav",
    gzip.compress(riff_wav()),
    NotAudioError,
    "not an audio file (looks like gzip archive)",
)
for name, text in [
    ("notes.txt", "Shopping list: eggs, milk, a new piano.\n" * 10),
    ("notes.wav", "This is a text file, not a recording.\n" * 20),
    ("notes.mp3", "<html><body>not audio</body></html>\n"),
    ("unicode.flac", "Bach – Goldberg-Variationen, Präludium für Klavier 🎹\n" * 30),
    ("one_line.ogg", "x"),
    ("csv.m4a", "file,composer\nclip.wav,Chopin\n" * 40),
    ("json.wav", '{"composer": "Chopin", "samples": [0.1, 0.2]}'),
    ("path.wav", "/etc/passwd\n"),
]:
    raw(name, text.encode("utf-8"), NotAudioError, "not an audio file (text)")

# ---- containers without audio, or without anything
case(
    "video_only.mp4",
    lambda d, _o: ffmpeg(
        d / "video_only.mp4",
        "-f",
        "lavfi",
        "-i",
        "testsrc=d=1:s=32x32:r=5",
        "-an",
        "-pix_fmt",
        "yuv420p",
    ),
    NotAudioError,
    ("no audio track",),
)
case(
    "video_only.mkv",
    lambda d, _o: ffmpeg(
        d / "video_only.mkv", "-f", "lavfi", "-i", "testsrc=d=1:s=32x32:r=5", "-an", "-c:v", "mpeg4"
    ),
    NotAudioError,
    ("no audio track",),
)
case(
    "video_only.webm",
    lambda d, _o: ffmpeg(
        d / "video_only.webm",
        "-f",
        "lavfi",
        "-i",
        "testsrc=d=1:s=32x32:r=5",
        "-an",
        "-c:v",
        "libvpx",
    ),
    NotAudioError,
    ("no audio track",),
)
case(
    "header_only.wav",
    lambda d, _o: sf_file(d / "header_only.wav", np.zeros(0, np.float32)),
    EmptyAudioError,
    ("no audio samples",),
)
case(
    "header_only.flac",
    lambda d, _o: sf_file(
        d / "header_only.flac", np.zeros(0, np.float32), format="FLAC", subtype="PCM_16"
    ),
    AudioError,
)
raw("empty.wav", b"", EmptyAudioError, "empty (0 bytes)")
raw("empty.mp3", b"", EmptyAudioError, "empty (0 bytes)")
raw("one_byte.wav", b"\x01", NotAudioError, "not a readable audio file")
raw("flac_magic_only.flac", b"fLaC", AudioError)
raw("ogg_capture_only.ogg", b"OggS\x00\x02" + bytes(40), AudioError)
raw(
    "id3_only.mp3",
    b"ID3\x03\x00\x00\x00\x00\x00\x15TIT2\x00\x00\x00\x0b\x00\x00\x03Only a tag",
    AudioError,
)
raw("id3_then_junk.mp3", b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 8, AudioError)
for seed, suffix in enumerate((".wav", ".mp3", ".ogg", ".flac", ".m4a", ".webm", ".aiff", "")):
    raw(
        f"random_{seed}{suffix or '_no_suffix'}",
        b"\x00\xff" + np.random.default_rng(seed).bytes(20_000),
        AudioError,
    )

# ---- playlists, concat lists and URLs that point at a real clip outside the upload folder
PLAYLIST_WORDS = ("not an audio file",)


def hls(outside: Path, ref: str) -> bytes:
    target = {"url": f"file://{outside}", "path": str(outside), "file": f"file:{outside}"}[ref]
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:10.0,\n{target}\n#EXT-X-ENDLIST\n"
    ).encode()


for ref in ("url", "path", "file"):
    for suffix in (".m3u8", ".wav", ".mp3", ".ogg"):
        raw(
            f"hls_{ref}{suffix}",
            lambda o, ref=ref: hls(o, ref),
            NotAudioError,
            "playlist",
        )
raw("plain.m3u", lambda o: f"{o}\n".encode(), NotAudioError, "not an audio file (text)")
raw("extinf.m3u", lambda o: f"#EXTINF:1,x\n{o}\n".encode(), NotAudioError, "playlist")
raw(
    "ffconcat.wav",
    lambda o: f"ffconcat version 1.0\nfile '{o}'\n".encode(),
    NotAudioError,
    "concat list",
)
raw("concat_bare.mp3", lambda o: f"file '{o}'\n".encode(), NotAudioError, "concat list")
raw("url.wav", lambda o: f"file://{o}".encode(), NotAudioError, "not an audio file (text)")
raw("bom_hls.wav", lambda o: b"\xef\xbb\xbf" + hls(o, "path"), NotAudioError, "playlist")
raw(
    "sdp.wav",
    lambda o: b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nm=audio 5004 RTP/AVP 0\n",
    NotAudioError,
    "text",
)
# A NUL byte first hides the text from the sniffer: ffprobe's allowlists must stop it.
raw("nul_then_hls.wav", lambda o: b"\x00" + hls(o, "path"), NotAudioError, "not accepted")
raw(
    "nul_then_concat.wav", lambda o: b"\x00ffconcat version 1.0\nfile '%s'\n" % bytes(o), AudioError
)

# ---- compressed-silence bombs: tiny files that decode to an hour; bounded by max_seconds
for codec, suffix in (("flac", ".flac"), ("libvorbis", ".ogg"), ("libopus", ".webm")):
    case(
        f"bomb_silence{suffix}",
        lambda d, _o, codec=codec, suffix=suffix: ffmpeg(
            d / f"bomb_silence{suffix}",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=8000:cl=mono",
            "-t",
            "1200",
            "-c:a",
            codec,
        ),
        SilentAudioError,
        ("silent",),
    )
case(
    "bomb_tone.flac",  # 20 minutes of tone: only max_seconds are decoded, and the note says so
    lambda d, _o: ffmpeg(
        d / "bomb_tone.flac", "-f", "lavfi", "-i", "sine=f=440:r=8000:d=1200", "-c:a", "flac"
    ),
)
case(
    "too_short.wav",
    lambda d, _o: sf_file(d / "too_short.wav", tone(0.3)),
    TooShortError,
    ("at least 1 s",),
)
case(
    "noise.wav",  # not music, but audio: decodes (the composer question is not this test's)
    lambda d, _o: sf_file(
        d / "noise.wav", np.random.default_rng(0).uniform(-0.5, 0.5, 2 * SR).astype(np.float32)
    ),
)


# --------------------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A real, decodable clip OUTSIDE every upload folder: what a playlist would point at."""
    return fresh_outside(tmp_path_factory.mktemp("server-files") / "media")


def test_there_are_at_least_100_cases() -> None:
    assert len(CASES) >= 100
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path, outside: Path) -> None:
    upload = tmp_path / "upload"
    upload.mkdir()
    path = case.make(upload, outside)
    assert path.name == case.name
    started = time.perf_counter()
    try:
        audio = load_audio(path, SR, LIMITS)
    except AudioError as error:
        elapsed = time.perf_counter() - started
        message = str(error)
        print(f"\n{case.name}: {type(error).__name__}: {message}")
        assert case.error is not None, f"a valid clip was refused: {message}"
        assert isinstance(error, case.error), message
        assert message.startswith(f"{case.name}: "), message
        for word in case.words:
            assert word.lower() in message.lower(), message
        assert_no_path(message, tmp_path, outside)
        assert "\n" not in message and len(message) < 400
    else:
        elapsed = time.perf_counter() - started
        print(f"\n{case.name}: decoded {audio.seconds:.2f} s, notes {audio.notes}")
        assert case.error is None or case.either, f"expected {case.error.__name__}"
        assert np.isfinite(audio.samples).all()
        assert LIMITS.min_seconds <= audio.seconds <= LIMITS.max_seconds + 0.01
        assert float(np.max(np.abs(audio.samples))) <= audio_mod.MAX_PEAK
    assert elapsed < MAX_CASE_SECONDS


def assert_no_path(message: str, *folders: Path) -> None:
    for folder in folders:
        for part in (str(folder), folder.name, str(folder.parent)):
            assert part not in message, message
    assert "/tmp" not in message and "/pytest-" not in message, message


# --------------------------------------------------------------------------- the allowlists


def fresh_outside(folder: Path) -> Path:
    """A server file with an extension HLS accepts as a segment (ffmpeg checks it)."""
    folder.mkdir()
    return sf_file(folder / "secret_recording.flac", tone(3.0), format="FLAC", subtype="PCM_16")


def unrestricted_ffprobe(playlist: Path) -> bytes:
    command = ["ffprobe", "-v", "error", "-of", "csv=p=0", "-show_entries", "format=format_name"]
    return subprocess.run([*command, str(playlist)], capture_output=True, timeout=30).stdout


def test_restricted_decoder_refuses_a_playlist_the_sniffer_did_not_see(tmp_path: Path) -> None:
    """Straight into the ffmpeg path (no sniffing): stdin only and the demuxer allowlist
    refuse the playlist, and the outside clip is not read (its access time stays). The
    control: plain ffprobe follows the same playlist and reads the file."""
    outside = fresh_outside(tmp_path / "server")
    upload = tmp_path / "upload"
    upload.mkdir()
    playlist = write(upload / "list.m3u8", hls(outside, "path"))
    os.utime(outside, ns=(1_000_000_000, outside.stat().st_mtime_ns))  # atime before mtime
    with pytest.raises(NotAudioError, match="not accepted"):
        audio_mod._decode_with_ffmpeg(playlist, "list.m3u8", 5.0)
    assert outside.stat().st_atime_ns == 1_000_000_000
    assert unrestricted_ffprobe(playlist).startswith(b"hls")
    assert outside.stat().st_atime_ns != 1_000_000_000  # the check above can see a read


def test_restricted_decoder_still_reads_an_allowed_container(tmp_path: Path) -> None:
    path = ffmpeg(
        tmp_path / "clip.m4a", "-f", "lavfi", "-i", "sine=f=440:r=44100:d=2", "-c:a", "aac"
    )
    data, rate, channels, seconds = audio_mod._decode_with_ffmpeg(path, "clip.m4a", 5.0)
    assert (rate, channels) == (44100, 1)
    assert seconds == pytest.approx(2.0, abs=0.05)
    assert len(data) == pytest.approx(2 * 44100, abs=2048)


def test_soundfile_is_given_a_file_object_not_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a path, libsndfile looks for an SD2 resource fork next to a file it cannot
    identify (``._name``); with a file object it cannot open anything else."""
    seen: list[object] = []
    real = audio_mod.sf.SoundFile

    def spy(file, *args, **kwargs):
        seen.append(file)
        return real(file, *args, **kwargs)

    clip = sf_file(tmp_path / "ok.wav", tone(2.0))
    monkeypatch.setattr(audio_mod.sf, "SoundFile", spy)
    load_audio(clip, SR, LIMITS)
    assert seen and all(not isinstance(f, str | Path) for f in seen)
