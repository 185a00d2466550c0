"""One job of the pack build: render one chunk of a (piece, variant), or featurize it.

Each job is cached in the work directory (written atomically), so a stopped build resumes."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.config import FeatureConfig
from core.datasets.pack_pieces import (
    CHUNK_SECONDS,
    PREROLL_SECONDS,
    BuildOptions,
    PackError,
    Piece,
    Variant,
)
from core.fileio import atomic_write

# ------------------------------------------------------------------ chunks
# A piece is featurized in CHUNK_SECONDS chunks spread over it (a van der Corput order of
# non-overlapping slots: middle, quarters, eighths...), each SoundFont taking other slots,
# so every extra chunk adds new music; ``BuildOptions.chunks`` says how many per SoundFont.
# Only the chunk (plus a pre-roll for pedal and reverb) is rendered.


def midi_seconds(path: Path) -> float:
    import mido

    return float(mido.MidiFile(str(path)).length)


def _corput(n: int) -> list[int]:
    order: list[int] = []
    i = 1
    while len(order) < n:
        x, denom, k = 0.0, 1.0, i
        while k:
            denom *= 2
            x += (k % 2) / denom
            k //= 2
        slot = min(n - 1, math.floor(x * n))
        if slot not in order:
            order.append(slot)
        i += 1
        if i > 64 * n:  # a rounding collision left a slot out: append the rest in order
            order += [j for j in range(n) if j not in order]
    return order


def chunk_plan(seconds: float, n_variants: int, variant_index: int) -> list[tuple[float, float]]:
    """(score start, length) of each chunk this variant may use, in priority order."""
    if seconds <= CHUNK_SECONDS:
        return [(0.0, seconds)]
    slots = math.floor(seconds / CHUNK_SECONDS)
    offset = (seconds - slots * CHUNK_SECONDS) / 2
    order = _corput(slots)
    # snake order (A B B A A B ...) so no SoundFont gets only the late slots
    owner = [
        i % n_variants if (i // n_variants) % 2 == 0 else n_variants - 1 - i % n_variants
        for i in range(len(order))
    ]
    mine = [slot for slot, v in zip(order, owner, strict=True) if v == variant_index]
    mine = mine or order[:1]
    return [(round(offset + s * CHUNK_SECONDS, 3), CHUNK_SECONDS) for s in mine]


# ------------------------------------------------------------------ stage 1: render


def _key(piece: Piece, variant: Variant, chunk: int) -> str:
    return f"{piece.slug}__{variant.name}__c{chunk}"


def audio_path(work_dir: Path, piece: Piece, variant: Variant, chunk: int = 0) -> Path:
    return Path(work_dir) / "audio" / f"{_key(piece, variant, chunk)}.flac"


def render_piece(
    piece: Piece, variant: Variant, opts: BuildOptions, chunk: int = 0
) -> tuple[Path, bool]:
    """Render + augment one chunk of a (piece, variant) unless cached; (sidecar, computed?).

    The sidecar says ``"skip": true`` when the piece is too short for this chunk.
    """
    import soundfile as sf

    from core import render

    target = audio_path(opts.work_dir, piece, variant, chunk)
    sidecar = target.with_suffix(".json")
    if sidecar.is_file():
        return sidecar, False
    midi = Path(opts.midi_dir) / piece.file
    seconds = midi_seconds(midi)
    index = opts.variants.index(variant)
    plan = chunk_plan(seconds, len(opts.variants), index)
    if chunk >= len(plan):
        meta = {"piece": piece.piece, "variant": variant.name, "chunk": chunk, "skip": True}
        atomic_write(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(meta)))
        return sidecar, True
    start, length = plan[chunk]
    seed = render.seed_for(opts.base_seed, piece.piece, variant.name)  # one draw per variant
    sr = opts.config.sample_rate
    pre = max(0.0, start - PREROLL_SECONDS)
    out = render.render_augmented(
        midi,
        variant.soundfont,
        sr,
        seed,
        humanise_strength=variant.humanise_strength,
        audio_augment=variant.audio_augment,
        from_s=pre,
        until_s=start + length + 0.5,
        soundfont_cache=Path(opts.work_dir) / "soundfonts",
    )
    a, b = (float(x) for x in out.time_map(np.array([start, start + length])))
    y = out.samples[round(a * sr) : round(b * sr)]
    if start + length >= seconds - 0.01:  # the piece's end: keep the release
        y = trim_tail(out.samples[round(a * sr) :], sr)
    atomic_write(target, lambda tmp: sf.write(tmp, y, sr, format="FLAC"))
    meta = {
        "piece": piece.piece,
        "variant": variant.name,
        "chunk": chunk,
        "soundfont": out.soundfont,
        "seed": seed,
        "sample_rate": sr,
        "midi_seconds": round(seconds, 3),
        "score_start_s": start,
        "score_seconds": length,
        "start_s": round(performed_seconds(out.humanise, start), 3),
        "seconds": round(len(y) / sr, 3),
        "augmentation": out.describe(),
        "params": out.params(),
    }
    atomic_write(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    return sidecar, True


def performed_seconds(humanise: Any, score_s: float) -> float:
    """Where score time ``score_s`` falls in the whole humanised performance."""
    from core import render

    return float(render.time_map(humanise, score_s + 1.0)(score_s))


def trim_tail(y: np.ndarray, sample_rate: int, floor_db: float = -60.0) -> np.ndarray:
    """Drop the release tail fluidsynth renders after the music (below ``floor_db`` re peak)."""
    loud = np.flatnonzero(np.abs(y) >= np.max(np.abs(y)) * 10 ** (floor_db / 20))
    end = min(len(y), int(loud[-1]) + 1 + int(0.5 * sample_rate)) if loud.size else len(y)
    return y[:end]


# ------------------------------------------------------------------ stage 2: featurize


def rows_path(
    work_dir: Path, config: FeatureConfig, piece: Piece, variant: Variant, chunk: int = 0
) -> Path:
    key = f"{config.schema_id.replace('/', '-')}-{config.fingerprint()}"
    return Path(work_dir) / "rows" / key / f"{_key(piece, variant, chunk)}.parquet"


def labelled_rows(
    y: np.ndarray, config: FeatureConfig, head: dict[str, Any], offset_s: float = 0.0
) -> pd.DataFrame:
    """``featurize_audio`` rows (float32, starts shifted by ``offset_s``) behind the
    metadata columns in ``head``: the row format of the pack and the shifted set."""
    from core.featurize import featurize_audio

    rows = featurize_audio(y, config)
    rows["start_s"] = (rows["start_s"] + np.float32(offset_s)).astype(np.float32)
    features = [c for c in rows.columns if c not in ("segment", "start_s")]
    rows[features] = rows[features].astype(np.float32)
    return pd.concat([pd.DataFrame(head, index=rows.index), rows], axis=1)


def featurize_piece(
    piece: Piece, variant: Variant, opts: BuildOptions, chunk: int = 0
) -> tuple[Path, bool]:
    """Feature rows of one rendered chunk unless cached; (rows path, computed?)."""
    import soundfile as sf

    target = rows_path(opts.work_dir, opts.config, piece, variant, chunk)
    if target.is_file():
        return target, False
    src = audio_path(opts.work_dir, piece, variant, chunk)
    meta = json.loads(src.with_suffix(".json").read_text())
    if meta.get("skip"):
        out = pd.DataFrame()
    else:
        y, sr = sf.read(src, dtype="float32")
        if sr != opts.config.sample_rate:
            raise PackError(f"{src}: {sr} Hz, the feature config wants {opts.config.sample_rate}")
        head = {
            "piece": piece.piece,
            "composer": piece.composer,
            "work": piece.work,
            "title": piece.title,
            "source": variant.name,
            "augmentation": meta["augmentation"],
        }
        out = labelled_rows(y, opts.config, head, offset_s=meta["start_s"])
    atomic_write(target, lambda tmp: out.to_parquet(tmp, index=False))
    return target, True


def cpu_seconds() -> float:
    """CPU time of this process plus its waited-for children (fluidsynth runs as one)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def jobs_of(pieces: Sequence[Piece], opts: BuildOptions) -> list[tuple[Piece, Variant, int]]:
    """Chunk by chunk (all pieces' first chunks before any second one), so a stopped build
    still covers every piece evenly."""
    return [(p, v, k) for k in range(opts.chunks) for p in pieces for v in opts.variants]
