"""The train DAG with Airflow's metadata database on PostgreSQL (as in production)."""

from __future__ import annotations

import pytest

from core import pipeline, registry
from tests.airflow.conftest import AirflowRunner, airflow_env

pytestmark = pytest.mark.integration


def test_train_dag_on_postgres_metadata(composer_env, postgres_url, tmp_path):
    env, settings = composer_env
    manifest = pipeline.load_manifest(settings, "demo")
    report = pipeline.featurize(settings, manifest)
    pipeline.save_table(settings, "demo", report.table, manifest, settings.features)
    database = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
    runner = AirflowRunner(airflow_env(tmp_path / "airflow", env, database=database))
    runner.migrate()
    result = runner.run("train", {"candidates": ["logistic_regression"]})
    assert result["state"] == "success", result
    champion = registry.champion(registry.connect(settings), settings)
    assert champion is not None
    assert result["tasks"]["report"] == "success"
