"""The Airflow plugin (plugins/composer_links.py), loaded by Airflow's own plugins manager from
AIRFLOW__CORE__PLUGINS_FOLDER in a subprocess with a temporary AIRFLOW_HOME, so Airflow's
configuration never enters the pytest process. The probe also calls the link's URL function
and ``get_link`` (with the XCom lookup replaced) directly and prints everything as JSON."""

from __future__ import annotations

import json
import subprocess

import pytest

from core.config import REPO_ROOT
from tests.airflow.conftest import PYTHON, airflow_env

pytestmark = pytest.mark.integration

URL_VARIABLES = (
    "COMPOSER_MLFLOW_UI_URL",
    "COMPOSER_APP_URL",
    "COMPOSER_REPORTS_URL",
    "COMPOSER_MODEL_NAME",
)
RUN = "0123456789abcdef0123456789abcdef"  # an MLflow run id
MLFLOW = "http://mlflow.test:5001"

PROBE = r"""
import json, sys
from airflow import plugins_manager
from airflow.api_fastapi.core_api.datamodels.plugins import PluginResponse
from airflow.models.taskinstancekey import TaskInstanceKey

plugins, errors = plugins_manager._get_plugins()
info = [p for p in plugins_manager.get_plugin_info() if p["name"] == "composer_links"]
module = sys.modules["composer_links"]
cases = json.loads(sys.argv[1])
out = {
    "errors": errors,
    "plugin": info[0] if info else None,
    "api": PluginResponse.model_validate(info[0]).model_dump(mode="json") if info else None,
    "global_links": [
        [type(link).__module__, type(link).__name__, link.name]
        for link in plugins_manager.get_global_operator_extra_links()
    ],
    "urls": module.platform_urls(),
    "run_url": [module.mlflow_run_url(c["dag_id"], c["values"], c["mlflow"]) for c in cases],
}

# get_link as the api-server calls it, with the metadata-database lookup replaced.
xcoms = {"train_model": [{"run_id": sys.argv[2]}], "report": [{"run_id": sys.argv[2]}]}
def fake_lookup(ti_key):
    if ti_key.task_id == "boom":
        raise RuntimeError("database unreachable")
    return xcoms.get(ti_key.task_id, [])
module.xcom_values = fake_lookup
link = plugins_manager.get_global_operator_extra_links()[0]
keys = [("train", "train_model"), ("train", "report"), ("train", "gate"), ("train", "boom"),
        ("featurize", "plan")]
out["get_link"] = {
    f"{d}.{t}": link.get_link(None, ti_key=TaskInstanceKey(d, t, "manual__1", 1, -1))
    for d, t in keys
}
print("RESULT " + json.dumps(out, default=str))
"""

# (dag_id, XCom values, expected link) for mlflow_run_url(dag_id, values, MLFLOW).
URL_CASES = [
    ("train", [{"run_id": RUN, "candidate": "svm_rbf"}], f"{MLFLOW}/#/runs/{RUN}"),
    ("train", [json.dumps({"run_id": RUN})], f"{MLFLOW}/#/runs/{RUN}"),  # stored as JSON text
    ("train", [None, "not json", {"version": "3"}, {"run_id": RUN}], f"{MLFLOW}/#/runs/{RUN}"),
    ("train", [], f"{MLFLOW}/#/experiments"),  # not run yet: degrade to the experiments
    ("train", [{"run_id": ""}, {"run_id": None}], f"{MLFLOW}/#/experiments"),
    ("train", [{"run_id": "../x?y=<script>"}], f"{MLFLOW}/#/experiments"),  # never into a URL
    ("train", [["run_id", RUN]], f"{MLFLOW}/#/experiments"),
    ("featurize", [{"run_id": RUN}], ""),  # other DAGs: no link
    ("monitor", [], ""),
]


