"""`composer-id`: one command per pipeline step. Every command reads the same settings
(COMPOSER_* environment variables or .env); options override them for one call. Answers go
to stdout, progress and errors to stderr; library warnings are fixed where they arise."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from core import cli_monitor, cli_pack, cli_train
from core.cli_common import PROG, JsonOption, ModelOption, console, out
from core.cli_common import fail as _fail
from core.cli_common import load_settings as _settings
from core.cli_common import require_tracking as _require_tracking
from core.cli_common import status as _status

app = typer.Typer(
    name=PROG,
    help="Name the composer of a piano recording: featurize, train, register, promote, "
    "predict, monitor, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    epilog=(
        "Configuration: COMPOSER_* environment variables or a .env file, e.g. "
        "COMPOSER_MLFLOW_TRACKING_URI=postgresql://user@host/db, "
        f"COMPOSER_FEATURES__N_MFCC=20, COMPOSER_WORKERS=2. `{PROG} info` shows what is in "
        f"force. Quick start: `{PROG} train` then `{PROG} predict clip.mp3`, `{PROG} serve`."
    ),
)


@app.callback()
def _quiet_libraries() -> None:
    """MLflow and Alembic log every migration and registration at INFO; the CLI prints its own
    summary instead. Set before MLflow is imported (it configures its loggers on import from
    MLFLOW_LOGGING_LEVEL), so commands that fail early never pay for importing it."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    for name in ("mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


@app.command()
def download(
    dest: Annotated[Path | None, typer.Option(help="Folder (default: HOME/musicnet).")] = None,
) -> None:
    """Download MusicNet (Zenodo record 5120004): resumable, checksum-verified, extracted."""
    settings = _settings(musicnet_dir=dest)
    from core.datasets import musicnet
    from core.download import DownloadError

    try:
        root = musicnet.download(settings, progress=True)
    except DownloadError as error:
        _fail(error)
    console.print(f"MusicNet ready in [bold]{root}[/]")


cli_train.register(app)


@app.command()
def predict(
    files: Annotated[
        list[Path],
        typer.Argument(
            exists=True,  # checked before the model loads
            dir_okay=False,
            readable=True,
            help="Audio files (wav, mp3, ogg, flac, ...).",
        ),
    ],
    model: ModelOption = None,
    top: Annotated[int, typer.Option(min=1, help="How many composers to show.")] = 3,
    as_json: JsonOption = False,
) -> None:
    """Name the composer of each FILE with the champion (or --model)."""
    settings = _settings()
    _require_tracking(settings)  # seconds, before the heavy imports and the model
    from core.audio import AudioError
    from core.identify import identify
    from core.registry import RegistryError, load_version

    try:
        with _status(f"loading model {model or settings.champion_alias}"):
            loaded, found = load_version(settings, model)
    except RegistryError as error:
        _fail(error)
    results, failures = [], 0
    for path in files:
        try:
            verdict = identify(
                loaded, path, limits=settings.audio, not_sure_below=settings.not_sure_below, k=top
            )
            label = f"{settings.model_name} v{found.version}"
            results.append(
                {"file": str(path), **verdict.model_copy(update={"model": label}).as_dict()}
            )
        except AudioError as error:
            failures += 1
            results.append({"file": str(path), "error": str(error)})
    if as_json:
        payload = {"model": settings.model_name, "version": str(found.version), "results": results}
        typer.echo(json.dumps(payload, indent=2))
    else:
        table = Table("file", "answer", "candidates", "segments", "notes")
        for item in results:
            if "error" in item:
                table.add_row(item["file"], "[red]error[/]", item["error"], "", "")
                continue
            ranked = ", ".join(
                f"{c['composer']} {c['probability']:.2f}" for c in item["candidates"]
            )
            notes = "; ".join(item["notes"])
            table.add_row(item["file"], item["headline"], ranked, str(len(item["segments"])), notes)
        out.print(table)
        console.print(f"model: {settings.model_name} v{found.version}")
    if failures:
        raise typer.Exit(2 if failures == len(files) else 1)


@app.command()
def info() -> None:
    """Settings in force, the champion, and every registered version with its scores."""
    settings = _settings()
    from core import registry

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
    from core.cli_info import versions_table

    try:
        client = registry.connect(settings)
        listing = versions_table(client, settings)
        champion = registry.champion(client, settings)
    except registry.RegistryError as error:
        _fail(error)
    if listing is None:
        out.print(f"No registered model yet: run `{PROG} train` (or `make run`).")
        return
    out.print(listing)
    if champion is None:
        out.print(f"No version has the {settings.champion_alias} alias.")


cli_monitor.register(app)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port (default $PORT or 7860).")
    ] = None,
    share: Annotated[bool, typer.Option("--share", help="Ask Gradio for a share link.")] = False,
    root_path: Annotated[str | None, typer.Option(help="URL prefix behind a proxy.")] = None,
    auth: Annotated[str | None, typer.Option(help="user:password for the login page.")] = None,
) -> None:
    """Serve the champion in the web app and its API (the same as `python -m gradio_app`);
    Ctrl-C stops it."""
    _settings()  # a bad setting fails here in one line, not inside the app
    argv = [sys.executable, "-m", "gradio_app"]
    for flag, value in (("--host", host), ("--port", port), ("--root-path", root_path)):
        if value is not None:
            argv += [flag, str(value)]
    if auth is not None:
        argv += ["--auth", auth]
    if share:
        argv.append("--share")
    sys.stdout.flush()
    sys.stderr.flush()
    # Replace this process: signals (Ctrl-C, docker stop) reach the server directly, and the
    # library never imports the app (core stays free of Gradio).
    os.execv(sys.executable, [*argv, *ctx.args])


cli_pack.register(app)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
