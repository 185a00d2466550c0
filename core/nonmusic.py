"""Deterministic non-music signals: what "not piano music" must reject.

Noise of five colours, tones, sweeps, clicks, near-silence, hum, DTMF-like beeps... each
kind is a pure function of (kind, seconds, sample rate, seed), so the test suite, the bench
and any detector training see exactly the same audio without shipping it. Speech and other
instruments cannot be synthesised this way; they are rendered once at build time and shipped
small under ``data/negatives`` (``scripts/build_negatives.py``; ``shipped_clips`` lists them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.config import REPO_ROOT

NEGATIVES_DIR = REPO_ROOT / "data" / "negatives"
PEAK = 0.5  # generated signals peak at -6 dBFS unless the kind is about level
Generator = Callable[[np.random.Generator, int, int], np.ndarray]


def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / sr


def _norm(y: np.ndarray, peak: float = PEAK) -> np.ndarray:
    top = float(np.max(np.abs(y))) if len(y) else 0.0
    return y * (peak / top) if top > 0 else y


def _coloured(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise whose power spectrum goes as f**exponent (0 white, -1 pink, -2 brown, 1 blue,
    2 violet), shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    spectrum *= f ** (exponent / 2)
    spectrum[0] = 0.0
    return _norm(np.fft.irfft(spectrum, n))


def _sweep(n: int, sr: int, f0: float, f1: float, log: bool) -> np.ndarray:
    t, length = _t(n, sr), n / sr
    if log:
        k = np.log(f1 / f0) / length
        phase = 2 * np.pi * f0 * (np.exp(k * t) - 1) / k
    else:
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * length))
    return PEAK * np.sin(phase)


def _tone(n: int, sr: int, freq: float, shape: str = "sine") -> np.ndarray:
    phase = (freq * _t(n, sr)) % 1.0
    if shape == "square":
        y = np.where(phase < 0.5, 1.0, -1.0)
    elif shape == "sawtooth":
        y = 2 * phase - 1
    elif shape == "triangle":
        y = 4 * np.abs(phase - 0.5) - 1
    else:
        y = np.sin(2 * np.pi * phase)
    return PEAK * y


def _clicks(n: int, sr: int, rate_hz: float) -> np.ndarray:
    y = np.zeros(n)
    y[:: max(1, round(sr / rate_hz))] = 0.9
    return y


def _blip(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Digital silence with one short blip (0.3-3 kHz, 80 ms) in it."""
    y = np.zeros(n)
    at, length = int(n * rng.uniform(0.1, 0.9)), round(0.08 * sr)
    blip = _tone(length, sr, _log_uniform(rng, 300.0, 3000.0)) * np.hanning(length)
    y[at : at + length] = blip[: n - at]
    return y


