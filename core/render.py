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
TICKS_PER_SECOND = 960  # written MIDI: 480 ticks per beat at a fixed 120 bpm


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


def sf3_to_sf2(src: str | Path, dest: str | Path) -> Path:
    """Decode an SF3 SoundFont (Ogg Vorbis samples) into a plain SF2 once.

    fluidsynth decodes every SF3 sample at load time (~5 CPU-s for MuseScore General, per
    render); the decoded SF2 loads in a fraction of that and sounds identical. SF3 sample
    headers hold byte offsets into the compressed data and loop points relative to the
    sample; SF2 wants frame offsets into one 16-bit sample pool (46 zero frames after each).
    """
    import io
    import struct

    import soundfile as sf

    data = Path(src).read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise RenderError(f"{src} is not a SoundFont")
    lists: dict[bytes, list[tuple[bytes, bytes]]] = {}
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
    compressed = dict(lists[b"sdta"])[b"smpl"]
    shdr = dict(lists[b"pdta"])[b"shdr"]
    pool, headers, cursor = [], [], 0
    fmt = "<20sIIIIIBbHH"
    for i in range(len(shdr) // 46 - 1):  # the last record is the terminal "EOS"
        name, start, end, loop_s, loop_e, rate, pitch, corr, link, kind = struct.unpack(
            fmt, shdr[46 * i : 46 * (i + 1)]
        )
        if kind & 0x10 and end > start:
            frames = sf.read(io.BytesIO(compressed[start:end]), dtype="int16")[0]
            frames = frames if frames.ndim == 1 else frames[:, 0]
        else:
            frames = np.zeros(0, dtype=np.int16)
        n = len(frames)
        pool.extend([frames.astype("<i2").tobytes(), bytes(2 * 46)])
        headers.append(
            struct.pack(
                fmt, name, cursor, cursor + n, cursor + loop_s, cursor + loop_e,
                rate, pitch, corr, link, kind & ~0x10,
            )
        )  # fmt: skip
        cursor += n + 46
    headers.append(shdr[-46:])

    def chunk(cid: bytes, payload: bytes) -> bytes:
        pad = b"\0" if len(payload) & 1 else b""
        return cid + struct.pack("<I", len(payload)) + payload + pad

    def riff_list(kind: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
        return chunk(b"LIST", kind + b"".join(chunk(c, p) for c, p in chunks))

    info = [(c, struct.pack("<HH", 2, 1) if c == b"ifil" else p) for c, p in lists[b"INFO"]]
    pdta = [(c, b"".join(headers) if c == b"shdr" else p) for c, p in lists[b"pdta"]]
    body = (
        b"sfbk"
        + riff_list(b"INFO", info)
        + riff_list(b"sdta", [(b"smpl", b"".join(pool))])
        + riff_list(b"pdta", pdta)
    )
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".tmp")  # unique: workers may race
    with os.fdopen(handle, "wb") as fh:
        fh.write(chunk(b"RIFF", body))
    os.replace(tmp, dest)
    return dest


def fast_soundfont(name_or_path: str, cache_dir: str | Path) -> Path:
    """The SoundFont as SF2 (SF3 decoded once into ``cache_dir``), else as it is."""
    font = resolve_soundfont(name_or_path)
    if font.suffix.lower() != ".sf3":
        return font
    target = Path(cache_dir) / (font.stem + ".sf2")
    if not target.is_file():
        sf3_to_sf2(font, target)
    return target


# ---------------------------------------------------------------- MIDI augmentation


@dataclass(frozen=True)
class Humanise:
    """One draw of MIDI-level augmentation (all zero/one = identity)."""

    tempo_scale: float = 1.0  # global tempo factor (>1 plays faster)
    tempo_drift: float = 0.0  # relative amplitude of the slow tempo curve
    tempo_period_s: float = 20.0  # typical period of the drift
    velocity_scale: float = 1.0
    velocity_drift: float = 0.0  # relative amplitude of the slow velocity curve
    jitter_ms: float = 0.0  # std of per-note onset jitter
    phases: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def draw(cls, rng: np.random.Generator, strength: float = 1.0) -> Humanise:
        """A random, musically plausible draw; ``strength`` scales every deviation."""
        return cls(
            tempo_scale=float(np.exp(rng.uniform(-0.08, 0.08) * strength)),
            tempo_drift=float(rng.uniform(0.02, 0.08) * strength),
            tempo_period_s=float(rng.uniform(12.0, 40.0)),
            velocity_scale=float(np.exp(rng.uniform(-0.2, 0.15) * strength)),
            velocity_drift=float(rng.uniform(0.05, 0.2) * strength),
            jitter_ms=float(rng.uniform(3.0, 12.0) * strength),
            phases=tuple(float(p) for p in rng.uniform(0, 2 * np.pi, 6)),
        )

    def _curve(self, t: np.ndarray, offset: int) -> np.ndarray:
        """Smooth zero-mean curve in [-1, 1]: three sinusoids at incommensurate periods."""
        p = self.phases[offset : offset + 3]
        base = 2 * np.pi * t / self.tempo_period_s
        return (
            (np.sin(base + p[0]) + 0.6 * np.sin(1.618 * base + p[1]))
            / 1.6
            * np.cos(0.1 * base + p[2])
        )

    def rate(self, t: np.ndarray) -> np.ndarray:
        """Playback speed at score time ``t`` (seconds of the original file)."""
        return self.tempo_scale * (1.0 + self.tempo_drift * self._curve(t, 0))

    def velocity_factor(self, t: np.ndarray) -> np.ndarray:
        return self.velocity_scale * (1.0 + self.velocity_drift * self._curve(t, 3))

    def describe(self) -> str:
        return (
            f"tempo x{self.tempo_scale:.3f}+-{self.tempo_drift:.0%}, "
            f"vel x{self.velocity_scale:.2f}+-{self.velocity_drift:.0%}, "
            f"jitter {self.jitter_ms:.1f} ms"
        )


@dataclass(frozen=True)
class TimeMap:
    """Original seconds -> humanised seconds (monotonic), for cutting matching excerpts."""

    grid: np.ndarray
    warped: np.ndarray

    def __call__(self, t: float | np.ndarray) -> Any:
        return np.interp(t, self.grid, self.warped)


def time_map(h: Humanise, duration_s: float, step_s: float = 0.05) -> TimeMap:
    grid = np.arange(0.0, duration_s + 2 * step_s + 1.0, step_s)
    dt = np.diff(grid, prepend=0.0)
    warped = np.cumsum(dt / h.rate(grid - dt / 2))
    warped -= warped[0]
    return TimeMap(grid=grid, warped=warped)


def _events(path: str | Path) -> tuple[list[tuple[float, Any]], float]:
    """All channel messages with absolute times in seconds (tempo map applied), and the end."""
    import mido

    events: list[tuple[float, Any]] = []
    now = 0.0
    for msg in mido.MidiFile(str(path)):
        now += msg.time
        if not msg.is_meta and msg.type != "sysex":
            events.append((now, msg.copy(time=0)))
    return events, now


def humanise_midi(
    src: str | Path,
    dest: str | Path,
    h: Humanise,
    rng: np.random.Generator,
    until_s: float | None = None,
    from_s: float = 0.0,
) -> TimeMap:
    """Write ``src`` humanised by ``h`` to ``dest`` (one track, fixed tempo); the time map
    from original seconds to seconds of the written file.

    ``from_s``/``until_s`` (original seconds) keep only that region: notes before ``from_s``
    are dropped (controllers and programs before it are kept, at its start, so the pedal
    state is right) and the piece is cut at ``until_s`` with all notes and the pedal off, so
    an excerpt does not pay for rendering the whole piece.
    """
    import mido

    events, end = _events(src)
    if until_s is not None and until_s < end:
        events = [(t, m) for t, m in events if t < until_s]
        channels = sorted({m.channel for _, m in events if hasattr(m, "channel")}) or [0]
        for ch in channels:
            events.append((until_s, mido.Message("control_change", channel=ch, control=64)))
            events.append((until_s, mido.Message("control_change", channel=ch, control=123)))
    if from_s > 0:
        notes = ("note_on", "note_off")
        events = [(max(t, from_s), m) for t, m in events if t >= from_s or m.type not in notes]
    tmap = time_map(h, end)
    if from_s > 0:
        tmap = TimeMap(tmap.grid, tmap.warped - float(tmap(from_s)))
    times = np.array([t for t, _ in events], dtype=np.float64)
    warped = tmap(times) if len(times) else times
    shift = np.zeros(len(events))
    open_notes: dict[tuple[int, int], list[float]] = {}
    for i, (_, msg) in enumerate(events):
        if msg.type == "note_on" and msg.velocity > 0:
            d = float(rng.normal(0.0, h.jitter_ms / 1000.0)) if h.jitter_ms > 0 else 0.0
            shift[i] = d
            open_notes.setdefault((msg.channel, msg.note), []).append(d)
            factor = float(h.velocity_factor(np.array([times[i]]))[0])
            msg.velocity = int(np.clip(round(msg.velocity * factor), 1, 127))
        elif msg.type in ("note_off", "note_on"):
            stack = open_notes.get((msg.channel, msg.note))
            if stack:
                shift[i] = stack.pop(0)
    new_times = np.maximum(warped + shift, 0.0)
    order = np.argsort(new_times, kind="stable")
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    last_tick = 0
    for i in order:
        tick = round(float(new_times[i]) * TICKS_PER_SECOND)
        track.append(events[i][1].copy(time=tick - last_tick))
        last_tick = tick
    track.append(mido.MetaMessage("end_of_track", time=TICKS_PER_SECOND // 2))
    out = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_SECOND // 2)
    out.tracks.append(track)
    out.save(str(dest))
    return tmap


# ---------------------------------------------------------------- audio augmentation


@dataclass(frozen=True)
class AudioAugment:
    """One draw of audio-level augmentation (None/0 = effect off)."""

    rt60_s: float | None = None  # synthetic room reverberation time
    wet: float = 0.0  # reverb mix
    tilt_db: float = 0.0  # +: brighter (high shelf up, low shelf down)
    snr_db: float | None = None  # noise level relative to the signal RMS
    noise_colour: str = "white"  # white or pink
    seed: int = 0

    @classmethod
    def draw(cls, rng: np.random.Generator) -> AudioAugment:
        reverb = rng.random() < 0.7
        noisy = rng.random() < 0.6
        return cls(
            rt60_s=float(rng.uniform(0.3, 1.6)) if reverb else None,
            wet=float(rng.uniform(0.15, 0.45)) if reverb else 0.0,
            tilt_db=float(rng.uniform(-6.0, 6.0)),
            snr_db=float(rng.uniform(15.0, 40.0)) if noisy else None,
            noise_colour=str(rng.choice(["white", "pink"])),
            seed=int(rng.integers(0, 2**31 - 1)),
        )

    def describe(self) -> str:
        parts = []
        if self.rt60_s is not None:
            parts.append(f"room rt60 {self.rt60_s:.2f}s wet {self.wet:.2f}")
        parts.append(f"tilt {self.tilt_db:+.1f} dB")
        if self.snr_db is not None:
            parts.append(f"{self.noise_colour} noise {self.snr_db:.0f} dB SNR")
        return ", ".join(parts)

    def apply(self, y: np.ndarray, sample_rate: int) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        out = np.asarray(y, dtype=np.float64)
        if self.rt60_s is not None and self.wet > 0:
            out = room_reverb(out, sample_rate, self.rt60_s, self.wet, rng)
        if self.tilt_db:
            out = eq_tilt(out, sample_rate, self.tilt_db)
        if self.snr_db is not None:
            out = add_noise(out, self.snr_db, rng, self.noise_colour)
        return normalise(out)


def room_reverb(
    y: np.ndarray, sample_rate: int, rt60_s: float, wet: float, rng: np.random.Generator
) -> np.ndarray:
    """Convolve with a synthetic room: sparse early reflections + exponentially decaying noise."""
    from scipy.signal import fftconvolve

    n = int(rt60_s * sample_rate)
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60_s)  # -60 dB at rt60
    tail[: int(0.01 * sample_rate)] = 0.0  # tail starts after the direct sound
    for _ in range(6):  # early reflections within 5-50 ms
        k = int(rng.uniform(0.005, 0.05) * sample_rate)
        tail[k] += rng.uniform(0.3, 0.8) * rng.choice([-1.0, 1.0])
    tail /= np.sqrt(np.sum(tail**2)) + 1e-12
    wet_signal = fftconvolve(y, tail, mode="full")[: len(y)]
    dry_rms = np.sqrt(np.mean(y**2)) + 1e-12
    wet_signal *= dry_rms / (np.sqrt(np.mean(wet_signal**2)) + 1e-12)
    return (1.0 - wet) * y + wet * wet_signal


def _shelf(sample_rate: int, freq: float, gain_db: float, high: bool) -> np.ndarray:
    """RBJ cookbook shelving biquad (slope 1) as second-order sections."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * freq / sample_rate
    cos, alpha = np.cos(w0), np.sin(w0) / 2 * np.sqrt(2)
    sq = 2 * np.sqrt(a) * alpha
    sign = 1 if high else -1
    b0 = a * ((a + 1) + sign * (a - 1) * cos + sq)
    b1 = -2 * sign * a * ((a - 1) + sign * (a + 1) * cos)
    b2 = a * ((a + 1) + sign * (a - 1) * cos - sq)
    a0 = (a + 1) - sign * (a - 1) * cos + sq
    a1 = 2 * sign * ((a - 1) - sign * (a + 1) * cos)
    a2 = (a + 1) - sign * (a - 1) * cos - sq
    return np.array([[b0 / a0, b1 / a0, b2 / a0, 1.0, a1 / a0, a2 / a0]])


def eq_tilt(y: np.ndarray, sample_rate: int, tilt_db: float) -> np.ndarray:
    """Tilt the spectrum: high shelf at 2 kHz by +tilt/2, low shelf at 250 Hz by -tilt/2."""
    from scipy.signal import sosfilt

    sos = np.vstack(
        [
            _shelf(sample_rate, 2000.0, tilt_db / 2, high=True),
            _shelf(sample_rate, 250.0, -tilt_db / 2, high=False),
        ]
    )
    return sosfilt(sos, y)


def add_noise(
    y: np.ndarray, snr_db: float, rng: np.random.Generator, colour: str = "white"
) -> np.ndarray:
    noise = rng.standard_normal(len(y))
    if colour == "pink":  # 1/f power: shape white noise in the frequency domain
        spectrum = np.fft.rfft(noise)
        f = np.arange(len(spectrum), dtype=np.float64)
        f[0] = 1.0
        noise = np.fft.irfft(spectrum / np.sqrt(f), n=len(y))
    signal_rms = np.sqrt(np.mean(y**2)) + 1e-12
    noise *= signal_rms / (np.sqrt(np.mean(noise**2)) + 1e-12) * 10 ** (-snr_db / 20)
    return y + noise


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
