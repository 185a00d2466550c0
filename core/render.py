"""MIDI -> audio for building training data: fluidsynth rendering plus seeded augmentation.

Build-time only (the pack and the shifted bench set); serving never renders. Heavy imports
(mido, scipy, soundfile) happen inside the functions so importing this module is free.

Augmentation has two stages, both drawn from one ``numpy`` generator so the same inputs and
seed give the same audio:

* MIDI ("humanised"): a smooth tempo curve (a global tempo factor times a slow drift made of
  a few random sinusoids), a smooth velocity curve times a global velocity scale, and a few
  milliseconds of Gaussian onset jitter per note (note-off moves with its note-on).
* Audio: a synthetic room (exponentially decaying noise impulse response with early
  reflections), an EQ tilt (low shelf and high shelf in opposite directions) and noise at a
  random SNR.

This module renders (fluidsynth, SoundFonts) and runs the whole chain
(``render_augmented``); the stages live in ``core.humanise`` and ``core.audio_augment``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.audio_augment import AudioAugment, add_noise, eq_tilt, room_reverb
from core.humanise import TICKS_PER_SECOND, Humanise, TimeMap, humanise_midi, time_map

__all__ = [
    "PEAK_DBFS",
    "SOUNDFONTS",
    "SOUNDFONT_PACKAGES",
    "TICKS_PER_SECOND",
    "AudioAugment",
    "Humanise",
    "RenderError",
    "Rendered",
    "TimeMap",
    "add_noise",
    "eq_tilt",
    "fast_soundfont",
    "fluidsynth_binary",
    "humanise_midi",
    "normalise",
    "render_augmented",
    "render_midi",
    "resolve_soundfont",
    "room_reverb",
    "seed_for",
    "sf3_to_sf2",
    "time_map",
]


# Known SoundFonts by short name, first existing path wins (Debian package paths).
SOUNDFONTS: dict[str, tuple[str, ...]] = {
    "musescore": (
        "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
        "/usr/share/sounds/sf2/MuseScore_General_Lite.sf2",
        "/usr/share/sounds/sf3/MuseScore_General.sf3",
        "/usr/share/sounds/sf2/MuseScore_General.sf2",
    ),
    "fluidr3": ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf3/FluidR3Mono_GM.sf3"),
    "timgm6mb": ("/usr/share/sounds/sf2/TimGM6mb.sf2",),
}
SOUNDFONT_PACKAGES = {
    "musescore": "musescore-general-soundfont-small",
    "fluidr3": "fluid-soundfont-gm",
    "timgm6mb": "timgm6mb-soundfont",
}
PEAK_DBFS = -1.0


class RenderError(RuntimeError):
    """fluidsynth or a SoundFont is missing, or rendering failed."""


def seed_for(*parts: object) -> int:
    """A stable 63-bit seed from any labels (Python's hash() is salted per process)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def resolve_soundfont(name_or_path: str) -> Path:
    """A SoundFont short name (``musescore``, ``fluidr3``, ``timgm6mb``) or a path."""
    if name_or_path in SOUNDFONTS:
        for candidate in SOUNDFONTS[name_or_path]:
            if Path(candidate).is_file():
                return Path(candidate)
        looked = ", ".join(SOUNDFONTS[name_or_path])
        raise RenderError(
            f"SoundFont {name_or_path!r} not found (looked for {looked}). "
            f"Install it: apt-get install {SOUNDFONT_PACKAGES[name_or_path]}"
        )
    path = Path(name_or_path)
    if not path.is_file():
        raise RenderError(
            f"SoundFont {name_or_path!r} not found: pass a .sf2/.sf3 path or one of "
            f"{', '.join(SOUNDFONTS)}."
        )
    return path


def fluidsynth_binary() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise RenderError("fluidsynth not found on PATH: apt-get install fluidsynth")
    return exe


def render_midi(midi_path: str | Path, soundfont: str | Path, sample_rate: int) -> np.ndarray:
    """Render a MIDI file to mono float32 at ``sample_rate``, peak-normalised to -1 dBFS."""
    import soundfile as sf

    exe = fluidsynth_binary()
    font = resolve_soundfont(str(soundfont))
    with tempfile.TemporaryDirectory(prefix="render_") as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = [exe, "-ni", "-q", "-O", "float", "-F", str(wav), "-r", str(sample_rate)]
        proc = subprocess.run(
            [*cmd, str(font), str(midi_path)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0 or not wav.is_file():
            raise RenderError(f"fluidsynth failed on {midi_path}: {proc.stderr.strip()[-500:]}")
        y, sr = sf.read(wav, dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise RenderError(f"{midi_path}: fluidsynth wrote {sr} Hz, expected {sample_rate}")
    return normalise(y.mean(axis=1))


def normalise(y: np.ndarray, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak <= 0.0:
        raise RenderError("rendered audio is silent")
    return (y * (10 ** (peak_dbfs / 20) / peak)).astype(np.float32)


RiffLists = dict[bytes, list[tuple[bytes, bytes]]]
SHDR_FORMAT = "<20sIIIIIBbHH"  # one SoundFont sample header, 46 bytes
SAMPLE_GAP = 46  # zero frames SF2 wants after each sample


def sf3_to_sf2(src: str | Path, dest: str | Path) -> Path:
    """Decode an SF3 SoundFont (Ogg Vorbis samples) into a plain SF2 once.

    fluidsynth decodes every SF3 sample at load time (~5 CPU-s for MuseScore General, per
    render); the decoded SF2 loads in a fraction of that and sounds identical. SF3 sample
    headers hold byte offsets into the compressed data and loop points relative to the
    sample; SF2 wants frame offsets into one 16-bit sample pool (46 zero frames after each).
    """
    import struct

    data = Path(src).read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise RenderError(f"{src} is not a SoundFont")
    lists = _riff_lists(data)
    compressed = dict(lists[b"sdta"])[b"smpl"]
    pool, headers = _decoded_samples(compressed, dict(lists[b"pdta"])[b"shdr"])
    info = [(c, struct.pack("<HH", 2, 1) if c == b"ifil" else p) for c, p in lists[b"INFO"]]
    pdta = [(c, headers if c == b"shdr" else p) for c, p in lists[b"pdta"]]
    body = (
        b"sfbk"
        + _riff_list(b"INFO", info)
        + _riff_list(b"sdta", [(b"smpl", pool)])
        + _riff_list(b"pdta", pdta)
    )
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".tmp")  # unique: workers may race
    with os.fdopen(handle, "wb") as fh:
        fh.write(_chunk(b"RIFF", body))
    os.replace(tmp, dest)
    return dest


def _riff_lists(data: bytes) -> RiffLists:
    """The SoundFont's LIST chunks (INFO, sdta, pdta): kind -> [(chunk id, payload)]."""
    import struct

    lists: RiffLists = {}
    pos = 12
    while pos < len(data):
        size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        kind, sub, end = data[pos + 8 : pos + 12], pos + 12, pos + 8 + size
        chunks = []
        while sub < end:
            sub_size = struct.unpack("<I", data[sub + 4 : sub + 8])[0]
            chunks.append((data[sub : sub + 4], data[sub + 8 : sub + 8 + sub_size]))
            sub += 8 + sub_size + (sub_size & 1 if sub + 8 + sub_size + 1 < end else 0)
        lists[kind] = chunks
        pos = end
    return lists


def _decoded_samples(compressed: bytes, shdr: bytes) -> tuple[bytes, bytes]:
    """(16-bit sample pool, rewritten sample headers) with every Ogg sample decoded."""
    import io
    import struct

    import soundfile as sf

    pool, headers, cursor = [], [], 0
    for i in range(len(shdr) // 46 - 1):  # the last record is the terminal "EOS"
        name, start, end, loop_s, loop_e, rate, pitch, corr, link, kind = struct.unpack(
            SHDR_FORMAT, shdr[46 * i : 46 * (i + 1)]
        )
        if kind & 0x10 and end > start:
            frames = sf.read(io.BytesIO(compressed[start:end]), dtype="int16")[0]
            frames = frames if frames.ndim == 1 else frames[:, 0]
        else:
            frames = np.zeros(0, dtype=np.int16)
        n = len(frames)
        pool.extend([frames.astype("<i2").tobytes(), bytes(2 * SAMPLE_GAP)])
        headers.append(
            struct.pack(
                SHDR_FORMAT, name, cursor, cursor + n, cursor + loop_s, cursor + loop_e,
                rate, pitch, corr, link, kind & ~0x10,
            )
        )  # fmt: skip
        cursor += n + SAMPLE_GAP
    headers.append(shdr[-46:])
    return b"".join(pool), b"".join(headers)


def _chunk(cid: bytes, payload: bytes) -> bytes:
    import struct

    pad = b"\0" if len(payload) & 1 else b""
    return cid + struct.pack("<I", len(payload)) + payload + pad


def _riff_list(kind: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    return _chunk(b"LIST", kind + b"".join(_chunk(c, p) for c, p in chunks))


def fast_soundfont(name_or_path: str, cache_dir: str | Path) -> Path:
    """The SoundFont as SF2 (SF3 decoded once into ``cache_dir``), else as it is."""
    font = resolve_soundfont(name_or_path)
    if font.suffix.lower() != ".sf3":
        return font
    target = Path(cache_dir) / (font.stem + ".sf2")
    if not target.is_file():
        sf3_to_sf2(font, target)
    return target


# ---------------------------------------------------------------- one call for builders


@dataclass(frozen=True)
class Rendered:
    samples: np.ndarray  # mono float32, -1 dBFS peak
    sample_rate: int
    soundfont: str  # short name or file name
    humanise: Humanise
    audio: AudioAugment | None
    time_map: TimeMap

    def describe(self) -> str:
        text = self.humanise.describe()
        return f"{text}; {self.audio.describe()}" if self.audio else text

    def params(self) -> dict[str, Any]:
        return {
            "humanise": asdict(self.humanise),
            "audio": asdict(self.audio) if self.audio else None,
        }


def render_augmented(
    midi_path: str | Path,
    soundfont: str,
    sample_rate: int,
    seed: int,
    *,
    humanise_strength: float = 1.0,
    audio_augment: bool = True,
    until_s: float | None = None,
    from_s: float = 0.0,
    soundfont_cache: str | Path | None = None,
) -> Rendered:
    """Humanise the MIDI, render it, augment the audio; all draws from ``seed``.

    ``soundfont_cache``: a folder for decoded SF3 SoundFonts (see ``fast_soundfont``).
    """
    rng = np.random.default_rng(seed)
    h = Humanise.draw(rng, humanise_strength) if humanise_strength > 0 else Humanise()
    aug = AudioAugment.draw(rng) if audio_augment else None
    with tempfile.TemporaryDirectory(prefix="humanise_") as tmp:
        midi = Path(tmp) / "humanised.mid"
        tmap = humanise_midi(midi_path, midi, h, rng, until_s, from_s)
        font = fast_soundfont(soundfont, soundfont_cache) if soundfont_cache else soundfont
        y = render_midi(midi, font, sample_rate)
    if aug is not None:
        y = aug.apply(y, sample_rate)
    name = soundfont if soundfont in SOUNDFONTS else Path(soundfont).name
    return Rendered(y, sample_rate, name, h, aug, tmap)
