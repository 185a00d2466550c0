"""Daily look at what the app served: prediction volume and mix per window."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task

from core import monitor
from core.orchestration import DEFAULT_ARGS, settings_for

DOC = """
### Monitor
Every day, summarises the predictions the app recorded in the window (yesterday by default;
set `start`/`end` to any ISO dates): row count, predicted-composer mix, feedback count and
accuracy on feedback, with "not enough data" below `min_rows`. (Evidently drift reports and
the retraining trigger build on this.)
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
        "min_rows": Param(30, type="integer", minimum=1, description="Below: not enough data."),
    },
)
def monitor_dag():
    @task
    def summarize(params: dict, data_interval_end=None) -> dict:
        settings = settings_for({})
        window = monitor.window(params["start"], params["end"], data_interval_end)
        summary = monitor.summarize_window(settings, *window, min_rows=params["min_rows"])
        print(summary)
        return summary

    summarize()


monitor_dag()
