"""The main job, step by step: manifest -> features -> split -> train -> log -> register ->
gate -> promote. ``run`` chains the steps in one process (CLI, ``make run``); the Airflow DAGs
call the same steps as separate tasks, passing only small values (ids, paths, scores)."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from core import registry, training_set
from core.config import FeatureConfig, Settings
from core.datasets import demo, folder, musicnet
from core.features import feature_names
from core.featurize import FeaturizeReport, featurize_manifest
from core.fileio import atomic_write
from core.model import ComposerModel
from core.registry import Promotion
from core.train import (
    DEFAULT_CANDIDATES,
    PRIMARY_METRIC,
    CandidateScore,
    TrainResult,
    evaluate_rows,
    train,
)
from core.training_set import TrainingSet
from core.work_index import WorkIndex

DATASETS = ("demo", "musicnet")
FOLDER_PREFIX = "folder:"  # folder:PATH -- a user's labelled collection (core.datasets.folder)
DATASET_PATTERN = r"^(demo|musicnet|folder:.+)$"
DATASET_HELP = (
    "demo (shipped), musicnet (downloaded) or folder:PATH, your own labelled recordings: a CSV "
    "of file,composer[,work] with paths relative to it (or a folder holding labels.csv)."
)
Progress = Callable[[int, int], None]


@dataclass
class Trained:
    """What a training step hands to the next ones (small enough for an Airflow XCom)."""

    run_id: str
    model_uri: str
    candidate: str
    score: float
    metrics: dict[str, float]
    test_ids: list[str]
    pack_rows: int = 0  # repertoire-pack segments trained on
    left_out: dict[str, int] = field(default_factory=dict)  # composer -> its training works


@dataclass
class PipelineResult:
    dataset: str
    featurized: FeaturizeReport
    trained: TrainResult
    run_id: str
    version: str
    promotion: registry.Promotion
    pack_rows: int = 0
    left_out: dict[str, int] = field(default_factory=dict)


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
    if dataset.startswith(FOLDER_PREFIX):
        path = dataset.removeprefix(FOLDER_PREFIX)
        return folder.checked(path, settings.min_works_per_composer).manifest
    raise ValueError(
        f"Unknown dataset '{dataset}'; choose one of {', '.join(DATASETS)} or "
        f"{FOLDER_PREFIX}PATH (a CSV of file,composer[,work])."
    )


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
    return training_set.primary_split(manifest, settings.test_fraction, settings.seed)


def training_data(
    settings: Settings,
    dataset: str,
    table: pd.DataFrame,
    manifest: pd.DataFrame,
    config: FeatureConfig,
    names: Sequence[str] | None = None,
) -> TrainingSet:
    """The dataset's featurized recordings plus, if enabled, the repertoire pack, split by
    work across both (the one place the split is made)."""
    names = list(names or feature_names(config))
    pack = None
    if settings.use_pack:
        from core.datasets.pack import load_pack

        pack = load_pack(settings.pack_dir, config)
    return training_set.build(
        table,
        manifest,
        names,
        pack,
        test_fraction=settings.test_fraction,
        seed=settings.seed,
        min_works=settings.min_works_per_composer,
        primary_source=dataset,
    )


# --- the feature table on disk: what the featurize DAG produces and the train DAG reads ---


def table_path(settings: Settings, dataset: str) -> Path:
    """``folder:PATH`` datasets get a file name from their path (no separators in it)."""
    if dataset.startswith(FOLDER_PREFIX):
        digest = hashlib.sha256(dataset.encode()).hexdigest()[:12]
        dataset = f"folder-{digest}"
    return settings.home / "tables" / f"{dataset}.parquet"


def save_table(
    settings: Settings,
    dataset: str,
    table: pd.DataFrame,
    manifest: pd.DataFrame,
    config: FeatureConfig,
) -> Path:
    """Write table, manifest and config side by side, each atomically, table last: a reader
    that finds the table finds the matching config and manifest."""
    target = table_path(settings, dataset)
    target.parent.mkdir(parents=True, exist_ok=True)
    kept = manifest[manifest["recording_id"].isin(table["recording_id"])]
    atomic_write(target.with_suffix(".manifest.parquet"), lambda p: kept.to_parquet(p, index=False))
    meta = {"dataset": dataset, "feature_config": config.model_dump(), "rows": len(table)}
    atomic_write(target.with_suffix(".json"), lambda p: Path(p).write_text(json.dumps(meta)))
    atomic_write(target, lambda p: table.to_parquet(p, index=False))
    return target


def load_table(
    settings: Settings, dataset: str
) -> tuple[pd.DataFrame, pd.DataFrame, FeatureConfig]:
    target = table_path(settings, dataset)
    if not target.exists():
        raise FileNotFoundError(
            f"No feature table for '{dataset}' at {target}: run the featurize DAG or "
            f"`composer-id featurize --dataset {dataset}` first."
        )
    meta = json.loads(target.with_suffix(".json").read_text())
    manifest = pd.read_parquet(target.with_suffix(".manifest.parquet"))
    return pd.read_parquet(target), manifest, FeatureConfig(**meta["feature_config"])


# --- sharded featurization, for orchestrators that fan out over workers ---


def plan_shards(manifest: pd.DataFrame, n_shards: int) -> list[list[str]]:
    """Recording ids in ``n_shards`` interleaved groups (interleaving spreads long and short
    recordings and composers evenly)."""
    ids = sorted(manifest["recording_id"].astype(str))
    n_shards = max(1, min(n_shards, len(ids)))
    return [ids[i::n_shards] for i in range(n_shards)]


def featurize_shard(
    settings: Settings,
    dataset: str,
    manifest: pd.DataFrame,
    ids: Sequence[str],
    config: FeatureConfig,
) -> dict:
    """Featurize one shard into its own Parquet file (named by its content, written
    atomically: a retried task overwrites its own output and reuses the feature cache)."""
    rows = manifest[manifest["recording_id"].isin(ids)]
    report = featurize_manifest(rows, config, settings.audio, settings.feature_cache_dir, workers=1)
    digest = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:12]
    target = settings.home / "shards" / f"{dataset}-{config.fingerprint()}" / f"{digest}.parquet"
    atomic_write(target, lambda tmp: report.table.to_parquet(tmp, index=False))
    return {
        "path": str(target),
        "rows": len(report.table),
        "computed": report.computed,
        "cached": report.cached,
        "failed": report.failed,
    }


def assemble(
    settings: Settings,
    dataset: str,
    manifest: pd.DataFrame,
    shard_paths: Sequence[str],
    config: FeatureConfig,
) -> Path:
    """Concatenate shard tables into the dataset's feature table (replacing the old one)."""
    frames = [pd.read_parquet(path) for path in shard_paths]
    table = pd.concat(frames, ignore_index=True).sort_values(
        ["recording_id", "segment"], kind="stable"
    )
    if table.empty:
        raise RuntimeError(f"No recording of '{dataset}' could be featurized.")
    return save_table(settings, dataset, table.reset_index(drop=True), manifest, config)


