"""The whole platform on one machine, without Docker: MLflow server, Airflow and the app.

    python scripts/platform.py up       # start what is not running, wait until healthy
    python scripts/platform.py status   # running?, pid, URL, health, memory (--json)
    python scripts/platform.py down     # stop exactly what `up` started

* **mlflow**: ``mlflow server`` (1 worker, no job runner) on the configured backend store
  (``COMPOSER_MLFLOW_TRACKING_URI``, default ``sqlite:///HOME/mlflow.db``), serving artifacts
  from ``HOME/mlartifacts``. Airflow's tasks and the app use it as their tracking URI.
* **airflow**: ``airflow standalone`` (api-server, scheduler, dag-processor, triggerer) with
  ``AIRFLOW_HOME=HOME/airflow``, this repo's ``dags/`` and ``plugins/``, LocalExecutor and a
  low parallelism. The ``admin`` password is in ``HOME/airflow/simple_auth_manager_passwords
  .json.generated``.
* **app**: ``python -m gradio_app``.

Each service runs in its own process group (its own session), logs to ``HOME/logs/NAME.log``
and has a pid file ``HOME/run/NAME.pid``. ``down`` signals those groups (and the groups their
descendants made, such as Airflow's task processes): SIGTERM, a grace period, then SIGKILL.

HOME is ``COMPOSER_HOME`` (default ``var/``). Ports: ``COMPOSER_MLFLOW_PORT`` (5000),
``COMPOSER_AIRFLOW_PORT`` (8080), ``COMPOSER_APP_PORT`` or ``PORT`` (7860).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python scripts/platform.py`, this directory comes first on sys.path, and this file
# would shadow the standard library's `platform` module for everything imported below.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import psutil

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


def configure() -> Platform:
    """Everything from Settings (COMPOSER_*) and the port variables; nothing is started."""
    settings = Settings()
    home = settings.home
    mlflow_port = port_setting("COMPOSER_MLFLOW_PORT", 5000)
    airflow_port = port_setting("COMPOSER_AIRFLOW_PORT", 8080)
    app_port = settings.app_port  # COMPOSER_APP_PORT or PORT, default 7860
    if not app_port:
        raise SystemExit("COMPOSER_APP_PORT/PORT=0: the platform needs a fixed app port.")

    backend = settings.mlflow_tracking_uri
    if backend.startswith(("http://", "https://")):  # that is a server, not a store
        backend = f"sqlite:///{home / 'mlflow.db'}"
    tracking = f"http://{HOST}:{mlflow_port}"

    base = {
        **os.environ,
        "COMPOSER_HOME": str(home),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    }
    # Airflow's tasks and the app talk to the server, so artifacts go through it too.
    clients = {
        **base,
        "COMPOSER_MLFLOW_TRACKING_URI": tracking,
        "COMPOSER_MLFLOW_UI_URL": os.environ.get("COMPOSER_MLFLOW_UI_URL") or tracking,
        "COMPOSER_APP_URL": os.environ.get("COMPOSER_APP_URL") or f"http://{HOST}:{app_port}",
        "COMPOSER_AIRFLOW_URL": os.environ.get("COMPOSER_AIRFLOW_URL")
        or f"http://{HOST}:{airflow_port}",
        "COMPOSER_REPORTS_URL": os.environ.get("COMPOSER_REPORTS_URL")
        or f"http://{HOST}:{settings.reports_port}",
    }
    airflow_home = home / "airflow"
    airflow_env = {
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
        "AIRFLOW__API__PORT": str(airflow_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{HOST}:{airflow_port}/execution/",
    }
    services = [
        Service(
            name="mlflow",
            port=mlflow_port,
            command=[
                str(BIN / "mlflow"),
                "server",
                "--host",
                HOST,
                "--port",
                str(mlflow_port),
                "--workers",
                "1",
                "--backend-store-uri",
                backend,
                "--serve-artifacts",
                "--artifacts-destination",
                str(settings.mlflow_artifact_root),
            ],
            env={**base, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            health_path="/health",
            marker="mlflow",
            startup_s=90,
            notes=[f"backend store {backend}", f"artifacts {settings.mlflow_artifact_root}"],
        ),
        Service(
            name="airflow",
            port=airflow_port,
            command=[str(BIN / "airflow"), "standalone"],
            env=airflow_env,
            health_path="/api/v2/monitor/health",
            marker="airflow",
            startup_s=180,
            check=airflow_health,
            notes=[f"user admin, password in {airflow_home / PASSWORD_FILE}"],
        ),
        Service(
            name="app",
            port=app_port,
            command=[sys.executable, "-m", "gradio_app", "--port", str(app_port)],
            env=clients,
            health_path="/",
            marker="gradio_app",
            startup_s=180,
        ),
        Service(
            name="reports",
            port=settings.reports_port,
            command=[sys.executable, "-m", "reports_app", "--port", str(settings.reports_port)],
            env=clients,
            health_path="/health",
            marker="reports_app",
            startup_s=60,
        ),
    ]
    return Platform(home=home, services=services)


# ----------------------------------------------------------------------------- processes


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def leader(platform: Platform, service: Service) -> psutil.Process | None:
    """The live group leader this service's pid file names, else None."""
    pid = read_pid(platform.pid_file(service))
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        if not alive(process) or os.getpgid(pid) != pid:
            return None
        command = " ".join(process.cmdline())  # briefly empty while a process starts
        if command and service.marker not in command:
            return None
    except (psutil.Error, OSError):
        return None
    return process


