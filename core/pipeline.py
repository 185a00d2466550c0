"""The main job, step by step: manifest -> features -> split -> train -> log -> register ->
gate -> promote. The CLI, the DAGs and ``make run`` call these same functions."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core import registry
from core.config import FeatureConfig, Settings
from core.datasets import demo, musicnet, split
from core.features import feature_names
from core.featurize import FeaturizeReport, featurize_manifest
from core.model import ComposerModel
from core.train import (
    DEFAULT_CANDIDATES,
    PRIMARY_METRIC,
    CandidateScore,
    TrainResult,
    evaluate_rows,
    train,
)

DATASETS = ("demo", "musicnet")
Progress = Callable[[int, int], None]


@dataclass
class PipelineResult:
    dataset: str
    featurized: FeaturizeReport
    trained: TrainResult
    run_id: str
    version: str
    promotion: registry.Promotion


def load_manifest(
    settings: Settings,
    dataset: str = "demo",
    ensemble: str | None = "Solo Piano",
    min_recordings: int = 1,
) -> pd.DataFrame:
    if dataset == "demo":
        return demo.load_manifest(settings.demo_dir)
    if dataset == "musicnet":
        return musicnet.load_manifest(
            Path(settings.musicnet_dir),
            ensemble=ensemble,
            min_recordings=min_recordings,
        )
    raise ValueError(f"Unknown dataset '{dataset}'; choose one of {DATASETS}.")


def featurize(
    settings: Settings,
    manifest: pd.DataFrame,
    config: FeatureConfig | None = None,
    progress: Progress | None = None,
) -> FeaturizeReport:
    return featurize_manifest(
        manifest,
        config or settings.features,
        settings.audio,
        settings.feature_cache_dir,
        workers=settings.n_workers,
        progress=progress,
    )


def split_recordings(settings: Settings, manifest: pd.DataFrame) -> pd.Series:
    """recording_id -> "train"/"test", grouped by work, checked for leaks."""
    sides = split.grouped_split(manifest, settings.test_fraction, settings.seed)
    split.assert_no_work_leak(manifest, sides)
    return pd.Series(sides.to_numpy(), index=manifest["recording_id"].to_numpy())


def run(
    settings: Settings,
    dataset: str = "demo",
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    manifest: pd.DataFrame | None = None,
    progress: Progress | None = None,
    on_candidate: Callable[[CandidateScore], None] | None = None,
    ensemble: str | None = "Solo Piano",
    min_recordings: int = 1,
) -> PipelineResult:
    """Featurize, train, log, register and (behind the gate) promote."""
    if manifest is None:
        manifest = load_manifest(settings, dataset, ensemble, min_recordings)
    config = settings.features
    featurized = featurize(settings, manifest, config, progress)
    if featurized.table.empty:
        raise RuntimeError(f"No recording could be featurized: {featurized.failed}")
    kept = manifest[manifest["recording_id"].isin(featurized.table["recording_id"])]
    sides = split_recordings(settings, kept)
    client = registry.connect(settings)
    with tempfile.TemporaryDirectory() as plots:
        trained = train(
            featurized.table,
            sides,
            config,
            feature_names(config),
            candidates=candidates,
            cv_folds=settings.cv_folds,
            seed=settings.seed,
            plot_dir=Path(plots),
            on_candidate=on_candidate,
        )
        run_id, model_uri = registry.log_training(
            trained, settings, dataset, featurized.table, {"candidates": ",".join(candidates)}
        )
    version = registry.register(client, settings, model_uri, run_id)
    test_manifest = kept[kept["recording_id"].map(sides) == "test"]
    promotion = registry.promote_if_better(
        client,
        settings,
        version,
        trained.metrics[PRIMARY_METRIC],
        lambda champion: score_on(settings, champion, test_manifest)[PRIMARY_METRIC],
    )
    return PipelineResult(dataset, featurized, trained, run_id, version, promotion)


def score_on(settings: Settings, model: ComposerModel, manifest: pd.DataFrame) -> dict[str, float]:
    """Score a model on labelled recordings, featurized with the model's own configuration.
    Composers the model does not know count as errors (fair for the gate)."""
    rows = featurize(settings, manifest, model.feature_config).table
    held_out, _, _ = evaluate_rows(model, rows)
    return held_out
