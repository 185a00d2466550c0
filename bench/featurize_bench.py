#!/usr/bin/env python
"""Featurization benchmark: the seed's naive librosa extractor vs ``core.features``.

On the same demo clips, in one run:

(a) naive  - ``bench.naive_features.naive_extract`` (librosa.load + 118 features), one process;
(b) ours   - ``core.audio.load_audio`` + ``core.features.extract`` with one 30 s segment per
             clip, one process;
(c) ours   - ``core.featurize.featurize_manifest`` with a fresh temporary cache and
             ``--workers`` processes (wall clock, worker start-up included).

Timings include decoding. Each single-process extractor is warmed up once on the first clip
(numba JIT, filter banks) before the timed pass, with BLAS/OpenMP limited to one thread
so that "one process" means one core. Then the same model
(``RandomForestClassifier(n_estimators=300, class_weight='balanced_subsample')``) is
cross-validated on each feature set with the same 5 grouped folds (StratifiedGroupKFold:
groups = work, strata = composer, shuffled with ``--seed``); accuracy and macro-F1 are per
clip, pooled over the out-of-fold predictions.

Results are printed and written to ``bench/results/featurize.json`` (gitignored).

    python bench/featurize_bench.py                 # every demo clip
    python bench/featurize_bench.py --limit 24 --workers 2 --seed 42
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from core.audio import load_audio
from core.config import REPO_ROOT, AudioLimits, FeatureConfig
from core.datasets import demo
from core.features import extract, spectral_feature_names
from core.featurize import featurize_manifest

try:
    from bench.featurize_report import (
        Pass,
        corpus_facts,
        environment,
        footnote,
        load_text,
        print_header,
        results_table,
        summarize,
    )
    from bench.naive_features import NAIVE_NAMES, naive_extract
except ModuleNotFoundError:  # run as a script: bench/ itself is on sys.path
    from featurize_report import (  # type: ignore[no-redef]
        Pass,
        corpus_facts,
        environment,
        footnote,
        load_text,
        print_header,
        results_table,
        summarize,
    )
    from naive_features import NAIVE_NAMES, naive_extract

DEFAULT_DEMO_DIR = REPO_ROOT / "data" / "demo"
DEFAULT_OUT = REPO_ROOT / "bench" / "results" / "featurize.json"
N_FOLDS = 5
CLIP_SECONDS = 30.0

console = Console() if sys.stdout.isatty() else Console(width=120)  # logs: no wrapping


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Compare the seed's naive librosa extractor with core.features on the demo "
            "corpus: seconds per clip, realtime factor, and grouped-CV accuracy / macro-F1 "
            "of the same random forest on each feature set."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="use only N clips, chosen round-robin over composers (default: all demo clips)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="processes for the featurize_manifest pass"
    )
    parser.add_argument("--seed", type=int, default=42, help="CV shuffling and forest seed")
    parser.add_argument(
        "--demo-dir", type=Path, default=DEFAULT_DEMO_DIR, help="demo corpus directory"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < N_FOLDS:
        parser.error(f"--limit must be at least {N_FOLDS} (one clip per fold)")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def load_clips(demo_dir: Path) -> tuple[pd.DataFrame, bool]:
    """The demo manifest, or (while the corpus is still being rendered) one built from the
    files present: composer = folder name, work = file stem. Returns (manifest, partial)."""
    if (demo_dir / "manifest.csv").is_file():
        return demo.load_manifest(demo_dir), False
    files = sorted((demo_dir / "audio").glob("*/*.ogg"))
    if not files:
        raise SystemExit(f"No manifest and no clips under {demo_dir / 'audio'}.")
    manifest = pd.DataFrame(
        {
            "recording_id": [f"{f.parent.name}/{f.stem}" for f in files],
            "path": [str(f.resolve()) for f in files],
            "composer": [f.parent.name for f in files],
            "work": [f.stem for f in files],
            "title": [f.stem for f in files],
        }
    )
    return manifest, True


def choose(manifest: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """All clips, or ``limit`` of them taken round-robin over composers (seeded order)."""
    manifest = manifest.sort_values("recording_id", kind="stable").reset_index(drop=True)
    if limit is None or limit >= len(manifest):
        return manifest
    rng = np.random.default_rng(seed)
    queues = {
        composer: list(rng.permutation(group.index.to_numpy()))
        for composer, group in manifest.groupby("composer", sort=True)
    }
    picked: list[int] = []
    while len(picked) < limit:
        for queue in queues.values():
            if queue and len(picked) < limit:
                picked.append(int(queue.pop(0)))
    return manifest.loc[sorted(picked)].reset_index(drop=True)


def run_naive(manifest: pd.DataFrame) -> Pass:
    naive_extract(manifest.path.iloc[0])  # warm-up (numba JIT, librosa caches), not timed
    rows, times = [], []
    columns = (
        TextColumn("[bold]naive[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    cpu = 0.0
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("", total=len(manifest))
        for path, rid in zip(manifest.path, manifest.recording_id, strict=True):
            progress.update(task, description=str(rid))
            start, cpu_start = time.perf_counter(), time.process_time()
            rows.append(naive_extract(path))
            times.append(time.perf_counter() - start)
            cpu += time.process_time() - cpu_start
            progress.advance(task)
    return Pass("naive seed (1 process)", np.vstack(rows), float(sum(times)), 1, cpu, times)


def run_ours(manifest: pd.DataFrame, config: FeatureConfig, limits: AudioLimits) -> Pass:
    size = round(config.segment_seconds * config.sample_rate)

    def one(path: str) -> np.ndarray:
        audio = load_audio(path, config.sample_rate, limits)
        return extract(audio.samples[:size], config)

    one(manifest.path.iloc[0])  # warm-up, not timed
    rows, times, cpu = [], [], 0.0
    with console.status("[bold]ours[/] load_audio + extract, 1 process"):
        for path in manifest.path:
            start, cpu_start = time.perf_counter(), time.process_time()
            rows.append(one(path))
            times.append(time.perf_counter() - start)
            cpu += time.process_time() - cpu_start
    label = "ours load+extract (1 process)"
    return Pass(label, np.vstack(rows), float(sum(times)), 1, cpu, times)


def run_manifest(
    manifest: pd.DataFrame, config: FeatureConfig, limits: AudioLimits, workers: int
) -> tuple[Pass, dict[str, str]]:
    names = spectral_feature_names(config)
    with (
        tempfile.TemporaryDirectory(prefix="featurize-bench-") as cache,
        console.status(f"[bold]ours[/] featurize_manifest, {workers} workers, cold cache"),
    ):
        start, cpu_start = time.perf_counter(), time.process_time()
        report = featurize_manifest(manifest, config, limits, Path(cache), workers=workers)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        workers_cpu = _children_cpu_seconds()  # fresh workers: their whole life is this run
    first = report.table[report.table.segment == 0].set_index("recording_id")
    matrix = np.full((len(manifest), len(names)), np.nan, dtype=np.float32)
    for i, rid in enumerate(manifest.recording_id):
        if rid in first.index:
            matrix[i] = first.loc[rid, names].to_numpy(dtype=np.float32)
    label = f"ours featurize_manifest ({workers} workers)"
    total_cpu = cpu + workers_cpu if workers_cpu is not None else None
    return Pass(label, matrix, wall, workers, total_cpu), report.failed


def _children_cpu_seconds() -> float | None:
    """CPU seconds of the live worker processes (psutil, when installed)."""
    try:
        import psutil
    except ImportError:
        return None
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def cross_validate(
    features: np.ndarray, composers: np.ndarray, works: np.ndarray, seed: int
) -> dict[str, float | list[float]]:
    """Pooled out-of-fold per-clip accuracy and macro-F1, plus per-fold accuracy."""
    folds = StratifiedGroupKFold(n_splits=N_FOLDS, shuffle=True, random_state=seed)
    predicted = np.empty_like(composers)
    fold_accuracy = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # classes with fewer works than folds
        splits = list(folds.split(features, composers, groups=works))
    for train, test in splits:
        model = RandomForestClassifier(
            n_estimators=300,
            random_state=seed,
            class_weight="balanced_subsample",
            n_jobs=-1,
        )
        model.fit(features[train], composers[train])
        predicted[test] = model.predict(features[test])
        fold_accuracy.append(float(accuracy_score(composers[test], predicted[test])))
    return {
        "accuracy": float(accuracy_score(composers, predicted)),
        "macro_f1": float(f1_score(composers, predicted, average="macro", zero_division=0)),
        "fold_accuracy": fold_accuracy,
    }


def evaluate(
    passes: list[Pass], manifest: pd.DataFrame, audio_seconds: float, seed: int
) -> tuple[list[dict], bool]:
    """Summary row per pass, cross-validated when the corpus allows (the parallel pass has
    the single-process vectors, so it shares their scores)."""
    composers = manifest.composer.to_numpy()
    works = manifest.work.to_numpy()
    can_cv = manifest.composer.value_counts().max() >= N_FOLDS and len(set(works)) >= N_FOLDS
    if not can_cv:
        console.print(
            f"[yellow]Too few clips for {N_FOLDS}-fold CV (need a composer with {N_FOLDS}+ "
            f"clips and {N_FOLDS}+ works); timings only.[/]"
        )
    naive, _ours, parallel = passes
    results = []
    for p in passes:
        row = summarize(p, len(manifest), audio_seconds, naive.seconds)
        row["cv"] = None
        if can_cv and p is not parallel:  # parallel = same vectors as ours (see parity)
            with console.status(f"cross-validating the forest on {p.label} features"):
                features = p.features.astype(np.float64)
                row["cv"] = cross_validate(features, composers, works, seed)
        results.append(row)
    results[2]["cv"] = results[1]["cv"]
    return results, can_cv


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    manifest, partial = load_clips(args.demo_dir)
    manifest = choose(manifest, args.limit, args.seed)
    config = FeatureConfig(segment_seconds=CLIP_SECONDS, hop_seconds=CLIP_SECONDS)
    limits = AudioLimits()
    names = spectral_feature_names(config)
    if names != NAIVE_NAMES:
        raise SystemExit("bench.naive_features.NAIVE_NAMES no longer matches core.features.")
    load_before = print_header(console, command, manifest, args.demo_dir, partial)

    durations = [
        min(librosa.get_duration(path=p), CLIP_SECONDS) for p in manifest.path
    ]  # what each extractor analyses (both read at most 30 s)
    audio_seconds = float(sum(durations))

    # One core for the single-process passes: otherwise idle BLAS threads spin and bill CPU
    # time without saving wall time (loky already gives each worker one thread).
    with threadpool_limits(limits=1):
        naive = run_naive(manifest)
        ours = run_ours(manifest, config, limits)
    parallel, failed = run_manifest(manifest, config, limits, args.workers)
    if failed:
        console.print(f"[red]featurize_manifest failed on {len(failed)} clips:[/] {failed}")
    ok = ~np.isnan(parallel.features).any(axis=1)
    parity = float(np.max(np.abs(parallel.features[ok] - ours.features[ok]))) if ok.any() else None

    results, can_cv = evaluate([naive, ours, parallel], manifest, audio_seconds, args.seed)
    title = (
        f"{len(manifest)} clips x {CLIP_SECONDS:g} s, decode included; "
        f"{N_FOLDS}-fold grouped CV by work (seed {args.seed})"
    )
    load_after = os.getloadavg()
    console.print(results_table(results, title, can_cv))
    console.print("load average (1/5/15 min) at end: " + load_text(load_after))
    console.print(footnote(parity))

    payload = {
        "command": command,
        **environment(),
        "load_average_start": load_before,
        "load_average_end": load_after,
        "seed": args.seed,
        "workers": args.workers,
        "partial_corpus": partial,
        **corpus_facts(manifest),
        "audio_seconds": audio_seconds,
        "feature_config": config.model_dump(),
        "n_features": len(names),
        "model": "RandomForestClassifier(n_estimators=300, class_weight='balanced_subsample')",
        "cv": f"StratifiedGroupKFold(n_splits={N_FOLDS}, shuffle=True), groups=work",
        "parallel_vs_single_max_abs_diff": parity,
        "failed": failed,
        "passes": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    console.print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
