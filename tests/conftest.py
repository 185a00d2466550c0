"""Shared fixtures. Generated state goes under pytest's tmp dirs; the feature cache is shared
across the session so the demo corpus is featurized once per run."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest

from core import pipeline
from core.config import REPO_ROOT, Settings

POSTGRES_URL = os.environ.get("COMPOSER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
FAST_CANDIDATES = ("random_forest", "logistic_regression")
# Debian's chromium, headless; no network beyond this machine (see the env notes).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


MISSING_SYSTEM = "MISSING SYSTEM PACKAGE"
SYSTEM_PACKAGES = {  # what a test needs -> (how to find it, the Debian package)
    "ffmpeg": (lambda: shutil.which("ffmpeg"), "ffmpeg"),
    "chromium": (CHROMIUM.exists, "chromium"),
    "fluidsynth": (lambda: shutil.which("fluidsynth"), "fluidsynth"),
    "soundfont": (Path("/usr/share/sounds/sf2/TimGM6mb.sf2").exists, "timgm6mb-soundfont"),
}


def require_system(*names: str) -> None:
    """Skip (loudly) when a system package is missing: `make test` installs them as root
    (scripts/system-deps.sh); without root the rest of the suite still runs."""
    missing = [SYSTEM_PACKAGES[n][1] for n in names if not SYSTEM_PACKAGES[n][0]()]
    if missing:
        pytest.skip(f"{MISSING_SYSTEM}: apt-get install -y {' '.join(missing)}")


def pytest_terminal_summary(terminalreporter) -> None:
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if MISSING_SYSTEM in str(report.longrepr)
    ]
    if skipped:
        terminalreporter.write_line(
            f"!!! {len(skipped)} tests SKIPPED because system packages are missing: run "
            "`sudo bash scripts/system-deps.sh` (or see the skip reasons above).",
            red=True,
            bold=True,
        )


def composer_env_vars(settings: Settings) -> dict[str, str]:
    """The COMPOSER_* variables that make a subprocess see the same stores as ``settings``."""
    return {
        "COMPOSER_HOME": str(settings.home),
        "COMPOSER_DEMO_DIR": str(settings.demo_dir),
        "COMPOSER_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "COMPOSER_MLFLOW_ARTIFACT_ROOT": str(settings.mlflow_artifact_root),
        "COMPOSER_DATABASE_URL": settings.database_url,
        "COMPOSER_SPOOL_DIR": str(settings.spool_dir),
    }


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("composer-home")


@pytest.fixture(scope="session")
def make_settings(session_home, tmp_path_factory):
    """Settings sharing the session's feature cache, each with its own MLflow store."""

    def factory(tracking_uri: str | None = None, **overrides) -> Settings:
        store = tmp_path_factory.mktemp("mlflow")
        return Settings(
            home=session_home,
            demo_dir=REPO_ROOT / "data" / "demo",
            mlflow_tracking_uri=tracking_uri or f"sqlite:///{store / 'mlflow.db'}",
            mlflow_artifact_root=store / "artifacts",
            **overrides,
        )

    return factory


@pytest.fixture(scope="session")
def demo_manifest():
    return pipeline.load_manifest(Settings(), "demo")


@pytest.fixture(scope="session")
def trained(make_settings):
    """The main job on the demo corpus into a fresh SQLite MLflow, with every candidate."""
    settings = make_settings()
    result = pipeline.run(settings, "demo")
    return settings, result


@pytest.fixture()
def postgres_url():
    """A fresh PostgreSQL database on the local server, dropped afterwards."""
    name = f"composer_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not reachable: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{POSTGRES_URL}/{name}"
    with psycopg.connect(f"{POSTGRES_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
