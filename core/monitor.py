"""Monitoring: what the app served in a time window, whether it drifted from what the model
was trained on, and whether to retrain.

:func:`run_monitoring` does one window end to end:

1. reads the window's predictions from the prediction store and loads the champion (its
   ``reference``: the training corpus with the model's own predictions);
2. below ``min_rows`` predictions: status and decision "not enough data" and no drift claim;
3. otherwise Evidently reports (:mod:`core.drift`): data drift over the features, prediction
   drift of the predicted composer, classification quality on the rows with feedback;
4. the decision: "retrain" when the share of drifted feature columns reaches
   ``monitor_drift_share``, or the predicted-composer mix drifted, or accuracy on feedback
   (with at least ``monitor_min_feedback`` rows) is below ``monitor_min_accuracy``; else
   "no action". The reason says which and with what figures;
5. writes ``HOME/reports/<window>/`` (drift.html, drift.json, quality.html/json with
   feedback, summary.json), logs one MLflow run per window in the ``<experiment>-monitoring``
   experiment (figures as metrics, files as artifacts) and upserts the window's row in the
   ``monitoring_summaries`` table. Re-running a window replaces all three.

It never triggers anything itself: the ``monitor`` DAG branches on the decision, and the CLI
calls :func:`trigger_training` (Airflow's REST API) when asked to.
"""

from __future__ import annotations

import json
import logging
import math
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from core import answer_mix
from core.config import Settings
from core.store import open_store

log = logging.getLogger(__name__)

NOT_ENOUGH = "not enough data"
OK = "ok"
RETRAIN = "retrain"
NO_ACTION = "no action"
TRAIN_DAG = "train"


def window(
    start: str | None, end: str | None, interval_end: datetime | None = None
) -> tuple[datetime, datetime]:
    """[start, end) in UTC. Defaults: the day before ``interval_end`` (the DAG run's data
    interval end), else yesterday."""
    if start:
        begin = _parse(start)
        finish = _parse(end) if end else begin + timedelta(days=1)
        if finish <= begin:
            raise ValueError(f"The window ends ({finish}) before it starts ({begin}).")
        return begin, finish
    anchor = interval_end or datetime.now(UTC)
    finish = anchor.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return finish - timedelta(days=1), finish


def days(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) cut into whole-day windows (the last one may be shorter)."""
    windows, begin = [], start
    while begin < end:
        windows.append((begin, min(begin + timedelta(days=1), end)))
        begin += timedelta(days=1)
    return windows


def reports_dir(settings: Settings) -> Path:
    return Path(settings.home) / "reports"


def window_folder(start: datetime, end: datetime) -> str:
    """``2026-01-01`` for a whole UTC day, else ``2026-01-01T0600--2026-01-01T1200``."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    midnight = start == start.replace(hour=0, minute=0, second=0, microsecond=0)
    if midnight and end - start == timedelta(days=1):
        return f"{start:%Y-%m-%d}"
    return f"{start:%Y-%m-%dT%H%M}--{end:%Y-%m-%dT%H%M}"


