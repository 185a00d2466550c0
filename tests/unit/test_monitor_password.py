"""The CLI finds the password of the local Airflow that `make up` started, unconfigured."""

from __future__ import annotations

import json

import pytest

from core.config import Settings
from core.monitor import AIRFLOW_PASSWORD_FILE, local_airflow_password

pytestmark = pytest.mark.unit


def test_reads_the_generated_password_for_the_configured_user(tmp_path):
    (tmp_path / "airflow").mkdir()
    (tmp_path / "airflow" / AIRFLOW_PASSWORD_FILE).write_text(json.dumps({"admin": "Xy7"}))
    assert local_airflow_password(Settings(home=tmp_path)) == "Xy7"
    assert local_airflow_password(Settings(home=tmp_path, airflow_user="ops")) is None


@pytest.mark.parametrize("content", [None, "", "not json", "[1, 2]", '{"admin": 3}'])
def test_missing_or_odd_files_give_none(tmp_path, content):
    if content is not None:
        (tmp_path / "airflow").mkdir()
        (tmp_path / "airflow" / AIRFLOW_PASSWORD_FILE).write_text(content)
    assert local_airflow_password(Settings(home=tmp_path)) is None
