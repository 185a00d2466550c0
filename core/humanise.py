"""MIDI humanisation for training data: a smooth tempo curve, a velocity curve and onset
jitter, drawn from one generator, and the time map from score to performed seconds.

Build-time only (``core.render``); mido is imported inside the functions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TICKS_PER_SECOND = 960  # written MIDI: 480 ticks per beat at a fixed 120 bpm


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