def run_monitoring(
    settings: Settings,
    start: datetime,
    end: datetime,
    min_rows: int | None = None,
    model: str | None = None,
) -> dict:
    """Monitor [start, end) against the champion (or ``model``: a version or alias); returns
    the summary (JSON-serialisable; also saved as summary.json, in MLflow and the database)."""
    from core import drift, registry

    start, end = _as_utc(start), _as_utc(end)
    min_rows = int(min_rows or settings.monitor_min_rows)
    store = open_store(settings)
    try:
        predictions = store.predictions(start, end)
        try:
            loaded, version = registry.load_version(settings, model)
        except registry.RegistryError:
            if len(predictions) >= min_rows:
                raise  # enough data and nothing to compare it with: that is an error
            loaded, version = None, None
        summary = _base_summary(settings, start, end, min_rows, predictions, version)
        folder = reports_dir(settings) / window_folder(start, end)
        folder.mkdir(parents=True, exist_ok=True)
        files: dict[str, Path] = {}
        if loaded is not None:
            current = drift.current_frame(predictions, loaded)
            labelled = current[current[drift.TARGET].notna()]
            summary.update(_mix_and_feedback(current, labelled))
            if len(current) >= min_rows:
                reference = drift.reference_frame(loaded)
                result = drift.drift_report(
                    reference, current, loaded.feature_names, settings.monitor_drift_share
                )
                files["drift.html"] = folder / "drift.html"
                files["drift.json"] = folder / "drift.json"
                result.snapshot.save_html(str(files["drift.html"]))
                result.snapshot.save_json(str(files["drift.json"]))
                quality, note = drift.quality_report(reference, labelled)
                if quality is not None:
                    files["quality.html"] = folder / "quality.html"
                    files["quality.json"] = folder / "quality.json"
                    quality.save_html(str(files["quality.html"]))
                    quality.save_json(str(files["quality.json"]))
                summary.update(_drift_summary(settings, result, reference, note))
        summary.update(decide(settings, summary))
        base = reports_dir(settings)
        summary["report_dir"] = str(folder.relative_to(base))
        for name in ("html", "json"):
            path = files.get(f"drift.{name}")
            summary[f"report_{name}"] = str(path.relative_to(base)) if path else None
        quality_html = files.get("quality.html")
        summary["quality_html"] = str(quality_html.relative_to(base)) if quality_html else None
        for stale in ("drift.html", "drift.json", "quality.html", "quality.json"):
            if stale not in files:  # a re-run with less data must not leave older reports
                (folder / stale).unlink(missing_ok=True)
        client, summary["mlflow_run_id"] = _mlflow_run(settings, summary)
        files["summary.json"] = folder / "summary.json"
        files["summary.json"].write_text(json.dumps(summary, indent=2, default=str))
        _mlflow_log(client, summary["mlflow_run_id"], summary, files)
        summary["summary_id"] = store.save_summary(summary)
    finally:
        store.close()
    log.info("%s", headline(summary))
    return summary


def decide(settings: Settings, summary: dict) -> dict:
    """{"decision", "reason"} from a summary's figures and the configured thresholds."""
    if summary["status"] != OK:
        return {
            "decision": NOT_ENOUGH,
            "reason": (
                f"{summary['rows']} predictions in the window, fewer than the "
                f"{summary['min_rows']} needed for a drift verdict: nothing decided"
            ),
        }
    share, threshold = summary["drift_share"], settings.monitor_drift_share
    columns = f"{summary['drifted_columns']} of {summary['n_columns']} feature columns drifted"
    data = f"{columns} ({share:.0%} {'>=' if share >= threshold else '<'} {threshold:.0%})"
    score = summary["prediction_drift_score"]
    test = summary["prediction_drift_method"] or "drift test"
    mix = (
        "predicted-composer mix "
        + ("drifted" if summary["prediction_drift"] else "unchanged")
        + (f" ({test} {score:.3g})" if score is not None else "")
    )
    accuracy, labelled = summary["feedback_accuracy"], summary["feedback_rows"]
    floor, needed = settings.monitor_min_accuracy, settings.monitor_min_feedback
    judged = accuracy is not None and labelled >= needed
    low = judged and accuracy < floor
    if accuracy is None:
        feedback = "no feedback"
    elif not judged:
        feedback = f"accuracy on {labelled} feedback rows not judged (fewer than {needed})"
    else:
        sign = "<" if low else ">="
        feedback = f"accuracy on {labelled} feedback rows {accuracy:.0%} {sign} {floor:.0%}"
    reasons = []
    if share >= threshold:
        reasons.append(f"data drift: {data}")
    if summary["prediction_drift"]:
        reasons.append(f"prediction drift: {mix}")
    if low:
        reasons.append(f"low accuracy: {feedback}")
    inputs = input_drift(summary)
    if reasons:
        return {"decision": RETRAIN, "reason": "; ".join([*reasons, *inputs])}
    return {
        "decision": NO_ACTION,
        "reason": "; ".join([f"no drift: {data}", mix, feedback, *inputs]),
    }


