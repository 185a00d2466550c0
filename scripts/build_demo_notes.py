"""Reference notes of the demo clips, from their source MIDI: data/demo/notes.parquet.

Maintainer-only, run at development time (the MIDI collection is not part of the repo):

    .venv/bin/python -P scripts/build_demo_notes.py --midi-dir /path/to/piano-midi

For every row of ``data/demo/manifest.csv`` it reads ``source_midi`` with mido (tempo changes
applied), keeps the notes whose onset falls inside the clip (``start_s`` .. ``start_s +
duration_s`` of the rendered piece: ``scripts/render_demo_corpus.py`` renders the whole file
from MIDI time 0 and cuts there) and writes them relative to the clip, after a per-clip
alignment to the audio (``clip_lags``): recording_id, onset_s, offset_s (note-off, clipped to
the clip's end; the sustain pedal is ignored), pitch (MIDI), velocity (1-127).
``bench/transcription_bench.py`` scores transcriptions against them. Derived from
piano-midi.de (CC BY-SA 3.0 DE, see data/demo/LICENSE.md). Deterministic.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import librosa
import mido
import numpy as np
import pandas as pd
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["recording_id", "onset_s", "offset_s", "pitch", "velocity"]
HOP = 256
MAX_LAG_S = 0.2


def midi_notes(path: Path) -> pd.DataFrame:
    """All notes of a MIDI file in seconds: onset, offset, pitch, velocity."""
    now = 0.0
    sounding: dict[tuple[int, int], list[tuple[float, int]]] = {}
    rows: list[tuple[float, float, int, int]] = []
    for message in mido.MidiFile(path):  # iteration merges tracks; .time is in seconds
        now += message.time
        if message.type not in ("note_on", "note_off"):
            continue
        key = (message.channel, message.note)
        if message.type == "note_on" and message.velocity > 0:
            sounding.setdefault(key, []).append((now, message.velocity))
        elif sounding.get(key):
            onset, velocity = sounding[key].pop(0)
            rows.append((onset, now, message.note, velocity))
    for (_, note), started in sounding.items():  # never released: ends with the file
        rows += [(onset, now, note, velocity) for onset, velocity in started]
    return pd.DataFrame(rows, columns=["onset_s", "offset_s", "pitch", "velocity"])


def clip_notes(notes: pd.DataFrame, start_s: float, duration_s: float) -> pd.DataFrame:
    """Notes starting inside [start_s, start_s + duration_s), relative to the clip."""
    inside = notes[(notes.onset_s >= start_s) & (notes.onset_s < start_s + duration_s)].copy()
    inside["onset_s"] -= start_s
    inside["offset_s"] = np.minimum(inside.offset_s - start_s, duration_s)
    return inside.sort_values(["onset_s", "pitch"], kind="stable")


def lag_scores(notes: pd.DataFrame, audio_path: Path) -> np.ndarray:
    """For each lag in -0.2..+0.2 s (one 256-sample frame apart), the share of the clip's MIDI
    onset times that land within 30 ms of an onset detected in the audio (spectral flux
    peaks). Uses the audio alone, never the transcriber these notes are meant to score."""
    y, sr = sf.read(audio_path, dtype="float32", always_2d=True)
    detected = librosa.onset.onset_detect(
        y=y.mean(axis=1), sr=sr, hop_length=HOP, units="time", backtrack=False
    )
    onsets = np.unique(np.round(notes.onset_s.to_numpy(), 2))
    max_lag = int(MAX_LAG_S * sr / HOP)
    scores = np.zeros(2 * max_lag + 1)
    if not len(detected) or not len(onsets):
        return scores
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        shifted = onsets + lag * HOP / sr
        nearest = np.abs(detected[None, :] - shifted[:, None]).min(axis=1)
        scores[i] = np.mean(nearest <= 0.03)
    return scores


def clip_lags(scores: list[np.ndarray], sr: int = 22050) -> list[float]:
    """Seconds to add to each clip's MIDI times so that they line up with the rendered audio.

    fluidsynth's clock drifts from the MIDI tempo map over a long piece (up to ~0.1 s by the
    clip's start on some files). Flux peaks come a frame or two after the true onsets, so the
    typical lag over all clips (most have no drift) is taken as that detector bias; a clip is
    moved only where another lag matches clearly better (by 10 %) than the bias."""
    best = [int(np.argmax(s)) for s in scores]
    bias = int(np.median(best))
    lags = []
    for s, b in zip(scores, best, strict=True):
        moved = s[b] > 1.1 * s[bias]
        lags.append((b - bias) * HOP / sr if moved else 0.0)
    return lags


def build(manifest: pd.DataFrame, midi_dir: Path, demo_dir: Path) -> pd.DataFrame:
    pieces = [midi_notes(midi_dir / row.source_midi) for row in manifest.itertuples()]
    scores = [
        lag_scores(clip_notes(notes, row.start_s, row.duration_s), demo_dir / row.path)
        for notes, row in zip(pieces, manifest.itertuples(), strict=True)
    ]
    frames = []
    for notes, row, lag in zip(pieces, manifest.itertuples(), clip_lags(scores), strict=True):
        clip = clip_notes(notes, row.start_s - lag, row.duration_s)
        clip.insert(0, "recording_id", row.recording_id)
        frames.append(clip)
    moved = sum(lag != 0 for lag in clip_lags(scores))
    print(f"aligned {moved} of {len(frames)} clips to their audio")
    table = pd.concat(frames, ignore_index=True)[COLUMNS]
    return table.astype(
        {"onset_s": "float32", "offset_s": "float32", "pitch": "int16", "velocity": "int16"}
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--midi-dir", type=Path, required=True, help="piano-midi.de folder")
    parser.add_argument("--demo-dir", type=Path, default=REPO / "data" / "demo")
    args = parser.parse_args(argv)
    manifest = pd.read_csv(args.demo_dir / "manifest.csv")
    table = build(manifest, args.midi_dir, args.demo_dir)
    target = args.demo_dir / "notes.parquet"
    table.to_parquet(target, index=False, compression="zstd")
    print(f"{target}: {len(table)} notes, {table.recording_id.nunique()} clips")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
