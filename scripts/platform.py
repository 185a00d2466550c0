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
# would shadow the standard library's `platform` module for everything imported below: put
# the repository there instead, so the parts import as `scripts.platform_*`.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import contextlib
import json
import signal

import psutil

from core.monitor import AIRFLOW_PASSWORD_FILE as PASSWORD_FILE
from scripts.platform_config import Platform, configure
from scripts.platform_procs import (
    leader,
    members,
    memory_bytes,
    pgid,
    probe,
    signal_groups,
    start,
    wait_gone,
    wait_healthy,
)


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
    groups = {name: {pgid(p) for p in procs} - {None} for name, procs in targets.items()}
    for name, pgids in groups.items():
        print(f"{name:8} stopping (process groups {sorted(pgids)})")
        signal_groups(pgids, signal.SIGTERM)
    everything = [p for procs in targets.values() for p in procs]
    all_groups = set().union(*groups.values()) if groups else set()
    remaining = wait_gone(everything, all_groups, grace)
    if remaining:
        print(f"         {len(remaining)} process(es) still alive after {grace:.0f} s: SIGKILL")
        signal_groups(all_groups, signal.SIGKILL)
        for process in remaining:
            with contextlib.suppress(psutil.Error):
                process.kill()
        remaining = wait_gone(remaining, all_groups, 10)
    for service in platform.services:
        if service.name in targets:
            platform.pid_file(service).unlink(missing_ok=True)
            print(f"{service.name:8} stopped")
    if remaining:
        print(f"could not stop: {[p.pid for p in remaining]}")
        return 1
    return 0


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
                "process_groups": sorted({pgid(p) for p in procs} - {None}),
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
