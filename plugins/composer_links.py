"""Links from the Airflow UI to the rest of the platform.

* Navigation (Airflow 3.1+ ``external_views``, under *Plugins > Composer*): the MLflow
  experiments, the registered model's page, the Gradio app and the monitoring reports.
* A global operator extra link, **MLflow run**: on task instances of the ``train`` DAG it opens
  the MLflow run that ``train_model`` logged (its ``run_id`` in XCom); without a run id yet it
  opens the experiments page. Tasks of other DAGs get no link.

URLs come from ``COMPOSER_MLFLOW_UI_URL``, ``COMPOSER_APP_URL`` and ``COMPOSER_REPORTS_URL``
(read once, when the plugin loads: restart the api-server after changing them).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink

from core.config import Settings

TRAIN_DAG_ID = "train"
RUN_TASK_ID = "train_model"  # returns a dict with the MLflow ``run_id``
CATEGORY = "Composer"
RUN_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")  # MLflow run ids are 32 hex characters


def platform_urls() -> dict[str, str]:
    """Where the other services of the platform are (environment, else the local defaults)."""
    defaults = {
        "mlflow": ("COMPOSER_MLFLOW_UI_URL", "http://127.0.0.1:5000"),
        "app": ("COMPOSER_APP_URL", "http://127.0.0.1:7860"),
        "reports": ("COMPOSER_REPORTS_URL", "http://127.0.0.1:8090"),
    }
    return {key: (os.environ.get(var) or url).rstrip("/") for key, (var, url) in defaults.items()}


def experiments_url(mlflow_url: str) -> str:
    return f"{mlflow_url}/#/experiments"


def model_url(mlflow_url: str, model_name: str) -> str:
    return f"{mlflow_url}/#/models/{quote(model_name, safe='')}"


def run_id_of(value: Any) -> str | None:
    """The MLflow run id in one XCom value (a dict, or its JSON text), if there is a valid one."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    run_id = value.get("run_id") if isinstance(value, dict) else None
    return run_id if isinstance(run_id, str) and RUN_ID.match(run_id) else None


def mlflow_run_url(dag_id: str, xcom_values: Iterable[Any], mlflow_url: str) -> str:
    """The "MLflow run" link: the run page for the first value carrying a run id, the
    experiments page for a ``train`` task without one, and no link ("") for other DAGs."""
    if dag_id != TRAIN_DAG_ID:
        return ""
    for value in xcom_values:
        run_id = run_id_of(value)
        if run_id:
            return f"{mlflow_url}/#/runs/{run_id}"
    return experiments_url(mlflow_url)


def xcom_values(ti_key) -> list[Any]:
    """``return_value`` XComs of this task, then of ``train_model``, in the same DAG run.

    Extra links are resolved in the api-server, which reads the metadata database directly
    (as Airflow's own XCom links do)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    wanted = [ti_key.task_id, RUN_TASK_ID]
    with create_session() as session:
        rows = session.execute(
            XComModel.get_many(
                run_id=ti_key.run_id,
                key="return_value",
                dag_ids=ti_key.dag_id,
                task_ids=wanted,
            ).with_only_columns(XComModel.task_id, XComModel.map_index, XComModel.value)
        ).all()
    own = [r for r in rows if r.task_id == ti_key.task_id and r.map_index == ti_key.map_index]
    run_task = [r for r in rows if r.task_id == RUN_TASK_ID and r.map_index == -1]
    return [r.value for r in (*own, *run_task)]


class MlflowRunLink(BaseOperatorLink):
    name = "MLflow run"

    def get_link(self, operator, *, ti_key) -> str:
        if ti_key.dag_id != TRAIN_DAG_ID:
            return ""
        mlflow_url = platform_urls()["mlflow"]
        try:
            values = xcom_values(ti_key)
        except Exception:  # the link must degrade, never break the task page
            values = []
        return mlflow_run_url(ti_key.dag_id, values, mlflow_url)


def nav_views(urls: dict[str, str], model_name: str) -> list[dict[str, str]]:
    """Navigation links (no ``url_route``: they open the service itself, not an iframe)."""
    views = [
        ("MLflow experiments", experiments_url(urls["mlflow"])),
        (f"Registered model: {model_name}", model_url(urls["mlflow"], model_name)),
        ("Composer app", f"{urls['app']}/"),
        ("Monitoring reports", f"{urls['reports']}/"),
    ]
    return [
        {"name": name, "href": href, "destination": "nav", "category": CATEGORY}
        for name, href in views
    ]


class ComposerLinksPlugin(AirflowPlugin):
    name = "composer_links"
    external_views = nav_views(platform_urls(), Settings().model_name)
    global_operator_extra_links = [MlflowRunLink()]  # noqa: RUF012
