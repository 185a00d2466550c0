"""The pack build loop: run every job of a stage in at most two processes, then assemble
the cached rows into ``features.parquet`` + ``manifest.json`` + ``pieces.csv``."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.datasets.pack_jobs import cpu_seconds, featurize_piece, jobs_of, render_piece, rows_path
from core.datasets.pack_pieces import (
    ATTRIBUTION,
    CHUNK_SECONDS,
    LICENCE,
    META_COLUMNS,
    PACK_FORMAT,
    BuildOptions,
    PackError,
    Piece,
    Variant,
    read_sources,
    select_pieces,
    sha256,
    write_pieces,
)
from core.fileio import atomic_write

STAGES = ("render", "featurize")


@dataclass(frozen=True)
class StageReport:
    stage: str
    jobs: int
    computed: int
    cpu_s: float  # summed over workers, fluidsynth included
    wall_s: float
    failures: tuple[str, ...]


def _run_one(
    stage: str, piece: Piece, variant: Variant, opts: BuildOptions, chunk: int
) -> tuple[bool, float]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = cpu_seconds()
    fn = render_piece if stage == "render" else featurize_piece
    _, computed = fn(piece, variant, opts, chunk)
    return computed, cpu_seconds() - t0


def run_stage(
    stage: str,
    pieces: Sequence[Piece],
    opts: BuildOptions,
    workers: int = 2,
    progress: Callable[[str], None] | None = print,
) -> StageReport:
    """Run ``render`` or ``featurize`` for every (piece, variant, chunk), at most 2 processes."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    jobs = jobs_of(pieces, opts)
    if stage == "render":  # decode SF3 SoundFonts once, before the workers need them
        from core.render import fast_soundfont

        for v in opts.variants:
            fast_soundfont(v.soundfont, Path(opts.work_dir) / "soundfonts")
    t0 = time.monotonic()
    computed, cpu, failures = 0, 0.0, []
    with ProcessPoolExecutor(max_workers=max(1, min(2, workers))) as pool:
        futures = {pool.submit(_run_one, stage, p, v, opts, k): (p, v, k) for p, v, k in jobs}
        for done, fut in enumerate(as_completed(futures), start=1):
            p, v, k = futures[fut]
            try:
                did, seconds = fut.result()
                computed += did
                cpu += seconds
                status = f"{seconds:.1f} CPU-s" if did else "cached"
            except Exception as exc:  # report and continue; the caller decides
                failures.append(f"{p.piece} [{v.name} c{k}]: {exc}")
                status = f"FAILED ({exc})"
            if progress:
                elapsed = time.monotonic() - t0
                progress(
                    f"{stage} [{done:>4}/{len(jobs)}] {elapsed:6.0f}s "
                    f"{p.piece} [{v.name} c{k}] {status}"
                )
    return StageReport(stage, len(jobs), computed, cpu, time.monotonic() - t0, tuple(failures))


def build(
    pieces: Sequence[Piece],
    opts: BuildOptions,
    out_dir: Path,
    command: str,
    workers: int = 2,
    progress: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Render, featurize and assemble: the whole pack build (each stage resumable)."""
    reports = [run_stage(stage, pieces, opts, workers, progress) for stage in STAGES]
    failures = [f for r in reports for f in r.failures]
    if failures:
        raise PackError(
            f"{len(failures)} jobs failed (rerun to retry only those): " + "; ".join(failures[:5])
        )
    extra = {
        "build_cpu_s": {r.stage: round(r.cpu_s, 1) for r in reports},
        "build_computed": {r.stage: r.computed for r in reports},
    }
    return assemble(pieces, opts, out_dir, command, extra)


def build_piece(piece_id_: str, opts: BuildOptions) -> dict[str, Any]:
    """Render and featurize every variant and chunk of one piece in this process (one mapped
    Airflow task); resumable like the CLI build, sharing its cache."""
    piece = select_pieces(read_sources(opts.midi_dir), [piece_id_])[0]
    computed, t0 = 0, cpu_seconds()
    for _, variant, chunk in jobs_of([piece], opts):
        computed += render_piece(piece, variant, opts, chunk)[1]
        computed += featurize_piece(piece, variant, opts, chunk)[1]
    return {"piece": piece.piece, "computed": computed, "cpu_s": round(cpu_seconds() - t0, 2)}


# ------------------------------------------------------------------ assemble + load


def assemble(
    pieces: Sequence[Piece],
    opts: BuildOptions,
    out_dir: Path,
    command: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Concatenate cached rows into ``out_dir``: features.parquet, manifest.json, pieces.csv."""
    frames = []
    for p, v, k in jobs_of(pieces, opts):
        path = rows_path(opts.work_dir, opts.config, p, v, k)
        if not path.is_file():
            raise PackError(f"{p.piece} [{v.name} c{k}] is not featurized yet ({path}).")
        frames.append(pd.read_parquet(path))
    table = pd.concat([f for f in frames if len(f)], ignore_index=True)
    table = table.sort_values(["piece", "source", "start_s"], kind="stable")
    table["segment"] = table.groupby(["piece", "source"]).cumcount().astype(np.int32)
    return write_table(table, pieces, opts, out_dir, command, extra)


def write_table(
    table: pd.DataFrame,
    pieces: Sequence[Piece],
    opts: BuildOptions,
    out_dir: Path,
    command: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out_dir = Path(out_dir)
    table = table.sort_values(["piece", "source", "segment"], kind="stable").reset_index(drop=True)
    parquet = out_dir / "features.parquet"
    atomic_write(
        parquet,
        lambda tmp: table.to_parquet(tmp, index=False, compression="zstd", compression_level=19),
    )
    write_pieces(pieces, out_dir / "pieces.csv")
    features = [c for c in table.columns if c not in META_COLUMNS]
    manifest = {
        "format": PACK_FORMAT,
        "feature_schema": opts.config.schema_id,
        "feature_config": opts.config.model_dump(),
        "feature_fingerprint": opts.config.fingerprint(),
        "n_features": len(features),
        "rows": len(table),
        "pieces": int(table["piece"].nunique()),
        "works": int(table["work"].nunique()),
        "composers": int(table["composer"].nunique()),
        "rows_per_composer": {k: int(n) for k, n in table["composer"].value_counts().items()},
        "rows_per_source": {k: int(n) for k, n in table["source"].value_counts().items()},
        "variants": [asdict(v) for v in opts.variants],
        "base_seed": opts.base_seed,
        "chunks_per_piece_variant": opts.chunks,
        "chunk_seconds": CHUNK_SECONDS,
        "licence": LICENCE,
        "attribution": ATTRIBUTION,
        "build_command": command,
        "parquet_sha256": sha256(parquet),
        "parquet_bytes": parquet.stat().st_size,
        **(extra or {}),
    }
    atomic_write(
        out_dir / "manifest.json",
        lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n"),
    )
    return manifest
