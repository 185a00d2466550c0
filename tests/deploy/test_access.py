"""A deployment is not open by accident: docker compose refuses the placeholder passwords of
.env.example (its ``config-check`` one-shot is run here with /bin/sh, as compose would run it:
no Docker engine needed), and Terraform gives a public app a login from Secret Manager."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.deploy.test_infra import env_example, services, tf_resource

pytestmark = pytest.mark.unit

SECRETS = (
    "POSTGRES_PASSWORD",
    "AIRFLOW_DB_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "APP_DB_PASSWORD",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
)
STRONG = {name: f"{name.lower()}-0123456789abcdef" for name in SECRETS}


def config_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    """The service's script as the container's shell gets it (compose turns $$ into $)."""
    service = services()["config-check"]
    assert service["entrypoint"] == ["/bin/sh", "-c"]
    script = service["command"][0].replace("$$", "$")
    environment = {"PATH": os.environ["PATH"], "BIND_ADDRESS": "127.0.0.1", **env}
    return subprocess.run(
        ["/bin/sh", "-c", script], env=environment, capture_output=True, text=True, timeout=30
    )


def test_env_example_as_is_is_refused_naming_every_placeholder():
    values = {k: v for k, v in env_example().items() if k in SECRETS or k == "COMPOSER_APP_AUTH"}
    result = config_check(values)
    print(result.stderr)
    assert result.returncode == 1
    for name in SECRETS:
        assert name in result.stderr, name
    placeholders = [k for k, v in values.items() if v.startswith("change-me")]
    assert len(placeholders) >= 5
    for name in placeholders:
        assert f"{name} is still the .env.example placeholder" in result.stderr
    assert "refusing to start" in result.stderr


def test_real_secrets_pass():
    result = config_check(STRONG)
    assert result.returncode == 0, result.stderr
    assert "config-check: ok" in result.stdout


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"APP_DB_PASSWORD": "change-me-app-db"}, "APP_DB_PASSWORD is still the .env.example"),
        ({"POSTGRES_PASSWORD": "short"}, "POSTGRES_PASSWORD is shorter than 12"),
        ({"AIRFLOW_JWT_SECRET": ""}, "AIRFLOW_JWT_SECRET is empty"),
        ({"BIND_ADDRESS": "0.0.0.0"}, "set COMPOSER_APP_AUTH"),
        ({"COMPOSER_APP_AUTH": "admin:change-me-app"}, "placeholder password"),
        ({"COMPOSER_APP_AUTH": "admin:secret"}, "shorter than 12"),
        ({"COMPOSER_APP_AUTH": "no-colon-here-at-all"}, "must be user:password"),
    ],
)
def test_each_weak_setting_is_refused_by_name(change, problem):
    result = config_check({**STRONG, **change})
    assert result.returncode == 1
    assert problem in result.stderr, result.stderr


def test_public_bind_with_a_login_passes():
    result = config_check(
        {**STRONG, "BIND_ADDRESS": "0.0.0.0", "COMPOSER_APP_AUTH": "composer:0123456789abcdef"}
    )
    assert result.returncode == 0, result.stderr


def test_every_service_waits_for_the_check():
    """Directly or through another service: nothing starts before the check succeeded."""
    check = services()["config-check"]
    assert str(check.get("restart")) == "no"
    assert "healthcheck" not in check

    def reaches(name: str, seen: frozenset[str] = frozenset()) -> bool:
        depends = services()[name].get("depends_on") or {}
        if depends.get("config-check", {}).get("condition") == "service_completed_successfully":
            return True
        return any(reaches(dep, seen | {name}) for dep in depends if dep not in seen)

    for name in services():
        if name != "config-check":
            assert reaches(name), f"{name} can start before config-check"


def test_public_app_gets_its_login_from_secret_manager():
    gated = "${var.app_public ? 1 : 0}"
    for kind in (
        "random_password",
        "google_secret_manager_secret",
        "google_secret_manager_secret_version",
        "google_secret_manager_secret_iam_member",
    ):
        assert tf_resource(kind, "app_login")["count"] == gated, kind
    assert tf_resource("google_cloud_run_v2_service_iam_member", "app_public")["count"] == gated
    version = tf_resource("google_secret_manager_secret_version", "app_login")
    assert version["secret_data"] == "${var.app_login_user}:${random_password.app_login[0].result}"
    accessor = tf_resource("google_secret_manager_secret_iam_member", "app_login")
    assert accessor["member"] == '${google_service_account.sa["app"].member}'

    app = tf_resource("google_cloud_run_v2_service", "app")
    container = app["template"][0]["containers"][0]
    literal = [e for e in container.get("env", []) if e.get("name") == "COMPOSER_APP_AUTH"]
    assert literal == [], "the login must not be a literal value in the service"
    (dynamic,) = [d["env"] for d in container["dynamic"] if "env" in d]
    assert dynamic["for_each"] == (
        "${var.app_public ? [google_secret_manager_secret.app_login[0].secret_id] : []}"
    )
    (content,) = dynamic["content"]
    assert content["name"] == "COMPOSER_APP_AUTH"
    ref = content["value_source"][0]["secret_key_ref"][0]
    assert ref == {"secret": "${env.value}", "version": "latest"}
    assert "${google_secret_manager_secret_version.app_login}" in app["depends_on"]