def _dc(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A constant offset with a trace of noise (a disconnected input)."""
    return rng.uniform(0.2, 0.6) + 1e-4 * rng.standard_normal(n)


def _near_silence(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Room tone: faint pink noise (about -66 dBFS RMS, above the silence limit)."""
    y = _coloured(rng, n, -1.0)
    return y * (5e-4 / np.sqrt(np.mean(y**2)))


def _am_noise(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Noise swelling and fading 0.3-5 times a second (waves, wind, a fan)."""
    rate, colour = _log_uniform(rng, 0.3, 5.0), rng.uniform(-1.0, 0.0)
    return _coloured(rng, n, colour) * (0.55 + 0.45 * np.sin(2 * np.pi * rate * _t(n, sr)))


def _chirps(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Short rising chirps (2-6 kHz, 120 ms) repeated at irregular intervals (bird-like)."""
    y, length = np.zeros(n), round(0.12 * sr)
    chirp = _sweep(length, sr, 2000.0, 6000.0, log=True) * np.hanning(length)
    at = 0
    while at + length < n:
        y[at : at + length] += chirp
        at += round(sr * rng.uniform(0.25, 0.7))
    return y


def _dtmf(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Telephone keypad tones: random digits, dual tones of 70-200 ms with 50-150 ms gaps."""
    rows, cols = (697.0, 770.0, 852.0, 941.0), (1209.0, 1336.0, 1477.0)
    y, tone, gap = (
        np.zeros(n),
        round(rng.uniform(0.07, 0.2) * sr),
        round(rng.uniform(0.05, 0.15) * sr),
    )
    at = 0
    while at + tone < n:
        f1, f2 = rows[rng.integers(4)], cols[rng.integers(3)]
        y[at : at + tone] = 0.5 * (_tone(tone, sr, f1) + _tone(tone, sr, f2))
        at += tone + gap
    return y


def _hum(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Mains hum: 50 Hz with harmonics (their balance varies with the seed) and some noise."""
    t, weights = _t(n, sr), np.array([1, 0.5, 0.3, 0.2, 0.1]) * rng.uniform(0.5, 1.5, 5)
    y = sum(a * np.sin(2 * np.pi * 50.0 * k * t) for k, a in enumerate(weights, 1))
    return _norm(y + 0.01 * rng.standard_normal(n))


def _beeps(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A beep (0.5-3 kHz, 0.1-0.4 s) every 0.5-2 s (an alarm, a test signal)."""
    t, period, length = _t(n, sr), rng.uniform(0.5, 2.0), rng.uniform(0.1, 0.4)
    return _tone(n, sr, _log_uniform(rng, 500.0, 3000.0)) * ((t % period) < min(length, period / 2))


def _noise_bursts(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Decaying bursts of noise at random times (knocking, handling noise, footsteps)."""
    y, length = np.zeros(n), round(0.15 * sr)
    envelope = np.exp(-np.arange(length) / (0.02 * sr))
    at = 0
    while at + length < n:
        y[at : at + length] += rng.standard_normal(length) * envelope
        at += round(sr * rng.uniform(0.3, 1.0))
    return _norm(y)


def _clipped_sine(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A sine (100-400 Hz) driven far into clipping (a distorted test tone)."""
    return np.clip(rng.uniform(5, 30) * _tone(n, sr, _log_uniform(rng, 100.0, 400.0)), -0.9, 0.9)


def _sine(lo: float, hi: float) -> Generator:
    return lambda rng, n, sr: _tone(n, sr, _log_uniform(rng, lo, hi))


def _shaped(shape: str) -> Generator:
    return lambda rng, n, sr: _tone(n, sr, _log_uniform(rng, 110.0, 440.0), shape)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _linear_sweep(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    return _sweep(n, sr, _log_uniform(rng, 60.0, 200.0), _log_uniform(rng, 4000.0, 9000.0), False)


def _log_sweep(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    return _sweep(n, sr, _log_uniform(rng, 20.0, 60.0), _log_uniform(rng, 6000.0, 10000.0), True)


GENERATED: dict[str, Generator] = {
    "white_noise": lambda rng, n, sr: _coloured(rng, n, 0.0),
    "pink_noise": lambda rng, n, sr: _coloured(rng, n, -1.0),
    "brown_noise": lambda rng, n, sr: _coloured(rng, n, -2.0),
    "blue_noise": lambda rng, n, sr: _coloured(rng, n, 1.0),
    "violet_noise": lambda rng, n, sr: _coloured(rng, n, 2.0),
    "sine_low": _sine(40.0, 150.0),
    "sine_mid": _sine(200.0, 1000.0),
    "sine_high": _sine(2000.0, 8000.0),
    "square": _shaped("square"),
    "sawtooth": _shaped("sawtooth"),
    "triangle": _shaped("triangle"),
    "sweep_linear": _linear_sweep,
    "sweep_log": _log_sweep,
    "clicks": lambda rng, n, sr: _clicks(n, sr, rng.uniform(1.0, 4.0)),
    "impulse_train": lambda rng, n, sr: _clicks(n, sr, rng.uniform(20.0, 100.0)),
    "silence_blip": _blip,
    "dc_offset": _dc,
    "near_silence": _near_silence,
    "am_noise": _am_noise,
    "chirps": _chirps,
    "dtmf": _dtmf,
    "hum_50hz": _hum,
    "beeps": _beeps,
    "noise_bursts": _noise_bursts,
    "clipped_sine": _clipped_sine,
}


def generate(
    kind: str, seconds: float = 20.0, sample_rate: int = 22050, seed: int = 0
) -> np.ndarray:
    """One generated clip (float32, mono); the same arguments always give the same samples."""
    if kind not in GENERATED:
        raise KeyError(f"unknown non-music kind {kind!r}; known: {sorted(GENERATED)}")
    n = round(seconds * sample_rate)
    rng = np.random.default_rng([seed, *kind.encode()])
    return GENERATED[kind](rng, n, sample_rate).astype(np.float32)


@dataclass(frozen=True)
class ShippedClip:
    kind: str  # e.g. "violin", "speech_de", "piano_chorale"
    group: str  # "speech", "instrument" or "piano" (controls that must pass)
    path: Path
    sha256: str


def shipped_clips(folder: Path = NEGATIVES_DIR) -> list[ShippedClip]:
    """The shipped clips listed in ``clips.json`` (empty if the folder is missing)."""
    index = folder / "clips.json"
    if not index.is_file():
        return []
    entries = json.loads(index.read_text())["clips"]
    return [ShippedClip(e["kind"], e["group"], folder / e["file"], e["sha256"]) for e in entries]