def input_drift(summary: dict) -> list[str]:
    """Many non-music uploads: worth a look at what people send, not a reason to retrain."""
    share, limit = summary.get("not_piano_share"), summary.get("max_not_piano")
    if share is None or limit is None or share < limit:
        return []
    return [f"input drift: {share:.0%} of uploads were not piano music (>= {limit:.0%})"]


def headline(summary: dict) -> str:
    """One line for logs and the CLI."""
    share = summary.get("drift_share")
    accuracy = summary.get("feedback_accuracy")
    return (
        f"[{summary['window_start'][:10]}] {summary['rows']} rows, "
        f"drift share {'-' if share is None else f'{share:.2f}'}, "
        f"prediction drift {_yes_no(summary.get('prediction_drift'))}, "
        f"accuracy on feedback {'-' if accuracy is None else f'{accuracy:.2f}'} "
        f"({summary.get('feedback_rows', 0)} rows): {summary['decision'].upper()} - "
        f"{summary['reason']}"
    )


def _base_summary(
    settings: Settings,
    start: datetime,
    end: datetime,
    min_rows: int,
    predictions: pd.DataFrame,
    version,
) -> dict[str, Any]:
    kinds = answer_mix.answer_kinds(predictions)
    return {
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "created_at": datetime.now(UTC).isoformat(),
        "model_name": settings.model_name,
        "model_version": None if version is None else str(version.version),
        "min_rows": min_rows,
        "rows_total": len(predictions),
        "rows": len(predictions),
        "model_versions": sorted(predictions["model_version"].astype(str).unique().tolist()),
        "status": NOT_ENOUGH,
        "drift_share": None,
        "drifted_columns": None,
        "drifted_column_names": [],
        "n_columns": None,
        "data_drift": None,
        "drift_share_threshold": settings.monitor_drift_share,
        "prediction_drift": None,
        "prediction_drift_score": None,
        "prediction_drift_method": None,
        "prediction_mix": answer_mix.composer_mix(predictions["composer"]),
        "answer_kinds": kinds,
        "not_piano_share": answer_mix.not_piano_share(kinds),
        "max_not_piano": settings.monitor_max_not_piano,
        "reference_mix": None,
        "feedback_rows": int(predictions["true_composer"].notna().sum()),
        "feedback_accuracy": None,
        "min_feedback": settings.monitor_min_feedback,
        "min_accuracy": settings.monitor_min_accuracy,
        "quality_note": None,
    }


def _mix_and_feedback(current: pd.DataFrame, labelled: pd.DataFrame) -> dict[str, Any]:
    from core.drift import PREDICTED, TARGET

    accuracy = (labelled[PREDICTED] == labelled[TARGET]).mean() if len(labelled) else None
    return {
        "rows": len(current),
        "prediction_mix": answer_mix.composer_mix(current[PREDICTED]),
        "feedback_rows": len(labelled),
        "feedback_accuracy": None if accuracy is None else round(float(accuracy), 4),
    }


def _drift_summary(settings: Settings, result, reference: pd.DataFrame, note: str) -> dict:
    from core.drift import PREDICTED

    return {
        "status": OK,
        "drift_share": round(result.drift_share, 4),
        "drifted_columns": len(result.drifted_columns),
        "drifted_column_names": result.drifted_columns,
        "n_columns": result.n_columns,
        "data_drift": result.data_drift,
        "prediction_drift": result.prediction_drift,
        "prediction_drift_score": result.prediction_drift_score,
        "prediction_drift_method": result.prediction_drift_method,
        "reference_mix": reference[PREDICTED].value_counts(normalize=True).round(4).to_dict(),
        "reference_rows": len(reference),
        "quality_note": note,
    }


