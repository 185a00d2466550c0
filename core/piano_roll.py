"""The notes the transcription heard, as a piano roll people can look at.

A glance at the roll tells whether the transcriber heard music (lines and chords on the
keyboard) or nonsense (a smear across every key), which no confidence figure can.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from pydantic import BaseModel, ConfigDict

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MAX_NOTES = 2000  # a 30 s clip of dense piano music has a few hundred


class Note(BaseModel):
    """One heard note: onset and offset in seconds of the clip, MIDI pitch, loudness 0..1."""

    model_config = ConfigDict(frozen=True)

    onset_s: float
    offset_s: float
    pitch: int
    velocity: float


def notes_of(transcription) -> list[Note]:
    """A :class:`core.transcription.Transcription`'s notes, the loudest first if there are
    too many to draw."""
    notes = [
        Note(
            onset_s=round(float(on), 3),
            offset_s=round(float(off), 3),
            pitch=int(p),
            velocity=round(float(a), 3),
        )
        for on, off, p, a in zip(
            transcription.onset_s,
            transcription.offset_s,
            transcription.pitch,
            transcription.amplitude,
            strict=True,
        )
    ]
    if len(notes) > MAX_NOTES:
        notes = sorted(notes, key=lambda n: -n.velocity)[:MAX_NOTES]
        notes.sort(key=lambda n: (n.onset_s, n.pitch))
    return notes


def note_name(pitch: int) -> str:
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def figure(notes: list[Note], seconds: float, title: str = "Notes heard") -> Figure:
    """Time x pitch, one bar per note, coloured by how loud it was played."""
    # A bare Figure, not pyplot's: a server draws one per request and pyplot would keep them all.
    fig = Figure(figsize=(8, 3.2))
    ax = fig.subplots()
    if notes:
        pitches = [n.pitch for n in notes]
        low, high = max(21, min(pitches) - 3), min(108, max(pitches) + 3)
        boxes = [
            Rectangle((n.onset_s, n.pitch - 0.4), max(n.offset_s - n.onset_s, 0.03), 0.8)
            for n in notes
        ]
        bars = PatchCollection(boxes, cmap="viridis", edgecolor="none")
        bars.set_array([n.velocity for n in notes])
        bars.set_clim(0.0, 1.0)
        ax.add_collection(bars)
        fig.colorbar(bars, ax=ax, pad=0.01, label="loudness")
        c_keys = [p for p in range(low, high + 1) if p % 12 == 0]
        ax.set_yticks(c_keys, [note_name(p) for p in c_keys])
        ax.set_ylim(low, high)
    else:
        ax.text(
            0.5,
            0.5,
            "no notes were heard",
            ha="center",
            va="center",
            transform=ax.transAxes,
            color="0.4",
        )
        ax.set_yticks([])
    ax.set_xlim(0, max(seconds, 1.0))
    ax.set_xlabel("seconds into the clip")
    ax.set_title(f"{title}: {len(notes)} notes", fontsize=10)
    ax.grid(axis="y", color="0.9")
    fig.tight_layout()
    return fig
