"""Daily monitoring: drift reports on what the app served, and retraining when it drifted."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, task

from core import monitor as monitoring
from core.orchestration import DEFAULT_ARGS, settings_for

DOC = """
### Monitor
Every day, looks at the predictions the app recorded in the window (yesterday by default;
set `start`/`end` to any ISO dates) and compares them with the champion's training corpus.

1. **monitor**: Evidently reports (data drift over the features, prediction drift of the
   predicted composer, classification quality on the rows with user feedback), saved under
   `HOME/reports/<day>/`, logged to the `composer-id-monitoring` MLflow experiment and
   summarised in the `monitoring_summaries` table. Below `min_rows` predictions (default
   `COMPOSER_MONITOR_MIN_ROWS`): "not enough data", no drift claim.
2. **branch**: `retrain` (drift share >= `COMPOSER_MONITOR_DRIFT_SHARE`, prediction drift,
   or accuracy on feedback below `COMPOSER_MONITOR_MIN_ACCURACY`) goes to **trigger_train**,
   which starts the `train` DAG with `conf={"reason": ...}`; anything else to **no_action**.

The reports page (`python -m reports_app`, http://127.0.0.1:8090/) lists every window.
"""


@dag(
    dag_id="monitor",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["composer", "monitoring"],
    default_args=DEFAULT_ARGS,
    doc_md=DOC,
    params={
        "start": Param(None, type=["null", "string"], description="ISO date; default yesterday."),
        "end": Param(None, type=["null", "string"], description="ISO date (exclusive)."),
        "min_rows": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Below: not enough data (default COMPOSER_MONITOR_MIN_ROWS, 30).",
        ),
    },
)
def monitor_dag():
    @task
    def monitor(params: dict, data_interval_end=None) -> dict:
        """Idempotent per window, so no retries: a failed day is simply run again."""
        window = monitoring.window(params["start"], params["end"], data_interval_end)
        summary = monitoring.run_monitoring(settings_for({}), *window, params["min_rows"])
        print(monitoring.headline(summary))
        return summary

    @task.branch
    def branch(summary: dict) -> str:
        return "trigger_train" if summary["decision"] == monitoring.RETRAIN else "no_action"

    trigger = TriggerDagRunOperator(
        task_id="trigger_train",
        trigger_dag_id=monitoring.TRAIN_DAG,
        conf={"reason": "{{ ti.xcom_pull(task_ids='monitor')['reason'] }}"},
        wait_for_completion=False,
    )
    branch(monitor()) >> [trigger, EmptyOperator(task_id="no_action")]


monitor_dag()
