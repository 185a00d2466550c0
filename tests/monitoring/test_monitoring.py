"""Monitoring end to end with a real trained champion, a real prediction store (SQLite, and
PostgreSQL once), real Evidently reports and a real MLflow store: in-distribution traffic is
left alone, shifted traffic asks for retraining (with the reason), too little traffic decides
nothing; the retraining trigger speaks Airflow's REST API; one simulation goes through the
live app's API and the `composer-id monitor --trigger` command."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from core import cli, monitor
from core.config import AudioLimits
from core.store import PredictionStore
from gradio_app import simulate
from tests.conftest import composer_env_vars
from tests.monitoring.conftest import (
    DAY,
    FEW,
    FEW_ROWS,
    IN_DIST,
    SHIFTED,
    SHIFTED_ROWS,
    SIMULATED,
    FakeAirflow,
    report_path,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
runner = CliRunner()


def test_in_distribution_traffic_is_no_drift_and_no_action(monitored, traffic):
    summary = monitored["in"]
    held_out = traffic.model.reference.query("split == 'test'")["recording_id"].nunique()
    assert summary["status"] == "ok"
    assert summary["rows"] == held_out == len(traffic.ids["in"])
    assert summary["model_version"] == traffic.version
    assert summary["n_columns"] == len(traffic.model.feature_names)
    # The held-out works are part of the reference: only chance-level column drift (~5% of
    # K-S tests at p < 0.05), far below the threshold, and no prediction drift.
    assert summary["drift_share"] < traffic.settings.monitor_drift_share
    assert summary["data_drift"] is False
    assert summary["prediction_drift"] is False
    assert summary["prediction_drift_score"] > 0.05  # chi-square p-value
    # Feedback on every row: accuracy is exactly the champion's held-out accuracy.
    assert summary["feedback_rows"] == held_out
    assert summary["feedback_accuracy"] == pytest.approx(
        traffic.model.metrics["recording_accuracy"], abs=1e-3
    )
    assert summary["decision"] == "no action"
    assert summary["reason"].startswith("no drift: ")


def test_in_distribution_reports_are_written(monitored, traffic):
    summary = monitored["in"]
    assert summary["report_dir"] == "2026-03-01"
    drift_html = report_path(traffic.settings, summary["report_html"])
    assert drift_html.name == "drift.html" and drift_html.stat().st_size > 100_000
    assert "<html" in drift_html.read_text()[:2000].lower()
    drift_json = json.loads(report_path(traffic.settings, summary["report_json"]).read_text())
    assert drift_json["tests"] and drift_json["metrics"]
    folder = drift_html.parent
    on_disk = json.loads((folder / "summary.json").read_text())
    assert on_disk["decision"] == summary["decision"]
    assert on_disk["mlflow_run_id"] == summary["mlflow_run_id"]
    # The classification report (rows with feedback) agrees with our own accuracy.
    quality = json.loads((folder / "quality.json").read_text())
    accuracy = next(m for m in quality["metrics"] if m["metric_name"].startswith("Accuracy"))
    assert accuracy["value"] == pytest.approx(summary["feedback_accuracy"], abs=1e-3)


def test_shifted_traffic_is_drift_and_asks_for_retraining(monitored, traffic):
    summary = monitored["shifted"]
    assert summary["status"] == "ok" and summary["rows"] == SHIFTED_ROWS
    assert summary["drift_share"] >= traffic.settings.monitor_drift_share
    assert summary["data_drift"] is True
    assert summary["drifted_columns"] == len(summary["drifted_column_names"]) > 30
    assert summary["prediction_drift"] is True
    assert summary["prediction_drift_score"] < 1e-6
    assert summary["feedback_rows"] == SHIFTED_ROWS // 2
    assert summary["decision"] == "retrain"
    assert "data drift: " in summary["reason"]
    assert "prediction drift: " in summary["reason"]
    assert f"{summary['drifted_columns']} of {summary['n_columns']}" in summary["reason"]
    assert report_path(traffic.settings, summary["report_html"]).is_file()


def test_too_few_rows_is_not_enough_data(monitored, traffic):
    summary = monitored["few"]
    assert summary["rows"] == FEW_ROWS
    assert summary["status"] == summary["decision"] == "not enough data"
    for claim in ("drift_share", "prediction_drift", "data_drift", "report_html", "report_json"):
        assert summary[claim] is None, claim
    assert "fewer than the 30 needed" in summary["reason"]
    folder = monitor.reports_dir(traffic.settings) / summary["report_dir"]
    assert (folder / "summary.json").is_file()
    assert not (folder / "drift.html").exists()


def test_summaries_are_in_the_database_and_in_mlflow(monitored, traffic):
    store = traffic.store()
    try:
        rows = store.summaries(IN_DIST, FEW + DAY).set_index("window_start")
    finally:
        store.close()
    for key, day in (("in", IN_DIST), ("shifted", SHIFTED), ("few", FEW)):
        row, summary = rows.loc[day], monitored[key]
        assert row["window_end"] == day + DAY
        for column in ("rows", "status", "decision", "reason", "drifted_columns", "n_columns"):
            assert row[column] == summary[column], column
        assert row["prediction_drift"] is summary["prediction_drift"]
        assert row["report_html"] == summary["report_html"]
        assert row["model_version"] == traffic.version
    assert rows.loc[SHIFTED, "drift_share"] == pytest.approx(monitored["shifted"]["drift_share"])

    client = MlflowClient(traffic.settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(f"{traffic.settings.experiment_name}-monitoring")
    run = client.get_run(monitored["shifted"]["mlflow_run_id"])
    assert run.info.experiment_id == experiment.experiment_id
    assert run.info.run_name == "monitor-2026-03-02"
    assert run.data.metrics["retrain"] == 1.0
    assert run.data.metrics["drift_share"] == pytest.approx(monitored["shifted"]["drift_share"])
    assert run.data.tags["decision"] == "retrain"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")}
    assert {"monitoring/drift.html", "monitoring/drift.json", "monitoring/summary.json"} <= (
        artifacts
    )


def test_rerunning_a_window_replaces_its_row_and_run(monitored, traffic):
    first = monitored["few"]
    again = monitor.run_monitoring(traffic.settings, FEW, FEW + DAY)
    assert again["summary_id"] == first["summary_id"]
    assert again["mlflow_run_id"] == first["mlflow_run_id"]
    store = traffic.store()
    try:
        rows = store.summaries(FEW, FEW + DAY)
    finally:
        store.close()
    assert len(rows) == 1 and rows.iloc[0]["created_at"].isoformat() == again["created_at"]


def test_summary_row_in_postgres(traffic, postgres_url):
    settings = traffic.settings.model_copy(update={"database_url": postgres_url})
    store = PredictionStore(postgres_url, settings.spool_dir)
    try:
        for record in traffic.records["few"]:
            store.record(record)
        store.backdate(traffic.ids["few"], FEW + timedelta(hours=2))
        summary = monitor.run_monitoring(settings, FEW, FEW + DAY)
        assert summary["decision"] == "not enough data" and summary["rows"] == FEW_ROWS
        # A full summary (floats, booleans, the mix as JSON), written twice: one row.
        full = {**summary, "window_start": SHIFTED.isoformat(), "window_end": FEW.isoformat()}
        full.update(
            status="ok",
            drift_share=0.75,
            drifted_columns=90,
            n_columns=118,
            prediction_drift=True,
            prediction_drift_score=1e-30,
            prediction_mix={"Chopin": 0.5, "Liszt": 0.5},
            decision="retrain",
            reason="data drift",
        )
        first_id = store.save_summary(full)
        assert store.save_summary({**full, "reason": "data drift (again)"}) == first_id
        rows = store.summaries().set_index("window_start")
    finally:
        store.close()
    assert list(rows.index) == [SHIFTED, FEW]
    assert rows.loc[FEW, "decision"] == "not enough data"
    assert rows.loc[FEW, "drift_share"] is None
    saved = rows.loc[SHIFTED]
    assert saved["reason"] == "data drift (again)"
    assert saved["prediction_drift"] is True and saved["drifted_columns"] == 90
    assert saved["prediction_mix"] == {"Chopin": 0.5, "Liszt": 0.5}


def test_trigger_training_posts_the_reason_with_a_bearer_token(traffic, fake_airflow):
    settings = traffic.settings.model_copy(
        update={"airflow_url": fake_airflow.url, "airflow_password": "s3cret"}
    )
    run_id = monitor.trigger_training(settings, "data drift: 90 of 118 columns")
    assert run_id.startswith("manual__fake_")
    login, trigger = fake_airflow.requests
    assert login["path"] == "/auth/token"
    assert login["json"] == {"username": "admin", "password": "s3cret"}
    assert trigger["path"] == "/api/v2/dags/train/dagRuns"
    assert trigger["headers"]["Authorization"] == f"Bearer {FakeAirflow.TOKEN}"
    assert trigger["json"]["conf"] == {"reason": "data drift: 90 of 118 columns"}
    assert trigger["json"]["logical_date"] is None


def test_trigger_training_uses_the_local_airflow_password(traffic, fake_airflow, tmp_path):
    (tmp_path / "airflow").mkdir()
    generated = tmp_path / "airflow" / monitor.AIRFLOW_PASSWORD_FILE
    generated.write_text('{"admin": "s3cret"}')
    settings = traffic.settings.model_copy(
        update={"airflow_url": fake_airflow.url, "airflow_password": None, "home": tmp_path}
    )
    assert monitor.trigger_training(settings, "drift").startswith("manual__fake_")
    assert fake_airflow.requests[0]["json"] == {"username": "admin", "password": "s3cret"}


def test_trigger_training_fails_clearly(traffic, fake_airflow):
    base = {"airflow_url": fake_airflow.url}
    no_password = traffic.settings.model_copy(update={**base, "airflow_password": None})
    with pytest.raises(monitor.TriggerError, match="COMPOSER_AIRFLOW_PASSWORD"):
        monitor.trigger_training(no_password, "x")
    wrong = traffic.settings.model_copy(update={**base, "airflow_password": "wrong"})
    with pytest.raises(monitor.TriggerError, match="401"):
        monitor.trigger_training(wrong, "x")
    assert fake_airflow.dag_runs() == []
    away = traffic.settings.model_copy(
        update={"airflow_url": "http://127.0.0.1:9", "airflow_password": "s3cret"}
    )
    with pytest.raises(monitor.TriggerError, match="auth/token"):
        monitor.trigger_training(away, "x")


def _cli_env(settings, fake: FakeAirflow) -> dict[str, str]:
    return {
        **composer_env_vars(settings),
        "COMPOSER_AIRFLOW_URL": fake.url,
        "COMPOSER_AIRFLOW_PASSWORD": fake.password,
    }


def test_simulated_phone_traffic_through_the_app_then_cli_monitor_triggers(
    traffic, fake_airflow, tmp_path
):
    """`simulate` sends low-passed clips (phone microphone) through the live app's API with
    feedback; `composer-id monitor --trigger` then finds drift and starts `train` (fake Airflow);
    on a window with too few rows it triggers nothing."""
    from gradio_app.app import launch
    from tests.app.conftest import free_port

    settings = traffic.settings.model_copy(
        update={
            "database_url": f"sqlite:///{tmp_path / 'app.db'}",
            "spool_dir": tmp_path / "spool",
            "app_port": free_port(),
            "app_workers": 1,
            "audio": AudioLimits(max_seconds=60),
        }
    )
    running = launch(settings, block=False)
    try:
        days = simulate.simulate(
            settings,
            running.url,
            "lowpass",
            days=1,
            start=SIMULATED,
            per_day=SHIFTED_ROWS,
            feedback_rate=0.5,
            seed=3,
        )
    finally:
        running.close()
    (day,) = days
    assert day["day"] == "2026-03-05" and day["sent"] == SHIFTED_ROWS and day["failed"] == 0
    store = PredictionStore(settings.database_url, settings.spool_dir)
    try:
        recorded = store.predictions(SIMULATED, SIMULATED + DAY)
    finally:
        store.close()
    assert sorted(recorded["id"]) == sorted(day["ids"])
    assert set(recorded["source"]) == {"api"}
    assert set(recorded["sample_rate"]) == {simulate.PHONE_RATE}
    assert recorded["true_composer"].notna().sum() == day["feedback"] > 0

    env = _cli_env(settings, fake_airflow)
    result = runner.invoke(
        cli.app, ["monitor", "--start", "2026-03-05", "--trigger", "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == SHIFTED_ROWS and summary["decision"] == "retrain"
    assert summary["drift_share"] >= settings.monitor_drift_share
    assert summary["prediction_drift"] is True
    (trigger,) = fake_airflow.dag_runs()
    assert trigger["json"]["conf"] == {"reason": summary["reason"]}
    assert summary["triggered_run_id"].startswith("manual__fake_")

    empty = runner.invoke(
        cli.app, ["monitor", "--start", "2026-03-06", "--trigger", "--json"], env=env
    )
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.stdout)["decision"] == "not enough data"
    assert len(fake_airflow.dag_runs()) == 1  # nothing more was triggered
