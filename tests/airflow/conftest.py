"""Airflow in tests: every DAG run happens in a subprocess with its own AIRFLOW_HOME and
metadata database (SQLite by default, PostgreSQL in the PostgreSQL test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import REPO_ROOT

PYTHON = sys.executable
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def airflow_env(home: Path, composer: dict[str, str], database: str | None = None) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "PYTHONWARNINGS": "ignore",
        **composer,
    }
    if database:
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = database
        # Airflow derives an asyncpg URL otherwise, and asyncpg is not installed.
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = database.replace(
            "postgresql+psycopg://", "postgresql+psycopg_async://", 1
        )
    return env


class AirflowRunner:
    """``migrate()`` once, then ``run(dag_id, conf)`` -> the JSON printed by run_dag.py."""

    def __init__(self, env: dict):
        self.env = env

    def migrate(self) -> None:
        done = subprocess.run(
            [AIRFLOW, "db", "migrate"], env=self.env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-3000:]

    def run(self, dag_id: str, conf: dict | None = None) -> dict:
        command = [PYTHON, str(REPO_ROOT / "tests" / "airflow" / "run_dag.py"), dag_id]
        if conf is not None:
            command.append(json.dumps(conf))
        done = subprocess.run(
            command, env=self.env, capture_output=True, text=True, timeout=900, cwd=REPO_ROOT
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        assert done.returncode == 0 and lines, (done.stdout[-3000:], done.stderr[-5000:])
        return json.loads(lines[-1].removeprefix("RESULT "))


@pytest.fixture(scope="module")
def composer_env(make_settings, tmp_path_factory) -> tuple[dict, object]:
    """COMPOSER_* variables for the DAG processes: the session's feature cache, a fresh
    MLflow store, and the Settings object that describes the same store."""
    settings = make_settings()
    env = {
        "COMPOSER_HOME": str(settings.home),
        "COMPOSER_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "COMPOSER_MLFLOW_ARTIFACT_ROOT": str(settings.mlflow_artifact_root),
        "COMPOSER_DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('store') / 'p.db'}",
    }
    return env, settings
