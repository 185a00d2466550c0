"""`composer`: one command per pipeline step. Every command reads the same settings
(COMPOSER_* environment variables or .env); options override them for one call."""

from __future__ import annotations

import json
import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from core.config import Settings

app = typer.Typer(
    help="Name the composer of a piano recording: featurize, train, register, promote, predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    epilog=(
        "Configuration: COMPOSER_* environment variables or a .env file, e.g. "
        "COMPOSER_MLFLOW_TRACKING_URI=postgresql://user@host/db, "
        "COMPOSER_FEATURES__N_MFCC=20, COMPOSER_WORKERS=2. `composer info` shows what is in "
        "force. Quick start: `composer train` then `composer predict clip.mp3`."
    ),
)
console = Console(stderr=True)
out = Console()


def _dataset(value: str) -> str:
    if value in ("demo", "musicnet") or (value.startswith("folder:") and len(value) > 7):
        return value
    raise typer.BadParameter("choose demo, musicnet or folder:PATH")


DatasetOption = Annotated[
    str,
    typer.Option(
        "--dataset",
        "-d",
        callback=_dataset,
        help="demo (shipped, no download), musicnet (downloaded) or folder:PATH: your own "
        "labelled recordings, a CSV of file,composer[,work] (paths relative to it) or a folder "
        "holding labels.csv.",
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", help="Registered version number or alias (default: champion)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]
EnsembleOption = Annotated[
    str, typer.Option(help="MusicNet only: ensemble filter ('all' keeps every ensemble).")
]
MinRecordingsOption = Annotated[
    int, typer.Option(help="MusicNet only: drop composers with fewer recordings.")
]


def _ensemble(value: str) -> str | None:
    return None if value.lower() == "all" else value


@app.callback()
def _quiet_libraries() -> None:
    """MLflow and Alembic log every migration and registration at INFO; the CLI prints its own
    summary instead."""
    import mlflow  # noqa: F401 - configures its loggers on import; adjust them afterwards

    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # We log our own class on purpose (documented in core/registry.py); the warning is noise.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)


def _settings(**overrides) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


@contextmanager
def _progress(label: str):
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _fail(error: Exception, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {error}")
    raise typer.Exit(code)


@app.command()
def download(
    dest: Annotated[Path | None, typer.Option(help="Folder (default: HOME/musicnet).")] = None,
) -> None:
    """Download MusicNet (Zenodo record 5120004): resumable, checksum-verified, extracted."""
    from core.datasets import musicnet
    from core.download import DownloadError

    settings = _settings(musicnet_dir=dest)
    try:
        root = musicnet.download(settings, progress=True)
    except DownloadError as error:
        _fail(error)
    console.print(f"MusicNet ready in [bold]{root}[/]")


@app.command()
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
    from core import pipeline

    settings = _settings(workers=workers)
    started = time.perf_counter()
    try:
        manifest = pipeline.load_manifest(settings, dataset, _ensemble(ensemble), min_recordings)
    except (ValueError, FileNotFoundError) as error:
        _fail(error)
    with _progress(f"featurizing {dataset}") as tick:
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


@app.command()
def train(
    dataset: DatasetOption = "demo",
    candidates: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated: random_forest, logistic_regression, gradient_boosting, "
            "svm_rbf, dummy (default: random_forest, logistic_regression)."
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
    from core import pipeline, registry
    from core.train import CANDIDATES, DEFAULT_CANDIDATES

    settings = _settings()
    if skip_if_champion:
        existing = registry.champion(registry.connect(settings), settings)
        if existing is not None:
            out.print(
                f"{settings.model_name} v{existing.version} is already "
                f"{settings.champion_alias}; not retraining (`make train` retrains)."
            )
            return
    chosen = tuple(candidates.split(",")) if candidates else DEFAULT_CANDIDATES
    unknown = sorted(set(chosen) - set(CANDIDATES))
    if unknown:
        raise typer.BadParameter(
            f"unknown {unknown}; choose from {', '.join(sorted(CANDIDATES))}",
            param_hint="--candidates",
        )
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
        with _progress(f"featurizing {dataset}") as tick:
            result = pipeline.run(
                settings,
                dataset,
                chosen,
                manifest=manifest,
                progress=tick,
                on_candidate=on_candidate,
                ensemble=_ensemble(ensemble),
                min_recordings=min_recordings,
            )
    except (ValueError, RuntimeError, FileNotFoundError) as error:
        _fail(error)
    out.print(cv_table)
    out.print(_result_table(result, time.perf_counter() - started, settings))


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
    return pipeline.load_manifest(settings, dataset, _ensemble(ensemble), min_recordings)


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


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Registered version number to promote.")],
    dataset: DatasetOption = "demo",
    force: Annotated[bool, typer.Option(help="Skip the gate (recorded as manual).")] = False,
) -> None:
    """Promote a version to champion if it beats the champion on the held-out works of
    DATASET (or unconditionally with --force)."""
    from core import pipeline, registry
    from core.train import PRIMARY_METRIC

    settings = _settings()
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
        _fail(error)
    verdict = "promoted" if decision.promoted else "not promoted"
    out.print(f"v{version}: {verdict}: {decision.reason}")


@app.command()
def predict(
    files: Annotated[list[Path], typer.Argument(help="Audio files (wav, mp3, ogg, flac, ...).")],
    model: ModelOption = None,
    top: Annotated[int, typer.Option(help="How many composers to show.")] = 3,
    as_json: JsonOption = False,
) -> None:
    """Name the composer of each FILE with the champion (or --model)."""
    from core.audio import AudioError
    from core.predict import Predictor
    from core.registry import RegistryError, load_version

    settings = _settings()
    try:
        loaded, found = load_version(settings, model)
    except RegistryError as error:
        _fail(error)
    predictor = Predictor(loaded, settings.audio, k=top)
    results, failures = [], 0
    for path in files:
        try:
            prediction = predictor.predict_file(path)
            results.append({"file": str(path), **prediction.as_dict(top)})
        except AudioError as error:
            failures += 1
            results.append({"file": str(path), "error": str(error)})
    if as_json:
        payload = {"model": settings.model_name, "version": str(found.version), "results": results}
        typer.echo(json.dumps(payload, indent=2))
    else:
        table = Table("file", "composer", "top composers", "segments", "notes")
        for item in results:
            if "error" in item:
                table.add_row(item["file"], "[red]error[/]", item["error"], "", "")
                continue
            ranked = ", ".join(f"{t['composer']} {t['probability']:.2f}" for t in item["top"])
            notes = "; ".join(item["notes"])
            table.add_row(item["file"], item["composer"], ranked, str(item["segments"]), notes)
        out.print(table)
        console.print(f"model: {settings.model_name} v{found.version}")
    if failures:
        raise typer.Exit(2 if failures == len(files) else 1)


@app.command()
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
    from core import metrics, pipeline
    from core.registry import RegistryError, load_version
    from core.train import evaluate_rows

    settings = _settings()
    try:
        loaded, found = load_version(settings, model)
        manifest = _labelled_manifest(labels_csv)
    except (RegistryError, ValueError, FileNotFoundError) as error:
        _fail(error)
    known = manifest[manifest["composer"].isin(loaded.labels)]
    unknown = manifest[~manifest["composer"].isin(loaded.labels)]
    if known.empty:
        _fail(ValueError(f"None of the composers in {labels_csv} is known to the model."))
    with _progress("featurizing") as tick:
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


@app.command()
def info() -> None:
    """Settings in force, the champion, and every registered version with its scores."""
    from core import registry

    settings = _settings()
    table = Table("setting", "value", title="Configuration")
    for key in ("home", "demo_dir", "mlflow_tracking_uri", "model_name", "champion_alias"):
        table.add_row(key, str(getattr(settings, key)))
    table.add_row("features", settings.features.schema_id + " " + settings.features.fingerprint())
    table.add_row("workers", str(settings.n_workers))
    from sqlalchemy.engine import make_url

    from core.store import open_store

    store = open_store(settings)
    try:
        health = store.health()
    finally:
        store.close()
    database = make_url(settings.database_url).render_as_string()  # password hidden
    table.add_row("prediction store", f"{health.status}: {database}")
    table.add_row("spool", f"{health.spooled} records waiting in {settings.spool_dir}")
    table.add_row("dead letters", f"{health.dead_letters} (rows the database refused)")
    out.print(table)
    try:
        client = registry.connect(settings)
        versions = client.search_model_versions(f"name='{settings.model_name}'")
    except Exception as error:
        _fail(RuntimeError(f"cannot reach MLflow at {settings.mlflow_tracking_uri}: {error}"))
    if not versions:
        out.print("No registered model yet: run `composer train` (or `make run`).")
        return
    champion = registry.champion(client, settings)
    listing = Table("version", "alias", "candidate", "test rec. macro-F1", "promotion", "created")
    for item in sorted(versions, key=lambda v: int(v.version)):
        run = client.get_run(item.run_id) if item.run_id else None
        f1 = run.data.metrics.get("test_recording_macro_f1") if run else None
        listing.add_row(
            str(item.version),
            ", ".join(item.aliases or []),
            run.data.params.get("candidate", "") if run else "",
            f"{f1:.3f}" if f1 is not None else "",
            item.tags.get("promotion_reason", ""),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(item.creation_timestamp / 1000)),
        )
    out.print(listing)
    if champion is None:
        out.print("No champion alias set.")


@app.command()
def monitor(
    start: Annotated[
        str | None, typer.Option(help="ISO date or datetime (UTC); default: yesterday.")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Exclusive end; default: start + 1 day.")] = None,
    daily: Annotated[
        bool, typer.Option("--daily", help="One window per day of [start, end).")
    ] = False,
    min_rows: Annotated[
        int | None, typer.Option(help="Fewer predictions: 'not enough data' (default 30).")
    ] = None,
    model: ModelOption = None,
    trigger: Annotated[
        bool,
        typer.Option(
            "--trigger", help="On 'retrain', start Airflow's `train` DAG (COMPOSER_AIRFLOW_*)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Drift reports on the predictions of a window (Evidently), the retraining decision,
    HOME/reports/<day>/, MLflow and the monitoring_summaries table. See `python -m reports_app`."""
    from core import monitor as monitoring
    from core.registry import RegistryError

    settings = _settings()
    begin, finish = monitoring.window(start, end)
    windows = monitoring.days(begin, finish) if daily else [(begin, finish)]
    summaries = []
    try:
        for window_start, window_end in windows:
            summary = monitoring.run_monitoring(settings, window_start, window_end, min_rows, model)
            if trigger and summary["decision"] == monitoring.RETRAIN:
                summary["triggered_run_id"] = monitoring.trigger_training(
                    settings, summary["reason"]
                )
            summaries.append(summary)
    except (RegistryError, monitoring.TriggerError, ValueError) as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps(summaries if daily else summaries[0], indent=2, default=str))
        return
    table = Table("window", "rows", "drift share", "pred. drift", "feedback acc.", "decision")
    for item in summaries:
        share, accuracy = item["drift_share"], item["feedback_accuracy"]
        table.add_row(
            item["report_dir"],
            str(item["rows"]),
            "-"
            if share is None
            else f"{share:.2f} ({item['drifted_columns']}/{item['n_columns']})",
            {None: "-", True: "yes", False: "no"}[item["prediction_drift"]],
            "-" if accuracy is None else f"{accuracy:.2f} ({item['feedback_rows']})",
            item["decision"],
        )
    out.print(table)
    for item in summaries:
        out.print(f"[bold]{item['report_dir']}[/]: {item['reason']}")
        if item.get("triggered_run_id"):
            out.print(f"  triggered `train`: {item['triggered_run_id']}")
    console.print(f"reports: {settings.home / 'reports'} (python -m reports_app to browse)")


@app.command()
def simulate(
    url: Annotated[str, typer.Option(help="The running app.")] = "http://127.0.0.1:7860",
    mode: Annotated[
        str, typer.Option(help="in-distribution, noise (10 dB SNR), lowpass (phone), mix.")
    ] = "in-distribution",
    days: Annotated[int, typer.Option(min=1, help="Simulated days.")] = 1,
    start: Annotated[
        str | None, typer.Option(help="First simulated day (ISO); default: DAYS days ago.")
    ] = None,
    per_day: Annotated[
        int | None, typer.Option(help="Requests per day (default: one per recording).")
    ] = None,
    feedback_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of requests given the true composer.")
    ] = 0.0,
    snr_db: Annotated[float, typer.Option(help="noise mode: signal-to-noise ratio (dB).")] = 10.0,
    composers: Annotated[
        str | None, typer.Option(help="mix mode: comma-separated composers (default: top two).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (choice of clips, noise).")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Send demo clips through the app's API as users would, over simulated days (the rows
    are back-dated to each day): then `composer monitor --start ... --daily`."""
    from core import monitor as monitoring
    from core import simulate as simulation
    from core.registry import RegistryError

    settings = _settings()
    first = monitoring.window(start, None)[0] if start else None
    try:
        with _progress(f"simulating {mode}") as tick:
            results = simulation.simulate(
                settings,
                url,
                mode,
                days=days,
                start=first,
                per_day=per_day,
                feedback_rate=feedback_rate,
                seed=seed,
                snr_db=snr_db,
                composers=composers.split(",") if composers else None,
                progress=tick,
            )
    except (RegistryError, ValueError) as error:
        _fail(error)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    table = Table("day", "mode", "sent", "failed", "feedback")
    for day in results:
        table.add_row(
            day["day"], day["mode"], str(day["sent"]), str(day["failed"]), str(day["feedback"])
        )
    out.print(table)
    if results:
        console.print(
            f"next: composer monitor --start {results[0]['day']} "
            f"--end {(pd.Timestamp(results[-1]['day']) + pd.Timedelta(days=1)).date()} --daily"
        )


# --- the repertoire pack (build-time commands: need fluidsynth, SoundFonts, the MIDI files)


def _pack_options(midi_dir: Path, work_dir: Path | None, chunks: int = 1):
    from core.datasets import pack

    settings = _settings()
    return pack.BuildOptions(
        midi_dir=midi_dir,
        work_dir=work_dir or settings.home / "pack-work",
        config=settings.features,
        chunks=chunks,
    )


def _line(text: str) -> None:
    """One progress line per finished job (stderr: unbuffered, also when redirected)."""
    console.print(text, highlight=False, soft_wrap=True)


@app.command("build-pack")
def build_pack(
    midi_dir: Annotated[Path, typer.Option(help="piano-midi folder: sources.csv + MIDI files.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Pack folder.")] = Path("data/pack"),
    work_dir: Annotated[
        Path | None, typer.Option(help="Resumable cache (default: HOME/pack-work).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=2, help="Processes (at most 2).")] = 2,
    chunks: Annotated[
        int,
        typer.Option(
            min=1, help="30 s chunks per piece and SoundFont (the shipped pack: 4; more: rerun)."
        ),
    ] = 4,
    only: Annotated[
        list[str] | None, typer.Option(help="Only these composers or piece ids (repeatable).")
    ] = None,
) -> None:
    """Render every piece with two SoundFonts (augmented), featurize, write the pack."""
    from core.datasets import pack
    from core.render import RenderError

    try:
        opts = _pack_options(midi_dir, work_dir, chunks)
        pieces = pack.select_pieces(pack.read_sources(midi_dir), only)
        console.print(f"{len(pieces)} pieces x {len(opts.variants)} SoundFonts -> {opts.work_dir}")
        command = " ".join(["composer", *sys.argv[1:]])
        manifest = pack.build(pieces, opts, out_dir, command, workers, _line)
    except (pack.PackError, RenderError) as error:
        _fail(error)
    console.print(
        f"pack: {manifest['rows']} rows, {manifest['pieces']} pieces, {manifest['composers']} "
        f"composers, {manifest['parquet_bytes'] / 1e6:.1f} MB -> [bold]{out_dir}[/] "
        f"(CPU-s: {manifest['build_cpu_s']})"
    )


@app.command("build-shifted")
def build_shifted(
    midi_dir: Annotated[Path, typer.Option(help="piano-midi folder: sources.csv + MIDI files.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("data/shifted"),
    demo_manifest: Annotated[
        Path | None, typer.Option(help="Default: the demo corpus's manifest.csv.")
    ] = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="Resumable cache (default: HOME/pack-work).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=2, help="Processes (at most 2).")] = 2,
) -> None:
    """The shifted bench set: every demo excerpt again, TimGM6mb and humanised."""
    from core.datasets import pack
    from core.render import RenderError

    try:
        opts = _pack_options(midi_dir, work_dir)
        excerpts = pack.read_demo_excerpts(demo_manifest or _settings().demo_dir / "manifest.csv")
        command = " ".join(["composer", *sys.argv[1:]])
        manifest = pack.build_shifted(excerpts, opts, out_dir, command, workers, _line)
    except (pack.PackError, RenderError) as error:
        _fail(error)
    console.print(
        f"shifted set: {manifest['rows']} rows, {manifest['recordings']} recordings -> "
        f"[bold]{out_dir}[/] (CPU-s: {manifest['cpu_s']})"
    )


@app.command("download-midi")
def download_midi(
    dest: Annotated[Path, typer.Option(help="Folder to fill with <Composer>/<name>.mid.")],
    base_url: Annotated[
        str | None, typer.Option(help="Default: setting midi_base_url; fetches {URL}/{file}.")
    ] = None,
    pieces_csv: Annotated[
        Path | None, typer.Option(help="Default: the shipped pack's pieces.csv.")
    ] = None,
) -> None:
    """Fetch the pack's MIDI files (resumable, size- and sha256-checked) + sources.csv."""
    from core.datasets import pack
    from core.download import DownloadError

    settings = _settings()
    try:
        pieces = pack.read_pieces(pieces_csv or settings.pack_dir / "pieces.csv")
        paths = pack.download_midi(pieces, base_url or settings.midi_base_url, dest, progress=True)
    except (DownloadError, pack.PackError, OSError) as error:
        _fail(error)
    console.print(f"{len(paths)} MIDI files ready in [bold]{dest}[/]")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
