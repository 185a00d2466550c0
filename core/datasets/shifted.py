"""The shifted bench set: every demo recording re-rendered with a SoundFont the pack never
uses, humanised, featurized like the pack (``bench/accuracy.py`` scores robustness on it)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.config import FeatureConfig
from core.datasets.pack_jobs import cpu_seconds, labelled_rows, performed_seconds
from core.datasets.pack_load import load_pack
from core.datasets.pack_pieces import (
    ATTRIBUTION,
    LICENCE,
    META_COLUMNS,
    PACK_FORMAT,
    PREROLL_SECONDS,
    BuildOptions,
    sha256,
)
from core.fileio import atomic_write

# ------------------------------------------------------------------ the shifted bench set
# Every demo recording again, but from a SoundFont the pack never uses (TimGM6mb) and
# humanised: the same ~30 s of music (start mapped through the tempo change), so a model's
# score on it measures robustness to another piano and another "performer".

SHIFTED_SOUNDFONT = "timgm6mb"
SHIFTED_COLUMNS = ["recording_id", *META_COLUMNS[1:]]  # the pack's, keyed by recording
FADE_SECONDS = 0.05


@dataclass(frozen=True)
class Excerpt:
    """One demo row: which piece and which part of it."""

    recording_id: str
    composer: str
    work: str
    title: str
    source_midi: str
    start_s: float
    duration_s: float

    @property
    def slug(self) -> str:
        return self.recording_id.replace("/", "__")


def read_demo_excerpts(manifest_csv: Path) -> list[Excerpt]:
    frame = pd.read_csv(manifest_csv)
    return [
        Excerpt(r.recording_id, r.composer, r.work, r.title, r.source_midi, r.start_s, r.duration_s)
        for r in frame.itertuples(index=False)
    ]


def shifted_audio_path(work_dir: Path, ex: Excerpt) -> Path:
    return Path(work_dir) / "shifted" / "audio" / f"{ex.slug}.flac"


def render_excerpt(ex: Excerpt, opts: BuildOptions) -> tuple[Path, bool]:
    """Render the humanised piece up to the excerpt's end with TimGM6mb and cut the excerpt."""
    import soundfile as sf

    from core import render

    target = shifted_audio_path(opts.work_dir, ex)
    sidecar = target.with_suffix(".json")
    if target.is_file() and sidecar.is_file():
        return target, False
    seed = render.seed_for(opts.base_seed, "shifted", ex.recording_id)
    sr = opts.config.sample_rate
    out = render.render_augmented(
        Path(opts.midi_dir) / ex.source_midi,
        SHIFTED_SOUNDFONT,
        sr,
        seed,
        audio_augment=False,
        from_s=max(0.0, ex.start_s - PREROLL_SECONDS),
        until_s=ex.start_s + ex.duration_s + 2.0,
        soundfont_cache=Path(opts.work_dir) / "soundfonts",
    )
    start, end = (
        float(x) for x in out.time_map(np.array([ex.start_s, ex.start_s + ex.duration_s]))
    )
    y = out.samples[round(start * sr) : round(end * sr)].astype(np.float64)
    y = render.normalise(y)  # as the demo clips: -1 dBFS peak and 50 ms fades
    n_fade = min(round(FADE_SECONDS * sr), len(y) // 2)
    ramp = np.linspace(0.0, 1.0, n_fade, endpoint=False, dtype=np.float32)
    y[:n_fade] *= ramp
    y[len(y) - n_fade :] *= ramp[::-1]
    atomic_write(target, lambda tmp: sf.write(tmp, y, sr, format="FLAC"))
    meta = {
        "recording_id": ex.recording_id,
        "soundfont": out.soundfont,
        "seed": seed,
        "demo_start_s": ex.start_s,
        "start_s": round(performed_seconds(out.humanise, ex.start_s), 3),
        "seconds": round(len(y) / sr, 3),
        "augmentation": out.describe(),
        "params": out.params(),
    }
    atomic_write(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    return target, True


def featurize_excerpt(ex: Excerpt, opts: BuildOptions) -> pd.DataFrame:
    import soundfile as sf

    src = shifted_audio_path(opts.work_dir, ex)
    meta = json.loads(src.with_suffix(".json").read_text())
    y, _ = sf.read(src, dtype="float32")
    head = {
        "recording_id": ex.recording_id,
        "composer": ex.composer,
        "work": ex.work,
        "title": ex.title,
        "source": SHIFTED_SOUNDFONT,
        "augmentation": meta["augmentation"],
    }
    return labelled_rows(y, opts.config, head)


def _shifted_one(stage: str, ex: Excerpt, opts: BuildOptions) -> tuple[Any, float]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = cpu_seconds()
    result = render_excerpt(ex, opts)[1] if stage == "render" else featurize_excerpt(ex, opts)
    return result, cpu_seconds() - t0


def build_shifted(
    excerpts: Sequence[Excerpt],
    opts: BuildOptions,
    out_dir: Path | None,
    command: str,
    workers: int = 2,
    progress: Callable[[str], None] | None = print,
    featurize: bool = True,
) -> dict[str, Any]:
    """Render (cached) and, if ``featurize``, featurize every excerpt into ``out_dir``."""
    from core.render import fast_soundfont

    fast_soundfont(SHIFTED_SOUNDFONT, Path(opts.work_dir) / "soundfonts")
    stages = ["render", "featurize"] if featurize else ["render"]
    frames: dict[str, pd.DataFrame] = {}
    cpu: dict[str, float] = {}
    for stage in stages:
        t0, cpu[stage] = time.monotonic(), 0.0
        with ProcessPoolExecutor(max_workers=max(1, min(2, workers))) as pool:
            futures = {pool.submit(_shifted_one, stage, ex, opts): ex for ex in excerpts}
            for done, fut in enumerate(as_completed(futures), start=1):
                ex = futures[fut]
                result, seconds = fut.result()
                cpu[stage] += seconds
                if stage == "featurize":
                    frames[ex.recording_id] = result
                if progress:
                    progress(
                        f"shifted {stage} [{done:>3}/{len(excerpts)}] "
                        f"{time.monotonic() - t0:5.0f}s {ex.recording_id} {seconds:.1f} CPU-s"
                    )
    if not featurize or out_dir is None:
        return {"cpu_s": cpu}
    table = pd.concat([frames[k] for k in sorted(frames)], ignore_index=True)
    return write_shifted(table, excerpts, opts, Path(out_dir), command, cpu)


def write_shifted(
    table: pd.DataFrame,
    excerpts: Sequence[Excerpt],
    opts: BuildOptions,
    out_dir: Path,
    command: str,
    cpu: dict[str, float],
) -> dict[str, Any]:
    """``features.parquet`` and ``manifest.json`` (what each excerpt became) into ``out_dir``."""
    parquet = out_dir / "features.parquet"
    atomic_write(
        parquet,
        lambda tmp: table.to_parquet(tmp, index=False, compression="zstd", compression_level=19),
    )
    excerpts_meta = {}
    for ex in excerpts:
        meta = json.loads(shifted_audio_path(opts.work_dir, ex).with_suffix(".json").read_text())
        excerpts_meta[ex.recording_id] = {
            k: meta[k] for k in ("demo_start_s", "start_s", "seconds", "seed", "augmentation")
        }
    manifest = {
        "format": PACK_FORMAT,
        "feature_schema": opts.config.schema_id,
        "feature_config": opts.config.model_dump(),
        "feature_fingerprint": opts.config.fingerprint(),
        "soundfont": SHIFTED_SOUNDFONT,
        "rows": len(table),
        "recordings": int(table["recording_id"].nunique()),
        "composers": int(table["composer"].nunique()),
        "base_seed": opts.base_seed,
        "licence": LICENCE,
        "attribution": ATTRIBUTION,
        "build_command": command,
        "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
        "parquet_sha256": sha256(parquet),
        "parquet_bytes": parquet.stat().st_size,
        "excerpts": excerpts_meta,
    }
    atomic_write(
        out_dir / "manifest.json",
        lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2) + "\n"),
    )
    return manifest


def load_shifted(shifted_dir: Path, config: FeatureConfig) -> pd.DataFrame:
    """The shifted bench set for ``config`` (same schema/config/sha checks as the pack)."""
    return load_pack(shifted_dir, config)
