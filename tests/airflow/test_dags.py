"""The DAGs: they import cleanly with docs, tags and the promised retries, and run end to
end with ``dag.test()`` on the demo corpus into a temporary MLflow store."""

from __future__ import annotations

import os
import subprocess

import pytest

from core import registry
from core.config import REPO_ROOT
from tests.airflow.conftest import PYTHON, AirflowRunner, airflow_env

pytestmark = pytest.mark.integration

DAG_CHECKS = r"""
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=DAGS)
out = {"errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "tags": sorted(dag.tags), "doc": bool(dag.doc_md), "schedule": str(dag.timetable),
        "owners": sorted({t.owner for t in dag.tasks}),
        "retries": {t.task_id: t.retries for t in dag.tasks},
        "params": sorted(dag.params.keys()),
    }
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory) -> dict:
    env = airflow_env(tmp_path_factory.mktemp("airflow-parse"), {})
    code = DAG_CHECKS.replace("DAGS", repr(str(REPO_ROOT / "dags")))
    done = subprocess.run(
        [PYTHON, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, done.stderr[-3000:]
    import json

    return json.loads(line[-1].removeprefix("RESULT "))


def test_every_dag_imports_with_docs_tags_and_owner(dagbag):
    assert dagbag["errors"] == {}
    assert set(dagbag["dags"]) == {"featurize", "train", "monitor", "build_pack"}
    for dag_id, info in dagbag["dags"].items():
        assert "composer" in info["tags"], dag_id
        assert info["doc"], dag_id
        assert info["owners"] == ["ml-platform"], dag_id


def test_retries_only_where_failures_can_be_transient(dagbag):
    train = dagbag["dags"]["train"]["retries"]
    assert train["train_model"] == 0  # bad data or config: retrying cannot help
    assert train["register"] == train["evaluate_gate"] == train["promote"] == 3
    featurize = dagbag["dags"]["featurize"]["retries"]
    assert featurize["featurize_shard"] == 3 and featurize["plan"] == 0


def test_schedules_and_params(dagbag):
    dags = dagbag["dags"]
    assert "composer_features" in dags["train"]["schedule"]  # Asset-scheduled
    assert "daily" in dags["monitor"]["schedule"].lower() or "0 0" in dags["monitor"]["schedule"]
    assert {"dataset", "sample_rate", "segment_seconds", "n_mfcc", "ensemble"} <= set(
        dags["featurize"]["params"]
    )
    assert {"start", "end", "min_rows"} <= set(dags["monitor"]["params"])


@pytest.fixture(scope="module")
def sqlite_airflow(composer_env, tmp_path_factory) -> AirflowRunner:
    env, _ = composer_env
    runner = AirflowRunner(airflow_env(tmp_path_factory.mktemp("airflow"), env))
    runner.migrate()
    return runner


def test_featurize_train_promote_then_worse_config_is_not_promoted(sqlite_airflow, composer_env):
    _, settings = composer_env
    featurized = sqlite_airflow.run("featurize", {"dataset": "demo", "shards": 3})
    assert featurized["state"] == "success", featurized
    assert {k for k in featurized["tasks"] if k.startswith("featurize_shard")} == {
        f"featurize_shard[{i}]" for i in range(3)
    }
    events = featurized["asset_events"]
    assert [e["name"] for e in events] == ["composer_features"]
    assert events[0]["extra"]["dataset"] == "demo"
    assert os.path.exists(events[0]["extra"]["path"])

    first = sqlite_airflow.run("train", {"candidates": ["random_forest", "logistic_regression"]})
    assert first["state"] == "success", first
    assert first["tasks"]["promote"] == "success" and first["tasks"]["keep_champion"] == "skipped"
    client = registry.connect(settings)
    champion = registry.champion(client, settings)
    assert champion is not None and str(champion.version) == "1"

    worse = sqlite_airflow.run("train", {"candidates": ["dummy"]})
    assert worse["state"] == "success", worse
    assert worse["tasks"]["promote"] == "skipped" and worse["tasks"]["keep_champion"] == "success"
    assert str(registry.champion(client, settings).version) == "1"
    rejected = client.get_model_version(settings.model_name, "2")
    assert rejected.tags["promotion"] == "rejected"


def test_featurize_rerun_is_idempotent(sqlite_airflow, composer_env):
    """A re-run reuses the cache and replaces (never appends to) the feature table."""
    import pandas as pd

    first = sqlite_airflow.run("featurize", {"dataset": "demo", "shards": 2})
    path = first["asset_events"][0]["extra"]["path"]
    rows = len(pd.read_parquet(path))
    again = sqlite_airflow.run("featurize", {"dataset": "demo", "shards": 2})
    assert again["state"] == "success"
    table = pd.read_parquet(path)
    assert len(table) == rows
    assert not table.duplicated(["recording_id", "segment"]).any()


def test_monitor_runs_and_says_not_enough_data(sqlite_airflow):
    result = sqlite_airflow.run("monitor", {"start": "2026-01-01", "end": "2026-01-02"})
    assert result["state"] == "success", result
    assert result["tasks"]["monitor"] == "success"
    assert result["tasks"]["no_action"] == "success"
    assert result["tasks"]["trigger_train"] == "skipped"
