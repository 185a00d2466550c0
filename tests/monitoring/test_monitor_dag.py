"""The `monitor` DAG end to end with ``dag.test()`` (in a subprocess with its own AIRFLOW_HOME,
the pattern of tests/airflow): on the shifted day it branches to **trigger_train**, which
really creates a queued `train` run with ``conf={"reason": ...}`` in the metadata database
(``dag.test()`` runs the TriggerDagRunOperator for real; nothing executes that queued run);
on a day with too few rows it branches to **no_action**."""

from __future__ import annotations

import json
import subprocess

import pytest

from core.config import REPO_ROOT
from core.store import PredictionStore
from tests.airflow.conftest import PYTHON, AirflowRunner, airflow_env
from tests.conftest import composer_env_vars
from tests.monitoring.conftest import FEW, SHIFTED

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# Both scenarios in one interpreter: Airflow's imports and DAG parsing are paid once.
RUN_BOTH = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
from sqlalchemy import select

bag = DagBag(dag_folder=DAGS)
assert not bag.import_errors, bag.import_errors
out = {}
for name, conf in json.loads(sys.argv[1]).items():
    run = bag.get_dag("monitor").test(run_conf=conf)
    with create_session() as session:
        tasks = session.execute(
            select(TaskInstance.task_id, TaskInstance.state).where(
                TaskInstance.dag_id == "monitor", TaskInstance.run_id == run.run_id
            )
        ).all()
        out[name] = {"state": str(run.state), "tasks": {t: str(s) for t, s in tasks}}
with create_session() as session:
    triggered = session.execute(
        select(DagRun.run_id, DagRun.state, DagRun.run_type, DagRun.conf).where(
            DagRun.dag_id == "train"
        )
    ).all()
out["train_runs"] = [
    {"run_id": r, "state": str(s), "run_type": str(t), "conf": c} for r, s, t, c in triggered
]
print("RESULT " + json.dumps(out, default=str))
"""


def test_monitor_dag_branches_on_the_decision(traffic, monitored, tmp_path):
    settings = traffic.settings
    composer = composer_env_vars(settings)
    env = airflow_env(tmp_path / "airflow", composer)
    AirflowRunner(env).migrate()
    # Both ends explicit: conf given to one dag.test() stays in dag.params for the next one
    # in the same process (Airflow 3.3).
    scenarios = {
        "shifted": {"start": "2026-03-02", "end": "2026-03-03"},
        "few": {"start": "2026-03-03", "end": "2026-03-04"},
    }
    code = RUN_BOTH.replace("DAGS", repr(str(REPO_ROOT / "dags")))
    done = subprocess.run(
        [PYTHON, "-c", code, json.dumps(scenarios)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, (done.stdout[-3000:], done.stderr[-5000:])
    result = json.loads(lines[-1].removeprefix("RESULT "))

    shifted = result["shifted"]
    assert shifted["state"] == "success", shifted
    assert shifted["tasks"] == {
        "monitor": "success",
        "branch": "success",
        "trigger_train": "success",
        "no_action": "skipped",
    }
    few = result["few"]
    assert few["state"] == "success", few
    assert few["tasks"]["no_action"] == "success"
    assert few["tasks"]["trigger_train"] == "skipped"

    # What trigger_train really did: one queued `train` run carrying the monitor's reason.
    (train_run,) = result["train_runs"]
    assert train_run["state"] == "queued"
    assert train_run["run_type"].endswith("operator_triggered")
    reason = train_run["conf"]["reason"]
    assert reason == monitored["shifted"]["reason"]
    assert reason.startswith("data drift: ")

    # The DAG's monitor task wrote the same summary rows (upserted, not duplicated).
    store = PredictionStore(settings.database_url, settings.spool_dir)
    try:
        rows = store.summaries().set_index("window_start")
    finally:
        store.close()
    assert rows.index.is_unique
    assert rows.loc[SHIFTED, "decision"] == "retrain" and rows.loc[SHIFTED, "reason"] == reason
    assert rows.loc[FEW, "decision"] == "not enough data"
