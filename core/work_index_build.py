"""Build-time helpers of the work index: MIDI scores -> chroma, and calibration clips.

Development time only (``scripts/build_work_index.py``): needs the piano-midi.de MIDI
files, fluidsynth and the TimGM6mb SoundFont. Serving and tests only load ``data/works``.

Calibration clips are "another pianist on another piano": a stretch of the score from
anywhere in the piece, humanised (tempo drift, jitter, velocities) with a global tempo change
of up to +-10 %, rendered with TimGM6mb (a SoundFont the pack never uses) and transcribed by
the served transcriber. Their notes are what the threshold is calibrated on, and what the
bench and tests replay without the MIDI files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core import chroma

CLIP_SOUNDFONT = "timgm6mb"
CLIP_SCORE_S = 30.0  # seconds of score per clip (27-33 s performed)
PREROLL_S = 2.0  # rendered before the clip and discarded (pedal, reverb tails)
MAX_TEMPO_CHANGE = 0.10


def midi_notes(path: str | Path) -> tuple[chroma.NoteList, float]:
    """All notes of a MIDI file in seconds (tempo map applied), note-offs held while the
    sustain pedal is down, weight = velocity / 127; and the file's length."""
    import mido

    now = 0.0
    pedal: dict[int, bool] = {}
    sounding: dict[tuple[int, int], list[tuple[float, int]]] = {}
    held: dict[int, list[tuple[float, int, int]]] = {}  # channel -> released under pedal
    rows: list[tuple[float, float, int, int]] = []
    for msg in mido.MidiFile(str(path)):
        now += msg.time
        if msg.type == "control_change" and msg.control == 64:
            down = msg.value >= 64
            if pedal.get(msg.channel) and not down:
                rows.extend((on, now, note, vel) for on, note, vel in held.pop(msg.channel, []))
            pedal[msg.channel] = down
        elif msg.type == "note_on" and msg.velocity > 0:
            sounding.setdefault((msg.channel, msg.note), []).append((now, msg.velocity))
        elif msg.type in ("note_off", "note_on"):
            stack = sounding.get((msg.channel, msg.note))
            if stack:
                on, vel = stack.pop(0)
                if pedal.get(msg.channel):
                    held.setdefault(msg.channel, []).append((on, msg.note, vel))
                else:
                    rows.append((on, now, msg.note, vel))
    for channel_notes in held.values():
        rows.extend((on, now, note, vel) for on, note, vel in channel_notes)
    for (_, note), stack in sounding.items():
        rows.extend((on, now, note, vel) for on, vel in stack)
    table = np.asarray(sorted(rows), dtype=np.float64).reshape(-1, 4)
    notes = chroma.NoteList(
        table[:, 0], table[:, 1], table[:, 2].astype(np.int64), table[:, 3] / 127
    )
    return notes, now


def piece_sequence(path: str | Path) -> np.ndarray:
    """The index entry of one piece: the CENS sequence of its whole score."""
    notes, duration = midi_notes(path)
    return chroma.notes_cens(notes, duration)


@dataclass(frozen=True)
class ClipSpec:
    """One calibration clip: which piece, which part of the score, which performance."""

    clip_id: str
    piece: str
    work: str
    midi_file: str
    start_s: float  # score seconds
    tempo_scale: float  # > 1 plays faster
    seed: int


def render_clip(spec: ClipSpec, midi_dir: Path, sample_rate: int, cache: Path) -> np.ndarray:
    """The clip's audio: humanised, tempo-changed, rendered with TimGM6mb, cut to the score
    stretch ``[start_s, start_s + CLIP_SCORE_S)`` mapped through the performance's time map."""
    import tempfile

    from core import render

    rng = np.random.default_rng(spec.seed)
    h = dataclasses.replace(render.Humanise.draw(rng), tempo_scale=spec.tempo_scale)
    from_s = max(0.0, spec.start_s - PREROLL_S)
    with tempfile.TemporaryDirectory(prefix="workclip_") as tmp:
        midi = Path(tmp) / "clip.mid"
        tmap = render.humanise_midi(
            midi_dir / spec.midi_file, midi, h, rng, spec.start_s + CLIP_SCORE_S + 1.0, from_s
        )
        font = render.fast_soundfont(CLIP_SOUNDFONT, cache)
        y = render.render_midi(midi, font, sample_rate)
    start, end = (float(t) for t in tmap(np.array([spec.start_s, spec.start_s + CLIP_SCORE_S])))
    return y[round(start * sample_rate) : round(end * sample_rate)]