def probe(tmp_path, overrides: dict[str, str]) -> dict:
    env = airflow_env(tmp_path / "airflow-home", overrides)
    for name in URL_VARIABLES:
        if name not in overrides:
            env.pop(name, None)
    env["PYTHONPATH"] = str(REPO_ROOT)
    cases = [{"dag_id": d, "values": v, "mlflow": MLFLOW} for d, v, _ in URL_CASES]
    done = subprocess.run(
        [PYTHON, "-c", PROBE, json.dumps(cases), RUN],
        env=env,
        cwd=tmp_path,  # no .env file of the developer's
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    assert done.returncode == 0 and lines, (done.stdout[-2000:], done.stderr[-4000:])
    return json.loads(lines[-1].removeprefix("RESULT "))


@pytest.fixture(scope="module")
def configured(tmp_path_factory) -> dict:
    return probe(
        tmp_path_factory.mktemp("plugin-configured"),
        {
            "COMPOSER_MLFLOW_UI_URL": MLFLOW + "/",  # trailing slashes are dropped
            "COMPOSER_APP_URL": "http://app.test:7861",
            "COMPOSER_REPORTS_URL": "https://reports.test/composer/",
            "COMPOSER_MODEL_NAME": "piano model",
        },
    )


@pytest.fixture(scope="module")
def defaults(tmp_path_factory) -> dict:
    return probe(tmp_path_factory.mktemp("plugin-defaults"), {})


def test_plugin_loads_from_the_plugins_folder(configured):
    assert configured["errors"] == {}
    plugin = configured["plugin"]
    assert plugin is not None, "composer_links not registered"
    assert plugin["source"] == "$PLUGINS_FOLDER/composer_links.py"


def test_external_views_honour_the_environment(configured):
    views = {v["name"]: v for v in configured["plugin"]["external_views"]}
    assert {name: v["href"] for name, v in views.items()} == {
        "MLflow experiments": f"{MLFLOW}/#/experiments",
        "Registered model: piano model": f"{MLFLOW}/#/models/piano%20model",
        "Composer app": "http://app.test:7861/",
        "Monitoring reports": "https://reports.test/composer/",
    }
    for view in views.values():
        assert view["destination"] == "nav" and view["category"] == "Composer"
        assert "url_route" not in view  # links to the services, not iframes
    # What /api/v2/plugins serves the UI: every view passes Airflow's own schema.
    assert [v["href"] for v in configured["api"]["external_views"]] == [
        v["href"] for v in configured["plugin"]["external_views"]
    ]


def test_default_urls(defaults):
    assert defaults["urls"] == {
        "mlflow": "http://127.0.0.1:5000",
        "app": "http://127.0.0.1:7860",
        "reports": "http://127.0.0.1:8090",
    }
    hrefs = {v["name"]: v["href"] for v in defaults["plugin"]["external_views"]}
    assert hrefs == {
        "MLflow experiments": "http://127.0.0.1:5000/#/experiments",
        "Registered model: composer-classifier": (
            "http://127.0.0.1:5000/#/models/composer-classifier"
        ),
        "Composer app": "http://127.0.0.1:7860/",
        "Monitoring reports": "http://127.0.0.1:8090/",
    }


def test_global_operator_extra_link_is_registered(configured):
    assert configured["global_links"] == [["composer_links", "MlflowRunLink", "MLflow run"]]
    assert configured["plugin"]["global_operator_extra_links"] == [
        "<composer_links.MlflowRunLink object>"
    ]
    assert configured["api"]["global_operator_extra_links"] == [
        "<composer_links.MlflowRunLink object>"
    ]


@pytest.mark.parametrize("index", range(len(URL_CASES)))
def test_run_url(configured, index):
    dag_id, values, expected = URL_CASES[index]
    assert configured["run_url"][index] == expected, (dag_id, values)


def test_get_link_reads_the_run_id_and_degrades(configured):
    assert configured["get_link"] == {
        "train.train_model": f"{MLFLOW}/#/runs/{RUN}",
        "train.report": f"{MLFLOW}/#/runs/{RUN}",
        "train.gate": f"{MLFLOW}/#/experiments",  # no run id found for it
        "train.boom": f"{MLFLOW}/#/experiments",  # lookup failed: still a link
        "featurize.plan": "",
    }
