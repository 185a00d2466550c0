"""The featurization benchmark's report: per-pass summary rows, the printed table and the
JSON payload (``bench/featurize_bench.py`` runs the passes)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import sklearn
from rich.console import Console
from rich.table import Table


@dataclass
class Pass:
    """One feature set: per-clip matrix (rows in manifest order) and its timings."""

    label: str
    features: np.ndarray
    seconds: float  # wall: sum of per-clip times, or the whole parallel run
    processes: int
    cpu_seconds: float | None  # user+system CPU of every process involved
    per_clip: list[float] | None = None


def summarize(p: Pass, n_clips: int, audio_seconds: float, naive_seconds: float) -> dict:
    per_clip = p.seconds / n_clips
    return {
        "label": p.label,
        "processes": p.processes,
        "total_seconds": p.seconds,
        "seconds_per_clip": per_clip,
        "median_seconds_per_clip": float(np.median(p.per_clip)) if p.per_clip else None,
        "cpu_seconds_per_clip": p.cpu_seconds / n_clips if p.cpu_seconds is not None else None,
        "speedup_vs_naive": naive_seconds / p.seconds,
        # audio seconds analysed per wall second of one process
        "realtime_factor_per_core": audio_seconds / (p.seconds * p.processes),
        "realtime_factor_per_cpu_second": (
            audio_seconds / p.cpu_seconds if p.cpu_seconds else None
        ),
    }


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def load_text(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def print_header(
    console: Console, command: str, manifest: pd.DataFrame, demo_dir: Path, partial: bool
) -> tuple[float, float, float]:
    """What ran where; returns the load average at the start."""
    console.rule("composer-id featurization benchmark")
    console.print(f"command:   {command}")
    console.print(
        f"python {platform.python_version()}  librosa {librosa.__version__}  "
        f"numpy {np.__version__}  scikit-learn {sklearn.__version__}  "
        f"CPUs {os.cpu_count()}  ({platform.platform()})"
    )
    load_before = os.getloadavg()
    console.print("load average (1/5/15 min) at start: " + load_text(load_before))
    console.print(
        f"clips:     {len(manifest)} from {manifest.composer.nunique()} composers, "
        f"{manifest.work.nunique()} works ({demo_dir})"
        + (
            "  [yellow]PARTIAL: no manifest.csv yet, built from the files present[/]"
            if partial
            else ""
        )
    )
    return load_before


def results_table(results: list[dict], title: str, with_cv: bool) -> Table:
    """One column per pass: timings, and the cross-validated scores when there are any."""
    table = Table(title=title)
    table.add_column("")
    for row in results:
        table.add_column(row["label"], justify="right")
    table.add_row("seconds / clip (wall)", *[f"{r['seconds_per_clip']:.3f}" for r in results])
    table.add_row(
        "median s / clip (wall)", *[fmt(r["median_seconds_per_clip"], ".3f") for r in results]
    )
    table.add_row("CPU s / clip", *[fmt(r["cpu_seconds_per_clip"], ".3f") for r in results])
    table.add_row("speed ratio naive/ours", *[f"{r['speedup_vs_naive']:.1f}x" for r in results])
    table.add_row(
        "realtime factor per core", *[f"{r['realtime_factor_per_core']:.0f}x" for r in results]
    )
    table.add_row(
        "audio s per CPU s",
        *[fmt(r["realtime_factor_per_cpu_second"], ".0f", "x") for r in results],
    )
    if with_cv:
        cvs = [r["cv"] for r in results]
        table.add_row("CV accuracy (per clip)", *[f"{cv['accuracy']:.3f}" for cv in cvs])
        table.add_row("CV macro-F1 (per clip)", *[f"{cv['macro_f1']:.3f}" for cv in cvs])
        table.add_row(
            "fold accuracy mean ± sd",
            *[
                f"{np.mean(cv['fold_accuracy']):.3f} ± {np.std(cv['fold_accuracy']):.3f}"
                for cv in cvs
            ],
        )
    return table


def environment() -> dict:
    """Versions and machine, for the JSON payload."""
    return {
        "python": platform.python_version(),
        "librosa": librosa.__version__,
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


def footnote(parity: float | None) -> str:
    return (
        "Realtime factor per core = audio seconds / (wall seconds x processes); CPU = user + "
        "system of every process (single-process passes: BLAS limited to 1 thread). The "
        "parallel column includes worker start-up and cache writes; its vectors equal the "
        f"single-process ones (max |diff| = {parity if parity is not None else 'n/a'}), so its "
        "CV is the same."
    )


def corpus_facts(manifest: pd.DataFrame) -> dict:
    """Which clips were measured, for the JSON payload."""
    return {
        "n_clips": len(manifest),
        "n_composers": int(manifest.composer.nunique()),
        "n_works": int(manifest.work.nunique()),
        "recording_ids": manifest.recording_id.tolist(),
    }
