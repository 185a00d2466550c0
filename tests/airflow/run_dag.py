"""Run one DAG with ``dag.test()`` in a fresh process (Airflow reads its configuration from
the environment at import, so each scenario gets a clean interpreter). Prints one JSON line:
the run state, each task's state, and the asset events the run produced."""

from __future__ import annotations

import json
import sys

from airflow.dag_processing.dagbag import DagBag
from airflow.models.asset import AssetEvent, AssetModel
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
from sqlalchemy import select

from core.config import REPO_ROOT


def main() -> None:
    dag_id = sys.argv[1]
    conf = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
    bag = DagBag(dag_folder=str(REPO_ROOT / "dags"))
    if bag.import_errors:
        raise SystemExit(f"import errors: {bag.import_errors}")
    run = bag.get_dag(dag_id).test(run_conf=conf)
    with create_session() as session:
        tasks = session.execute(
            select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id
            )
        ).all()
        events = session.execute(
            select(AssetModel.name, AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_run_id == run.run_id)
        ).all()
    print(
        "RESULT "
        + json.dumps(
            {
                "state": str(run.state),
                "tasks": {f"{t}[{m}]" if m >= 0 else t: str(s) for t, m, s in tasks},
                "asset_events": [{"name": n, "extra": e} for n, e in events],
            }
        )
    )


if __name__ == "__main__":
    main()