# --- the steps ---


def train_and_log(
    settings: Settings,
    dataset: str,
    table: pd.DataFrame,
    manifest: pd.DataFrame,
    config: FeatureConfig,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    on_candidate: Callable[[CandidateScore], None] | None = None,
) -> tuple[Trained, TrainResult]:
    """Split by work (the pack included), select on grouped CV, evaluate on held-out works,
    log one MLflow run."""
    training = training_data(settings, dataset, table, manifest, config)
    registry.connect(settings)
    with tempfile.TemporaryDirectory() as plots:
        result = train(
            training.table,
            training.split,
            config,
            feature_names(config),
            candidates=candidates,
            cv_folds=settings.cv_folds,
            seed=settings.seed,
            plot_dir=Path(plots),
            on_candidate=on_candidate,
            work_index=WorkIndex.load(settings.works_dir) if settings.works_dir else None,
        )
        params = {
            "candidates": ",".join(candidates),
            "pack_rows": training.pack_rows,
            "min_works_per_composer": settings.min_works_per_composer,
            "left_out_composers": ",".join(sorted(training.dropped_composers)) or "none",
        }
        run_id, model_uri = registry.log_training(result, settings, dataset, training.table, params)
    test_ids = sorted(result.split.loc[result.split["split"] == "test", "recording_id"])
    trained = Trained(
        run_id=run_id,
        model_uri=model_uri,
        candidate=result.model.candidate,
        score=float(result.metrics[PRIMARY_METRIC]),
        metrics={k: float(v) for k, v in result.metrics.items()},
        test_ids=test_ids,
        pack_rows=training.pack_rows,
        left_out=training.dropped_composers,
    )
    return trained, result


def register(settings: Settings, trained: Trained) -> str:
    return registry.register(
        registry.connect(settings), settings, trained.model_uri, trained.run_id
    )


def decide(
    settings: Settings, version: str, score: float, test_manifest: pd.DataFrame
) -> registry.Promotion:
    """The gate's verdict, comparing against the champion on the same held-out recordings."""
    client = registry.connect(settings)
    return registry.decide(
        client,
        settings,
        version,
        score,
        lambda champion: score_on(settings, champion, test_manifest)[PRIMARY_METRIC],
    )


def record_decision(settings: Settings, decision: registry.Promotion) -> None:
    registry.record_decision(registry.connect(settings), settings, decision)


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
    """Every step in one process: featurize, train, log, register, gate, promote."""
    if manifest is None:
        manifest = load_manifest(settings, dataset, ensemble, min_recordings)
    config = settings.features
    featurized = featurize(settings, manifest, config, progress)
    if featurized.table.empty:
        raise RuntimeError(f"No recording could be featurized: {featurized.failed}")
    kept = manifest[manifest["recording_id"].isin(featurized.table["recording_id"])]
    trained, result = train_and_log(
        settings, dataset, featurized.table, kept, config, candidates, on_candidate
    )
    version = register(settings, trained)
    decision = decide(
        settings, version, trained.score, kept[kept["recording_id"].isin(trained.test_ids)]
    )
    record_decision(settings, decision)
    return PipelineResult(
        dataset,
        featurized,
        result,
        trained.run_id,
        version,
        decision,
        trained.pack_rows,
        trained.left_out,
    )


def score_on(settings: Settings, model: ComposerModel, manifest: pd.DataFrame) -> dict[str, float]:
    """Score a model on labelled recordings, featurized with the model's own configuration.
    Composers the model does not know count as errors (fair for the gate)."""
    rows = featurize(settings, manifest, model.feature_config).table
    held_out, _, _ = evaluate_rows(model, rows)
    return held_out


def promotion_dict(decision: Promotion) -> dict:
    return asdict(decision)