def _mlflow_run(settings: Settings, summary: dict):
    """The window's run in ``<experiment>-monitoring``: created, or reused on a re-run
    (metrics get a new point, artifacts are overwritten). Returns (client, run_id)."""
    from mlflow import MlflowClient

    from core import registry

    registry.connect(settings)  # tracking and registry URIs; local artifact root
    uri = settings.mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = f"{settings.experiment_name}-monitoring"
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        local = uri.split(":", 1)[0].split("+", 1)[0] in registry.DATABASE_SCHEMES
        location = Path(settings.mlflow_artifact_root).resolve().as_uri() if local else None
        experiment_id = client.create_experiment(name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    key = f"{summary['window_start']}/{summary['window_end']}"
    found = client.search_runs([experiment_id], filter_string=f"tags.window = '{key}'")
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
    else:
        folder = window_folder(_parse(summary["window_start"]), _parse(summary["window_end"]))
        run = client.create_run(experiment_id, run_name=f"monitor-{folder}", tags={"window": key})
        run_id = run.info.run_id
    return client, run_id


def _mlflow_log(client, run_id: str, summary: dict, files: dict[str, Path]) -> None:
    tags = {
        "status": summary["status"],
        "decision": summary["decision"],
        "reason": summary["reason"][:4900],
        "model_version": str(summary["model_version"]),
        "window_start": summary["window_start"],
        "window_end": summary["window_end"],
    }
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    metrics = {
        "rows": summary["rows"],
        "drift_share": summary["drift_share"],
        "drifted_columns": summary["drifted_columns"],
        "n_columns": summary["n_columns"],
        "prediction_drift": _as_number(summary["prediction_drift"]),
        "prediction_drift_score": summary["prediction_drift_score"],
        "feedback_rows": summary["feedback_rows"],
        "feedback_accuracy": summary["feedback_accuracy"],
        "not_piano_share": summary.get("not_piano_share"),
        "retrain": 1.0 if summary["decision"] == RETRAIN else 0.0,
    }
    for metric, value in metrics.items():
        if value is not None and math.isfinite(float(value)):
            client.log_metric(run_id, metric, float(value))
    for path in files.values():
        client.log_artifact(run_id, str(path), artifact_path="monitoring")
    client.set_terminated(run_id)


# --------------------------------------------------------------------------- triggering


class TriggerError(RuntimeError):
    """Airflow refused or could not be reached."""


AIRFLOW_PASSWORD_FILE = "simple_auth_manager_passwords.json.generated"


def local_airflow_password(settings: Settings) -> str | None:
    """The password the local Airflow of ``make up`` generated for the user (its simple auth
    manager writes them under COMPOSER_HOME/airflow), so the CLI can trigger it unconfigured."""
    path = Path(settings.home) / "airflow" / AIRFLOW_PASSWORD_FILE
    try:
        passwords = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    password = passwords.get(settings.airflow_user) if isinstance(passwords, dict) else None
    return password if isinstance(password, str) and password else None


def trigger_training(settings: Settings, reason: str, dag_id: str = TRAIN_DAG) -> str:
    """Ask Airflow (REST API v2) for a ``train`` run with ``conf={"reason": reason}``; returns
    the new DAG run id. For monitoring outside Airflow (the CLI): the ``monitor`` DAG uses a
    TriggerDagRunOperator instead. Needs COMPOSER_AIRFLOW_URL/_USER/_PASSWORD."""
    base = settings.airflow_url.rstrip("/")
    password = settings.airflow_password or local_airflow_password(settings)
    if not password:
        raise TriggerError(
            f"No Airflow password: set COMPOSER_AIRFLOW_PASSWORD (user {settings.airflow_user!r} "
            f"at {base}) to trigger `{dag_id}`."
        )
    token = _post_json(
        f"{base}/auth/token", {"username": settings.airflow_user, "password": password}
    ).get("access_token")
    if not token:
        raise TriggerError(f"{base}/auth/token returned no access_token")
    run = _post_json(
        f"{base}/api/v2/dags/{dag_id}/dagRuns",
        {"logical_date": None, "conf": {"reason": reason}, "note": f"monitoring: {reason}"[:1000]},
        token,
    )
    if "dag_run_id" not in run:
        raise TriggerError(f"Airflow did not return a dag_run_id: {run}")
    return str(run["dag_run_id"])


def _post_json(url: str, payload: dict, token: str | None = None, timeout: float = 15) -> dict:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace")[:500]
        raise TriggerError(f"POST {url}: HTTP {error.code}: {body}") from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise TriggerError(f"POST {url}: {error}") from error


# --------------------------------------------------------------------------- helpers


def _yes_no(value) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _as_number(value) -> float | None:
    return None if value is None else float(bool(value))


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
