"""What every `composer-id` command shares: the two consoles (answers on stdout, progress and
errors on stderr), settings loaded with one-line errors, and the failure exit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TimeElapsedColumn,
)

from core.config import Settings

PROG = "composer-id"
BAD_SETTING_EXIT = 2
console = Console(stderr=True)  # progress, notes, errors
out = Console()  # the answer the user asked for


def load_settings(**overrides) -> Settings:
    """The settings in force (options override COMPOSER_* variables). A bad value ends the
    command with one line per bad setting and exit code 2, not a pydantic traceback."""
    from core.setting_errors import describe

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        for line in describe(error):
            console.print(f"[bold red]bad setting:[/] {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(BAD_SETTING_EXIT) from None


def fail(error: Exception | str, code: int = 1) -> NoReturn:
    console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A bar for a counted step: yields ``tick(done, total)``."""
    with Progress(
        SpinnerColumn(),
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextmanager
def status(label: str) -> Iterator[None]:
    """A spinner for a step with no count (loading a model, monitoring a window); a line on
    stderr when it ends, so logs show how long it took."""
    import time

    started = time.perf_counter()
    with console.status(label):
        yield
    console.print(f"{label}: done in {time.perf_counter() - started:.1f} s", highlight=False)


def line(text: str) -> None:
    """One progress line per finished job (stderr: unbuffered, also when redirected)."""
    console.print(text, highlight=False, soft_wrap=True)


def require_tracking(settings: Settings) -> None:
    """Fail in seconds, before the heavy imports, if the MLflow store does not answer."""
    from core import tracking_probe

    try:
        tracking_probe.check(settings.mlflow_tracking_uri)
    except tracking_probe.TrackingUnreachable as error:
        fail(error)


DATASETS = ("demo", "musicnet")
FOLDER_PREFIX = "folder:"


def dataset_value(value: str) -> str:
    """demo, musicnet or folder:PATH (an existing CSV or folder), checked at parse time."""
    if value in DATASETS:
        return value
    if value.startswith(FOLDER_PREFIX) and len(value) > len(FOLDER_PREFIX):
        path = Path(value.removeprefix(FOLDER_PREFIX)).expanduser()
        if not path.exists():
            raise typer.BadParameter(f"{path} does not exist (folder:PATH needs a CSV or folder)")
        return value
    raise typer.BadParameter(f"{value!r}: choose demo, musicnet or folder:PATH")


DatasetOption = Annotated[
    str,
    typer.Option(
        "--dataset",
        "-d",
        callback=dataset_value,
        metavar="[demo|musicnet|folder:PATH]",
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


def ensemble_filter(value: str) -> str | None:
    return None if value.lower() == "all" else value
