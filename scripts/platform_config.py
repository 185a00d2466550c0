"""The platform's services (MLflow server, Airflow standalone, the app): their commands,
environments, ports and health checks, from Settings and the port variables. Starts nothing
(``scripts/platform_procs.py`` does; ``scripts/platform.py`` is the command line)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.config import REPO_ROOT, Settings
from core.monitor import AIRFLOW_PASSWORD_FILE as PASSWORD_FILE

HOST = "127.0.0.1"
BIN = Path(sys.executable).parent
AIRFLOW_PARALLELISM = "4"  # standalone otherwise starts 32 idle workers (~1.4 GB)


@dataclass
class Service:
    name: str
    port: int
    command: list[str]
    env: dict[str, str]
    health_path: str
    marker: str  # expected in the group leader's command line (guards against pid reuse)
    startup_s: float  # bounded wait for health
    check: Callable[[bytes], str | None] = field(default=lambda body: None)
    notes: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def health_url(self) -> str:
        return self.url + self.health_path


@dataclass
class Platform:
    home: Path
    services: list[Service]

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    def log(self, service: Service) -> Path:
        return self.log_dir / f"{service.name}.log"

    def pid_file(self, service: Service) -> Path:
        return self.run_dir / f"{service.name}.pid"


def port_setting(variable: str, default: int) -> int:
    raw = os.environ.get(variable)
    port = int(raw) if raw else default
    if not 0 < port < 65536:
        raise SystemExit(f"{variable}={raw!r}: the platform needs a fixed port (1-65535).")
    return port


def airflow_health(body: bytes) -> str | None:
    """None when every Airflow component reports healthy, else what is not."""
    try:
        report = json.loads(body)
    except ValueError:
        return "unreadable health report"
    bad = [
        f"{part}: {(info or {}).get('status')}"
        for part, info in report.items()
        if isinstance(info, dict) and info.get("status") != "healthy"
    ]
    return ", ".join(bad) or None


@dataclass(frozen=True)
class Ports:
    mlflow: int
    airflow: int
    app: int
    reports: int


def ports(settings: Settings) -> Ports:
    app_port = settings.app_port  # COMPOSER_APP_PORT or PORT, default 7860
    if not app_port:
        raise SystemExit("COMPOSER_APP_PORT/PORT=0: the platform needs a fixed app port.")
    return Ports(
        mlflow=port_setting("COMPOSER_MLFLOW_PORT", 5000),
        airflow=port_setting("COMPOSER_AIRFLOW_PORT", 8080),
        app=app_port,
        reports=settings.reports_port,
    )


def base_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "COMPOSER_HOME": str(home),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    }


def client_env(base: dict[str, str], port: Ports) -> dict[str, str]:
    """Airflow's tasks and the app talk to the server, so artifacts go through it too."""
    tracking = f"http://{HOST}:{port.mlflow}"
    return {
        **base,
        "COMPOSER_MLFLOW_TRACKING_URI": tracking,
        "COMPOSER_MLFLOW_UI_URL": os.environ.get("COMPOSER_MLFLOW_UI_URL") or tracking,
        "COMPOSER_APP_URL": os.environ.get("COMPOSER_APP_URL") or f"http://{HOST}:{port.app}",
        "COMPOSER_AIRFLOW_URL": os.environ.get("COMPOSER_AIRFLOW_URL")
        or f"http://{HOST}:{port.airflow}",
        "COMPOSER_REPORTS_URL": os.environ.get("COMPOSER_REPORTS_URL")
        or f"http://{HOST}:{port.reports}",
    }


def airflow_env(clients: dict[str, str], airflow_home: Path, port: int) -> dict[str, str]:
    return {
        # Defaults: the caller's environment wins (e.g. another executor or parallelism).
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": AIRFLOW_PARALLELISM,
        # featurize -> (Asset) -> train works out of the box; pause DAGs in the UI if needed.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        **clients,
        # Layout and wiring: always ours.
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{port}/execution/",
    }


def mlflow_service(settings: Settings, port: int, base: dict[str, str]) -> Service:
    backend = settings.mlflow_tracking_uri
    if backend.startswith(("http://", "https://")):  # that is a server, not a store
        backend = f"sqlite:///{settings.home / 'mlflow.db'}"
    artifacts = str(settings.mlflow_artifact_root)
    command = [
        str(BIN / "mlflow"), "server", "--host", HOST, "--port", str(port),
        "--workers", "1", "--backend-store-uri", backend,
        "--serve-artifacts", "--artifacts-destination", artifacts,
    ]  # fmt: skip
    return Service(
        name="mlflow",
        port=port,
        command=command,
        env={**base, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        health_path="/health",
        marker="mlflow",
        startup_s=90,
        notes=[f"backend store {backend}", f"artifacts {artifacts}"],
    )


def configure() -> Platform:
    """Everything from Settings (COMPOSER_*) and the port variables; nothing is started."""
    settings = Settings()
    home = settings.home
    port = ports(settings)
    base = base_env(home)
    clients = client_env(base, port)
    airflow_home = home / "airflow"
    services = [
        mlflow_service(settings, port.mlflow, base),
        Service(
            name="airflow",
            port=port.airflow,
            command=[str(BIN / "airflow"), "standalone"],
            env=airflow_env(clients, airflow_home, port.airflow),
            health_path="/api/v2/monitor/health",
            marker="airflow",
            startup_s=180,
            check=airflow_health,
            notes=[f"user admin, password in {airflow_home / PASSWORD_FILE}"],
        ),
        Service(
            name="app",
            port=port.app,
            command=[sys.executable, "-m", "gradio_app", "--port", str(port.app)],
            env=clients,
            health_path="/",
            marker="gradio_app",
            startup_s=180,
        ),
        Service(
            name="reports",
            port=port.reports,
            command=[sys.executable, "-m", "reports_app", "--port", str(port.reports)],
            env=clients,
            health_path="/health",
            marker="reports_app",
            startup_s=60,
        ),
    ]
    return Platform(home=home, services=services)


# ----------------------------------------------------------------------------- processes
