"""`composer-id monitor` and `simulate`: drift reports on recorded predictions, and
traffic to make some."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import pandas as pd
import typer
from rich.table import Table

from core.cli_common import (
    PROG,
    JsonOption,
    ModelOption,
    console,
    fail,
    load_settings,
    out,
    progress,
    require_tracking,
    status,
)

SimulateMode = Literal["in-distribution", "noise", "lowpass", "mix"]


def register(app: typer.Typer) -> None:
    """Add the monitoring commands to the CLI."""
    app.command()(monitor)
    app.command()(simulate)


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
    HOME/reports/DAY/, MLflow and the monitoring_summaries table. See `python -m reports_app`."""
    settings = load_settings()
    require_tracking(settings)
    from core import monitor as monitoring
    from core.registry import RegistryError

    summaries = []
    try:
        begin, finish = monitoring.window(start, end)
        windows = monitoring.days(begin, finish) if daily else [(begin, finish)]
        for window_start, window_end in windows:
            label = f"monitoring {monitoring.window_folder(window_start, window_end)}"
            with status(label):
                summary = monitoring.run_monitoring(
                    settings, window_start, window_end, min_rows, model
                )
            if trigger and summary["decision"] == monitoring.RETRAIN:
                summary["triggered_run_id"] = monitoring.trigger_training(
                    settings, summary["reason"]
                )
            summaries.append(summary)
    except (RegistryError, monitoring.TriggerError, ValueError) as error:
        fail(error)
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


def simulate(
    url: Annotated[str, typer.Option(help="The running app.")] = "http://127.0.0.1:7860",
    mode: Annotated[
        SimulateMode,
        typer.Option(
            help="in-distribution (held-out demo works), noise (10 dB SNR), lowpass (phone), "
            "mix (two composers)."
        ),
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
    are back-dated to each day): then `composer-id monitor --start ... --daily`."""
    settings = load_settings()
    from core import monitor as monitoring
    from core.registry import RegistryError
    from gradio_app import simulate as simulation  # a client of the app, not library logic

    first = monitoring.window(start, None)[0] if start else None
    try:
        with progress(f"simulating {mode}") as tick:
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
        fail(error)
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
            f"next: {PROG} monitor --start {results[0]['day']} "
            f"--end {(pd.Timestamp(results[-1]['day']) + pd.Timedelta(days=1)).date()} --daily"
        )
