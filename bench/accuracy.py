#!/usr/bin/env python
"""Recognition on data the model never saw, side by side in one run.

For each model variant (feature block x training data) and each split seed, the main job's
own training function (``core.train.train``: candidates on grouped CV, winner refit) is run on
the same split by work, then scored per recording on

(a) the held-out demo works (30 s clips, the demo's soundfont), and
(b) the shifted set: the same held-out works rendered with a soundfont used nowhere in
    training (TimGM6mb), humanised (tempo drift, onset jitter, velocity changes)
    (``data/shifted``, built by ``composer-id build-shifted``).

Variants: the spectral block alone (the features of schema v3, today's champion) and
spectral + note features (schema v4), each trained on the demo corpus alone and on the demo
corpus plus the repertoire pack. For every cell: accuracy and macro-F1 per recording, the
predicted-class distribution and its worst over-prediction (predicted share / true share; a
model that gives most clips to one composer shows up here whatever its accuracy). Confusion
matrices (PNG) and all figures (JSON) go to ``--out``.

    python bench/accuracy.py                        # seeds 42, 43, 44
    python bench/accuracy.py --seeds 42 --variants v4-pack
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from core import metrics, pipeline
from core.config import REPO_ROOT, Settings
from core.datasets.pack import load_pack, load_shifted
from core.features import feature_names, spectral_feature_names
from core.train import DEFAULT_CANDIDATES, evaluate_rows, train

VARIANTS = {
    "v3-demo": ("spectral", False),
    "v3-pack": ("spectral", True),
    "v4-demo": ("spectral+notes", False),
    "v4-pack": ("spectral+notes", True),
}
console = Console(width=150)


@dataclass
class Cell:
    variant: str
    seed: int
    evaluation: str  # "held-out demo works" / "shifted held-out works"
    candidate: str
    composers: int
    recordings: int
    accuracy: float
    macro_f1: float
    worst_overprediction: float  # max over composers of predicted share / true share
    worst_composer: str
    distribution: dict[str, int]  # predicted composer -> recordings
    train_seconds: float
    ece_raw: float = float("nan")  # expected calibration error of the mean of segments
    ece: float = float("nan")  # ... after the model's temperature (what users see)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    warnings.filterwarnings("ignore")
    settings = Settings()
    config = settings.features
    args.out.mkdir(parents=True, exist_ok=True)

    console.print("featurizing the demo corpus (cached after the first run) ...")
    manifest = pipeline.load_manifest(settings, "demo")
    table = pipeline.featurize(settings, manifest, config).table
    pack = load_pack(settings.pack_dir, config)
    shifted = load_shifted(args.shifted, config)
    console.print(
        f"demo {table['recording_id'].nunique()} recordings / {len(table)} segments; "
        f"pack {len(pack)} segments; shifted {shifted['recording_id'].nunique()} recordings"
    )

    cells: list[Cell] = []
    for seed in args.seeds:
        for name in args.variants:
            cells += _run_variant(name, seed, settings, table, manifest, pack, shifted, args)
    _print(cells, args.seeds)
    payload = {
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "candidates": list(args.candidates),
        "cells": [asdict(c) for c in cells],
    }
    (args.out / "accuracy.json").write_text(json.dumps(payload, indent=2))
    console.print(f"figures and confusion matrices: {args.out}")
    return 0


def _run_variant(
    name: str,
    seed: int,
    settings: Settings,
    table: pd.DataFrame,
    manifest: pd.DataFrame,
    pack: pd.DataFrame,
    shifted: pd.DataFrame,
    args: argparse.Namespace,
) -> list[Cell]:
    block, with_pack = VARIANTS[name]
    config = settings.features
    names = spectral_feature_names(config) if block == "spectral" else feature_names(config)
    seeded = settings.model_copy(update={"seed": seed, "use_pack": with_pack})
    training = pipeline.training_data(seeded, "demo", table, manifest, config, names)
    started = time.perf_counter()
    result = train(
        training.table,
        training.split,
        config,
        names,
        candidates=args.candidates,
        cv_folds=settings.cv_folds,
        seed=seed,
    )
    seconds = time.perf_counter() - started
    model = result.model
    known = set(model.labels)
    held_out = result.test_predictions
    shifted_rows = shifted[
        shifted["recording_id"].isin(training.test_ids) & shifted["composer"].isin(known)
    ]
    shifted_metrics, shifted_predictions, _ = evaluate_rows(model, shifted_rows)
    cells = []
    for evaluation, predictions, figures in (
        ("held-out demo works", held_out, result.metrics),
        ("shifted held-out works", shifted_predictions, shifted_metrics),
    ):
        tag = f"{name}-seed{seed}-{evaluation.split()[0]}"
        metrics.plot_confusion(
            predictions["composer"],
            predictions["predicted"],
            args.out / f"confusion-{tag}.png",
            f"{name} ({model.candidate}), seed {seed}: {evaluation}",
        )
        cell = _cell(name, seed, evaluation, model, predictions, seconds)
        cells.append(replace(cell, ece_raw=figures["ece_raw"], ece=figures["ece"]))
    console.print(
        f"  {name} seed {seed}: {model.candidate}, "
        + ", ".join(f"{c.evaluation} {c.accuracy:.3f}" for c in cells)
        + f" ({seconds:.0f} s)"
    )
    return cells


def _cell(name, seed, evaluation, model, predictions: pd.DataFrame, seconds: float) -> Cell:
    truth, predicted = predictions["composer"], predictions["predicted"]
    scores = metrics.scores(truth, predicted)
    true_share = truth.value_counts(normalize=True)
    predicted_share = predicted.value_counts(normalize=True)
    ratio = (predicted_share / true_share.reindex(predicted_share.index)).replace(np.inf, np.nan)
    # A composer predicted but absent from the truth counts as over-predicted by its count.
    ratio = ratio.fillna(predicted_share * len(truth))
    worst = ratio.idxmax()
    return Cell(
        variant=name,
        seed=seed,
        evaluation=evaluation,
        candidate=model.candidate,
        composers=len(model.labels),
        recordings=int(scores["n"]),
        accuracy=scores["accuracy"],
        macro_f1=scores["macro_f1"],
        worst_overprediction=float(ratio.max()),
        worst_composer=str(worst),
        distribution={str(k): int(v) for k, v in predicted.value_counts().items()},
        train_seconds=seconds,
    )


def _print(cells: list[Cell], seeds: list[int]) -> None:
    frame = pd.DataFrame([asdict(c) for c in cells])
    summary = Table(title=f"Per recording, mean over seeds {seeds} (min-max)")
    for column in (
        "variant",
        "evaluated on",
        "recordings",
        "accuracy",
        "macro-F1",
        "worst over-pred.",
        "ECE raw -> calibrated",
    ):
        summary.add_column(column)
    for (variant, evaluation), group in frame.groupby(["variant", "evaluation"], sort=False):
        summary.add_row(
            variant,
            evaluation,
            str(int(group["recordings"].mean())),
            _spread(group["accuracy"]),
            _spread(group["macro_f1"]),
            f"{group['worst_overprediction'].max():.1f}x ({group['worst_composer'].iloc[0]})",
            f"{group['ece_raw'].mean():.3f} -> {group['ece'].mean():.3f}",
        )
    console.print(summary)
    for cell in cells:
        top = sorted(cell.distribution.items(), key=lambda kv: -kv[1])[:6]
        console.print(
            f"{cell.variant:8} seed {cell.seed} {cell.evaluation:24} {cell.candidate:20} "
            "predicted: " + ", ".join(f"{k} {v}" for k, v in top)
        )


def _spread(values: pd.Series) -> str:
    if len(values) == 1:
        return f"{values.iloc[0]:.3f}"
    return f"{values.mean():.3f} ({values.min():.3f}-{values.max():.3f})"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=_ints, default=[42, 43, 44], help="Split seeds.")
    parser.add_argument(
        "--variants",
        type=lambda v: v.split(","),
        default=list(VARIANTS),
        help=f"Comma-separated, from {', '.join(VARIANTS)}.",
    )
    parser.add_argument(
        "--candidates",
        type=lambda v: tuple(v.split(",")),
        default=DEFAULT_CANDIDATES,
        help="Candidates compared on grouped CV (the main job's default).",
    )
    parser.add_argument("--shifted", type=Path, default=REPO_ROOT / "data" / "shifted")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "accuracy")
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    return args


def _ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",")]


if __name__ == "__main__":
    sys.exit(main())
