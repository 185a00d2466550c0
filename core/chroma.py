"""Notes -> tempo-robust chroma sequences (CENS-like), the features of the work index.

The index is built from MIDI notes and queried with transcribed notes, so both sides go
through the same function (``notes_cens``): a 12-bin pitch-class roll at ``FINE_RATE`` Hz in
which each note counts for at most ``NOTE_CAP_S`` seconds (a transcriber's offsets and a
score's pedalled note-offs disagree; the onset region is what both hear), then CENS
(Mueller & Ewert 2011): L1-normalise each frame, quantise the energy shares logarithmically,
smooth over ``SMOOTH_S`` seconds, downsample to ``RATE`` Hz and L2-normalise. Quantising and
smoothing make the sequence indifferent to dynamics, articulation and small timing changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FINE_RATE = 10.0  # Hz, the pitch-class roll
RATE = 2.0  # Hz, the CENS sequence (index and queries)
SMOOTH_S = 2.0  # smoothing window of the CENS sequence
NOTE_CAP_S = 1.0  # a note counts for at most this long after its onset
CENS_STEPS = (0.4, 0.2, 0.1, 0.05)  # energy-share thresholds, weights 4..1


@dataclass(frozen=True)
class NoteList:
    """Notes in seconds: the index's MIDI notes or a query's transcribed notes."""

    onset_s: np.ndarray
    offset_s: np.ndarray
    pitch: np.ndarray  # MIDI
    weight: np.ndarray  # loudness share (velocity / 127, or transcription amplitude)

    def scaled(self, factor: float) -> NoteList:
        """The same notes played ``factor`` times slower (> 1 stretches time)."""
        return NoteList(self.onset_s * factor, self.offset_s * factor, self.pitch, self.weight)


def pitch_class_roll(
    notes: NoteList, duration_s: float, rate: float = FINE_RATE, cap_s: float = NOTE_CAP_S
) -> np.ndarray:
    """Frames x 12 energy: each note adds its weight to the frames it covers (capped)."""
    n = max(1, int(np.ceil(duration_s * rate)))
    roll = np.zeros((n + 1, 12), dtype=np.float64)
    if len(notes.pitch):
        on = np.clip(np.floor(notes.onset_s * rate).astype(np.int64), 0, n)
        end_s = np.minimum(notes.offset_s, notes.onset_s + cap_s)
        off = np.clip(np.ceil(end_s * rate).astype(np.int64), 0, n)
        off = np.maximum(off, np.minimum(on + 1, n))
        pc = np.asarray(notes.pitch, dtype=np.int64) % 12
        w = np.asarray(notes.weight, dtype=np.float64)
        # difference array: +w at the onset frame, -w after the last frame, then cumsum
        np.add.at(roll, (on, pc), w)
        np.add.at(roll, (off, pc), -w)
        roll = np.cumsum(roll, axis=0)
    return np.maximum(roll[:n], 0.0)


def cens(
    roll: np.ndarray, fine_rate: float = FINE_RATE, rate: float = RATE, smooth_s: float = SMOOTH_S
) -> np.ndarray:
    """CENS of a pitch-class roll: frames x 12 float32, unit L2 norm (silent frames zero)."""
    total = roll.sum(axis=1, keepdims=True)
    share = np.divide(roll, total, out=np.zeros_like(roll), where=total > 0)
    quant = np.zeros_like(share)
    for step in CENS_STEPS:
        quant += share > step
    width = max(1, round(smooth_s * fine_rate))
    window = np.hanning(width + 2)[1:-1]
    kernel = window / window.sum()
    smooth = np.stack([np.convolve(quant[:, c], kernel, mode="same") for c in range(12)], axis=1)
    step = max(1, round(fine_rate / rate))
    down = smooth[step // 2 :: step]
    norm = np.linalg.norm(down, axis=1, keepdims=True)
    out = np.divide(down, norm, out=np.zeros_like(down), where=norm > 1e-9)
    return out.astype(np.float32)


def notes_cens(notes: NoteList, duration_s: float) -> np.ndarray:
    """The CENS sequence of a list of notes (see the module docstring)."""
    return cens(pitch_class_roll(notes, duration_s))


def to_uint8(sequence: np.ndarray) -> np.ndarray:
    """Compact storage of a unit-norm, non-negative sequence (error <= 0.002 per bin)."""
    return np.round(np.clip(sequence, 0.0, 1.0) * 255).astype(np.uint8)


def from_uint8(stored: np.ndarray) -> np.ndarray:
    return stored.astype(np.float32) / 255.0
