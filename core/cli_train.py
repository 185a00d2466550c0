"""`composer-id featurize`, `train`, `promote` and `evaluate`: the training side."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from core.cli_common import (
    DatasetOption,
    EnsembleOption,
    JsonOption,
    MinRecordingsOption,
    ModelOption,
    console,
    ensemble_filter,
    fail,
    load_settings,
    out,
    progress,
    require_tracking,
)
from core.config import Settings


def register(app: typer.Typer) -> None:
    """Add the training commands to the CLI."""
    for command in (featurize, train, promote, evaluate):
        app.command()(command)


def _candidates(value: str | None) -> tuple[str, ...] | None:
    """A comma-separated list of known candidates, checked before anything is featurized."""
    if value is None:
        return None
    from core.train import CANDIDATES

    chosen = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in chosen if name not in CANDIDATES]
    if not chosen or unknown:
        raise typer.BadParameter(
            f"unknown {', '.join(unknown) or 'empty list'}; choose from "
            f"{', '.join(sorted(CANDIDATES))}"
        )
    return chosen


def featurize(
    dataset: DatasetOption = "demo",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Parquet file for the table.")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Processes (0 = one per core).")] = None,
    ensemble: EnsembleOption = "Solo Piano",
    min_recordings: MinRecordingsOption = 1,
) -> None:
    """Compute the feature table (one row per segment); cached, so re-runs are fast."""
    settings = load_settings(workers=workers)
    from core import pipeline

    started = time.perf_counter()
    try:
        manifest = pipeline.load_manifest(
            settings, dataset, ensemble_filter(ensemble), min_recordings
        )
    except (ValueError, FileNotFoundError) as error:
        fail(error)
    with progress(f"featurizing {dataset}") as tick:
        report = pipeline.featurize(settings, manifest, progress=tick)
    target = output or settings.home / f"features-{dataset}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    report.table.to_parquet(target, index=False)
    table = Table("recordings", "computed", "cached", "failed", "segments", "seconds")
    table.add_row(
        str(len(manifest)),
        str(report.computed),
        str(report.cached),
        str(len(report.failed)),
        str(len(report.table)),
        f"{time.perf_counter() - started:.1f}",
    )
    out.print(table)
    for rid, message in report.failed.items():
        console.print(f"[yellow]skipped[/] {rid}: {message}")
    console.print(f"feature table: [bold]{target}[/]")


def train(
    dataset: DatasetOption = "demo",
    candidates: Annotated[
        str | None,
        typer.Option(
            callback=_candidates,
            help="Comma-separated: random_forest, logistic_regression, gradient_boosting, "
            "svm_rbf, dummy (default: random_forest, logistic_regression).",
        ),
    ] = None,
    ensemble: EnsembleOption = "Solo Piano",
    min_recordings: MinRecordingsOption = 1,
    skip_if_champion: Annotated[
        bool, typer.Option(help="Do nothing if a champion already exists (used by make run).")
    ] = False,
) -> None:
    """The main job: featurize, compare candidates on grouped CV, evaluate on held-out works,
    log to MLflow, register, and promote to champion if it beats the current one."""
    settings = load_settings()
    require_tracking(settings)
    from core import pipeline, registry
    from core.train import DEFAULT_CANDIDATES

    chosen: tuple[str, ...] = candidates or DEFAULT_CANDIDATES  # type: ignore[assignment]
    try:
        client = registry.connect(settings)  # fails in seconds if the store is unreachable
        if skip_if_champion and (existing := registry.champion(client, settings)) is not None:
            out.print(
                f"{settings.model_name} v{existing.version} is already "
                f"{settings.champion_alias}; not retraining (`make train` retrains)."
            )
            return
    except registry.RegistryError as error:
        fail(error)
    started = time.perf_counter()
    cv_table = Table("candidate", "CV rec. macro-F1", "CV rec. acc.", "CV seg. acc.", "s")

    def on_candidate(score) -> None:
        cv_table.add_row(
            score.name,
            f"{score.recording_macro_f1:.3f}",
            f"{score.recording_accuracy:.3f}",
            f"{score.segment_accuracy:.3f}",
            f"{score.seconds:.1f}",
        )

    try:
        manifest = _checked_manifest(settings, dataset, ensemble, min_recordings)
        with _trainingprogress(dataset, chosen, on_candidate) as (tick, step):
            result = pipeline.run(
                settings,
                dataset,
                chosen,
                manifest=manifest,
                progress=tick,
                on_candidate=step,
                ensemble=ensemble_filter(ensemble),
                min_recordings=min_recordings,
            )
    except (ValueError, RuntimeError, FileNotFoundError) as error:
        fail(error)
    out.print(cv_table)
    out.print(_result_table(result, time.perf_counter() - started, settings))


@contextmanager
def _trainingprogress(dataset: str, candidates: tuple[str, ...], on_candidate):
    """Featurizing (counted), each candidate's grouped CV, then the final fit, MLflow logging
    and the gate: the line says which, so the long steps never look hung."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TimeElapsedColumn,
    )

    columns = (SpinnerColumn(), "{task.description}", BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
        features = bar.add_task(f"featurizing {dataset}", total=None)
        models = bar.add_task(f"cross-validating {candidates[0]}", total=len(candidates))
        finished: list[str] = []

        def step(score) -> None:
            on_candidate(score)
            finished.append(score.name)
            left = [name for name in candidates if name not in finished]
            bar.update(
                models,
                advance=1,
                description=f"cross-validating {left[0]}"
                if left
                else "best candidate: final fit, held-out works, MLflow, promotion gate",
            )

        yield (lambda done, total: bar.update(features, completed=done, total=total)), step


def _checked_manifest(settings: Settings, dataset: str, ensemble: str, min_recordings: int):
    """The dataset's manifest, checked before anything is featurized; a folder's notes
    (composers that will be left out) are printed now, not discovered after featurizing."""
    from core import pipeline
    from core.datasets import folder

    if dataset.startswith(pipeline.FOLDER_PREFIX):
        checked = folder.checked(
            dataset.removeprefix(pipeline.FOLDER_PREFIX), settings.min_works_per_composer
        )
        for note in checked.notes:
            console.print(f"[yellow]note[/] {note}")
        return checked.manifest
    return pipeline.load_manifest(settings, dataset, ensemble_filter(ensemble), min_recordings)


def _result_table(result, seconds: float, settings: Settings) -> Table:
    metrics = result.trained.metrics
    promotion = result.promotion
    table = Table(title="Held-out works", show_header=False)
    table.add_row("chosen model", result.trained.model.candidate)
    table.add_row("composers", str(len(result.trained.model.labels)))
    split = result.trained.split
    own = ~split["recording_id"].astype(str).str.startswith("pack:")
    table.add_row(
        "recordings train/test",
        f"{((split['split'] == 'train') & own).sum()}/{metrics['n_recordings']}",
    )
    table.add_row(
        "repertoire pack",
        f"{result.pack_rows} training segments" if result.pack_rows else "not used",
    )
    if result.left_out:
        table.add_row(
            "left out (too few works)", ", ".join(f"{c} ({n})" for c, n in result.left_out.items())
        )
    table.add_row("accuracy per recording", f"{metrics['recording_accuracy']:.3f}")
    table.add_row("macro-F1 per recording", f"{metrics['recording_macro_f1']:.3f}")
    table.add_row("accuracy per segment", f"{metrics['segment_accuracy']:.3f}")
    table.add_row("macro-F1 per segment", f"{metrics['segment_macro_f1']:.3f}")
    table.add_row("chance (1/composers)", f"{1 / len(result.trained.model.labels):.3f}")
    table.add_row("MLflow run", result.run_id)
    table.add_row("registered", f"{settings.model_name} v{result.version}")
    verdict = "[green]promoted[/]" if promotion.promoted else "[yellow]not promoted[/]"
    table.add_row(settings.champion_alias, f"{verdict}: {promotion.reason}")
    table.add_row("wall time", f"{seconds:.1f} s")
    table.add_row("tracking URI", settings.mlflow_tracking_uri)
    return table


def promote(
    version: Annotated[str, typer.Argument(help="Registered version number to promote.")],
    dataset: DatasetOption = "demo",
    force: Annotated[bool, typer.Option(help="Skip the gate (recorded as manual).")] = False,
) -> None:
    """Promote a version to champion if it beats the champion on the held-out works of
    DATASET (or unconditionally with --force)."""
    settings = load_settings()
    require_tracking(settings)
    from core import pipeline, registry
    from core.train import PRIMARY_METRIC

    client = registry.connect(settings)
    try:
        if force:
            registry.set_champion(client, settings, version, "manual promotion (--force)")
            out.print(f"v{version} is now {settings.champion_alias} (forced)")
            return
        model, found = registry.load_version(settings, version)
        manifest = pipeline.load_manifest(settings, dataset)
        sides = pipeline.split_recordings(settings, manifest)
        test = manifest[manifest["recording_id"].map(sides) == "test"]
        score = pipeline.score_on(settings, model, test)[PRIMARY_METRIC]
        decision = registry.promote_if_better(
            client,
            settings,
            str(found.version),
            score,
            lambda champion: pipeline.score_on(settings, champion, test)[PRIMARY_METRIC],
        )
    except registry.RegistryError as error:
        fail(error)
    verdict = "promoted" if decision.promoted else "not promoted"
    out.print(f"v{version}: {verdict}: {decision.reason}")


def evaluate(
    labels_csv: Annotated[
        Path, typer.Argument(help="CSV with columns file,composer (paths relative to it).")
    ],
    model: ModelOption = None,
    as_json: JsonOption = False,
    plot: Annotated[Path | None, typer.Option(help="Write the confusion matrix PNG here.")] = None,
) -> None:
    """Score a registered model on your own labelled recordings. Only composers the model
    knows are scored; the others are listed apart."""
    settings = load_settings()
    require_tracking(settings)
    from core import metrics, pipeline
    from core.registry import RegistryError, load_version
    from core.train import evaluate_rows

    try:
        loaded, found = load_version(settings, model)
        manifest = _labelled_manifest(labels_csv)
    except (RegistryError, ValueError, FileNotFoundError) as error:
        fail(error)
    known = manifest[manifest["composer"].isin(loaded.labels)]
    unknown = manifest[~manifest["composer"].isin(loaded.labels)]
    if known.empty:
        fail(ValueError(f"None of the composers in {labels_csv} is known to the model."))
    with progress("featurizing") as tick:
        report = pipeline.featurize(settings, known, loaded.feature_config, progress=tick)
    scores, predictions, per_composer = evaluate_rows(loaded, report.table)
    if plot:
        metrics.plot_confusion(
            predictions["composer"], predictions["predicted"], plot, f"v{found.version}"
        )
    payload = {
        "model": settings.model_name,
        "version": str(found.version),
        "accuracy": scores["recording_accuracy"],
        "macro_f1": scores["recording_macro_f1"],
        "n_scored": int(scores["n_recordings"]),
        "per_composer": per_composer.reset_index().to_dict(orient="records"),
        "unknown_composers": sorted(unknown["composer"].unique()),
        "n_unknown": len(unknown),
        "failed": report.failed,
    }
    if as_json:
        typer.echo(json.dumps(payload, indent=2, default=float))
        return
    table = Table("composer", "precision", "recall", "f1", "recordings")
    for name, row in per_composer.iterrows():
        table.add_row(
            name, f"{row.precision:.2f}", f"{row.recall:.2f}", f"{row.f1:.2f}", str(row.support)
        )
    out.print(table)
    out.print(
        f"accuracy {payload['accuracy']:.3f}, macro-F1 {payload['macro_f1']:.3f} on "
        f"{payload['n_scored']} recordings (model v{found.version})"
    )
    if payload["n_unknown"]:
        out.print(
            f"not scored ({payload['n_unknown']} recordings, composers unknown to the model): "
            + ", ".join(payload["unknown_composers"])
        )
    for rid, message in report.failed.items():
        console.print(f"[yellow]skipped[/] {rid}: {message}")


def _labelled_manifest(labels_csv: Path) -> pd.DataFrame:
    from core.datasets import folder

    return folder.load_labels(labels_csv)