def members(head: psutil.Process) -> list[psutil.Process]:
    """The leader's process group plus every descendant (Airflow's task processes make
    their own groups): what `up` started for this service."""
    found = {head.pid: head}
    with contextlib.suppress(psutil.Error):
        found.update({p.pid: p for p in head.children(recursive=True)})
    found.update({p.pid: p for p in in_groups({head.pid}) if p.pid not in found})
    return [p for p in found.values() if alive(p)]


def in_groups(pgids: set[int]) -> list[psutil.Process]:
    """Every live process whose process group is one of ``pgids``."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(process.pid) in pgids and alive(process):
                found.append(process)
    return found


def memory_bytes(processes: list[psutil.Process]) -> tuple[int, int | None]:
    """(RSS, PSS) summed over the processes. RSS counts pages shared between forked processes
    once per process (it overstates the total); PSS splits them (None where unreadable)."""
    rss, pss = 0, 0
    for process in processes:
        try:
            rss += process.memory_info().rss
        except psutil.Error:
            continue
        try:
            pss = None if pss is None else pss + process.memory_full_info().pss
        except (psutil.Error, AttributeError):
            pss = None
    return rss, pss


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def probe(service: Service, timeout: float = 10.0) -> str | None:
    """None when healthy, else a short reason (a busy 2-core machine can take seconds)."""
    try:
        with urllib.request.urlopen(service.health_url, timeout=timeout) as response:
            body = response.read()
            if response.status != 200:
                return f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"unreachable ({getattr(error, 'reason', error)})"
    return service.check(body)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ----------------------------------------------------------------------------- commands


def start(platform: Platform, service: Service) -> bool:
    """Start one service unless it already runs. True when it was started now."""
    running = leader(platform, service)
    if running:
        print(f"{service.name:8} already running (pid {running.pid}), not starting another")
        return False
    platform.pid_file(service).unlink(missing_ok=True)  # stale
    if port_in_use(service.port):
        raise SystemExit(
            f"{service.name}: port {service.port} is already in use by something this platform "
            "did not start. Stop it or choose another port (COMPOSER_MLFLOW_PORT, "
            "COMPOSER_AIRFLOW_PORT, COMPOSER_APP_PORT)."
        )
    log = platform.log(service)
    with log.open("ab") as out:
        out.write(f"\n=== {datetime.now().isoformat(timespec='seconds')} start ===\n".encode())
        out.flush()
        process = psutil.Popen(
            service.command,
            cwd=REPO_ROOT,
            env=service.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # own session and process group: `down` stops the group
        )
    platform.pid_file(service).write_text(f"{process.pid}\n")
    print(f"{service.name:8} started (pid {process.pid}), log {log}")
    return True


def wait_healthy(platform: Platform, services: list[Service], timeout: float | None) -> bool:
    """Bounded wait until every service answers its health check (or its process dies)."""
    started = time.monotonic()
    pending = {s.name: s for s in services}
    while pending:
        for name, service in list(pending.items()):
            if leader(platform, service) is None:
                print(f"{name:8} FAILED: its process exited. Last log lines:")
                print(tail(platform.log(service)))
                return False
            reason = probe(service)
            waited = time.monotonic() - started
            if reason is None:
                print(f"{name:8} healthy after {waited:.0f} s")
                del pending[name]
            elif waited > (timeout or service.startup_s):
                print(f"{name:8} NOT healthy after {waited:.0f} s: {reason}. Last log lines:")
                print(tail(platform.log(service)))
                return False
        if pending:
            time.sleep(1)
    return True


def up(platform: Platform, timeout: float | None) -> int:
    for folder in (platform.home, platform.log_dir, platform.run_dir):
        folder.mkdir(parents=True, exist_ok=True)
    mlflow, *others = platform.services
    # MLflow first: the app loads its model from it and Airflow's tasks log to it.
    start(platform, mlflow)
    if not wait_healthy(platform, [mlflow], timeout):
        print("\nThe platform is not up. `down` stops what did start.")
        return 1
    for service in others:
        start(platform, service)
    if not wait_healthy(platform, others, timeout):
        print("\nThe platform is not up. `down` stops what did start.")
        return 1
    print(f"\nPlatform up (home: {platform.home})")
    summary(platform)
    return 0


def summary(platform: Platform) -> None:
    for service in platform.services:
        print(f"  {service.name:8} {service.url:24} log {platform.log(service)}")
        for note in service.notes:
            print(f"  {'':8} {'':24} {note}")
    print("  Stop everything with `make down` (or `python scripts/platform.py down`).")


def down(platform: Platform, grace: float) -> int:
    """SIGTERM every group `up` started (and its descendants' groups), wait, then SIGKILL."""
    targets: dict[str, list[psutil.Process]] = {}
    for service in reversed(platform.services):
        head = leader(platform, service)
        if head is None:
            print(f"{service.name:8} not running")
            platform.pid_file(service).unlink(missing_ok=True)
            continue
        targets[service.name] = members(head)
    groups = {name: {_pgid(p) for p in procs} - {None} for name, procs in targets.items()}
    for name, pgids in groups.items():
        print(f"{name:8} stopping (process groups {sorted(pgids)})")
        _signal_groups(pgids, signal.SIGTERM)
    everything = [p for procs in targets.values() for p in procs]
    all_groups = set().union(*groups.values()) if groups else set()
    remaining = _wait_gone(everything, all_groups, grace)
    if remaining:
        print(f"         {len(remaining)} process(es) still alive after {grace:.0f} s: SIGKILL")
        _signal_groups(all_groups, signal.SIGKILL)
        for process in remaining:
            with contextlib.suppress(psutil.Error):
                process.kill()
        remaining = _wait_gone(remaining, all_groups, 10)
    for service in platform.services:
        if service.name in targets:
            platform.pid_file(service).unlink(missing_ok=True)
            print(f"{service.name:8} stopped")
    if remaining:
        print(f"could not stop: {[p.pid for p in remaining]}")
        return 1
    return 0


def _wait_gone(
    processes: list[psutil.Process], pgids: set[int], timeout: float
) -> list[psutil.Process]:
    """Wait until none of the processes, and nothing in the groups, is alive (zombies count
    as gone: in a container nobody may reap them). Returns the survivors."""
    deadline = time.monotonic() + timeout
    while True:
        survivors = {p.pid: p for p in [*processes, *in_groups(pgids)] if alive(p)}
        if not survivors or time.monotonic() > deadline:
            return list(survivors.values())
        time.sleep(0.3)


def _pgid(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except OSError:
        return None


def _signal_groups(pgids: set[int], sig: signal.Signals) -> None:
    for pgid in pgids:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            continue


def collect_status(platform: Platform) -> dict:
    rows = []
    for service in platform.services:
        head = leader(platform, service)
        procs = members(head) if head else []
        rss, pss = memory_bytes(procs)
        health = probe(service) if head else "stopped"
        rows.append(
            {
                "name": service.name,
                "running": head is not None,
                "pid": head.pid if head else None,
                "url": service.url,
                "healthy": head is not None and health is None,
                "health": health or "ok",
                "processes": len(procs),
                "pids": sorted(p.pid for p in procs),
                "process_groups": sorted({_pgid(p) for p in procs} - {None}),
                "rss_mb": round(rss / 2**20, 1),
                "pss_mb": None if pss is None else round(pss / 2**20, 1),
                "log": str(platform.log(service)),
            }
        )
    return {
        "home": str(platform.home),
        "services": rows,
        "total_rss_mb": round(sum(r["rss_mb"] for r in rows), 1),
        "total_pss_mb": None
        if any(r["pss_mb"] is None for r in rows)
        else round(sum(r["pss_mb"] for r in rows), 1),
        "airflow_password_file": str(platform.home / "airflow" / PASSWORD_FILE),
    }


def status(platform: Platform, as_json: bool) -> int:
    report = collect_status(platform)
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"{'service':8} {'state':8} {'pid':>8} {'url':24} {'procs':>5} {'RSS MB':>8} "
        f"{'PSS MB':>8}  health"
    )
    for row in report["services"]:
        state = "running" if row["running"] else "stopped"
        print(
            f"{row['name']:8} {state:8} {row['pid'] or '-':>8} {row['url']:24} "
            f"{row['processes']:>5} {row['rss_mb']:>8.1f} {_mb(row['pss_mb']):>8}  {row['health']}"
        )
    print(
        f"{'total':8} {'':8} {'':>8} {'':24} {'':>5} {report['total_rss_mb']:>8.1f} "
        f"{_mb(report['total_pss_mb']):>8}"
    )
    print("(RSS counts memory shared by forked processes in each of them; PSS splits it.)")
    print(f"\nhome {report['home']}; Airflow admin password in {report['airflow_password_file']}")
    return 0


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/platform.py",
        description="Run the platform (MLflow server, Airflow, the app) on this machine.",
        epilog="HOME is COMPOSER_HOME (default var/). Ports: COMPOSER_MLFLOW_PORT (5000), "
        "COMPOSER_AIRFLOW_PORT (8080), COMPOSER_APP_PORT or PORT (7860).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up_parser = commands.add_parser(
        "up",
        help="Start what is not running and wait until healthy.",
        description="Start MLflow, then Airflow and the app (skipping any already running), "
        "each in its own process group, and wait (bounded) for their health checks.",
    )
    up_parser.add_argument(
        "--timeout", type=float, help="Seconds to wait for health (default: per service)."
    )
    down_parser = commands.add_parser(
        "down",
        help="Stop what `up` started.",
        description="SIGTERM each service's process group (and its descendants' groups), "
        "wait, SIGKILL what is left, remove the pid files.",
    )
    down_parser.add_argument("--grace", type=float, default=30, help="Seconds before SIGKILL.")
    status_parser = commands.add_parser(
        "status",
        help="Each service: running?, pid, URL, health, memory.",
        description="Each service: running or stopped, pid, URL, health check, number of "
        "processes and resident memory (RSS) of its process tree; the platform total.",
    )
    status_parser.add_argument("--json", action="store_true", help="Machine-readable output.")
    args = parser.parse_args(argv)

    platform = configure()
    if args.command == "up":
        return up(platform, args.timeout)
    if args.command == "down":
        return down(platform, args.grace)
    return status(platform, args.json)


if __name__ == "__main__":
    sys.exit(main())