def clip_notes(spec: ClipSpec, midi_dir: Path, cache: Path) -> tuple[pd.DataFrame, float]:
    """Render and transcribe one clip: its transcribed notes (one row each), its length."""
    from core.transcription import SAMPLE_RATE, transcribe

    y = render_clip(spec, midi_dir, SAMPLE_RATE, cache)
    t = transcribe(y, SAMPLE_RATE)
    frame = pd.DataFrame(
        {
            "clip_id": [spec.clip_id] * len(t),
            "onset_s": t.onset_s.astype(np.float32),
            "offset_s": t.offset_s.astype(np.float32),
            "pitch": t.pitch.astype(np.int8),
            "amplitude": np.round(t.amplitude * 255).astype(np.uint8),
        }
    )
    return frame, float(t.duration_s)


def clip_specs(pieces: pd.DataFrame, held_out: set[str], base_seed: int) -> list[ClipSpec]:
    """One clip per indexed piece and two per held-out piece (more negatives), each from a
    seeded position anywhere in the piece and a seeded tempo change."""
    from core.render import seed_for

    specs = []
    for row in pieces.itertuples(index=False):
        for k in range(2 if row.work in held_out else 1):
            seed = seed_for(base_seed, "work-clip", row.piece, k)
            rng = np.random.default_rng(seed)
            start = float(rng.uniform(0.0, max(0.0, row.duration_s - CLIP_SCORE_S - 1.0)))
            tempo = float(np.exp(rng.uniform(-MAX_TEMPO_CHANGE, MAX_TEMPO_CHANGE)))
            specs.append(
                ClipSpec(f"{row.piece}#{k}", row.piece, row.work, row.file, round(start, 2),
                         round(tempo, 4), seed)
            )  # fmt: skip
    return specs


def held_out_works(works: list[str], fraction: float, base_seed: int) -> set[str]:
    """A seeded ``fraction`` of the works, left out of the calibration index."""
    from core.render import seed_for

    ranked = sorted(works, key=lambda w: seed_for(base_seed, "held-out", w))
    return set(ranked[: round(fraction * len(works))])


def stored_notes(frame: pd.DataFrame) -> chroma.NoteList:
    """The chroma input of one stored clip (``clip_notes`` rows)."""
    return chroma.NoteList(
        onset_s=frame["onset_s"].to_numpy(np.float64),
        offset_s=frame["offset_s"].to_numpy(np.float64),
        pitch=frame["pitch"].to_numpy(np.int64),
        weight=frame["amplitude"].to_numpy(np.float64) / 255,
    )


def cached_clip_notes(
    spec: ClipSpec, midi_dir: Path, work_dir: Path
) -> tuple[ClipSpec, pd.DataFrame, float]:
    """``clip_notes`` through a cache in ``work_dir`` (a rerun only re-scores)."""
    import json
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    target = Path(work_dir) / "clips" / f"{spec.clip_id.replace('/', '__')}.parquet"
    sidecar = target.with_suffix(".json")
    if sidecar.is_file():
        return spec, pd.read_parquet(target), json.loads(sidecar.read_text())["duration_s"]
    frame, duration = clip_notes(spec, midi_dir, Path(work_dir) / "soundfonts")
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(target, index=False)
    sidecar.write_text(json.dumps({"duration_s": duration}))
    return spec, frame, duration
