"""Audio augmentation for rendered training data: a synthetic room, an EQ tilt and noise at
a random SNR, drawn from one generator (``core.render.render_augmented``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
        from core.render import normalise  # render imports this module

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
