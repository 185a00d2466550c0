"""The platform's processes: start a service in its own process group, find it again from
its pid file (guarding against pid reuse), probe its health, measure its memory, signal and
wait for its groups."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import psutil

from core.config import REPO_ROOT
from scripts.platform_config import HOST, Platform, Service


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


def wait_gone(
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


def pgid(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except OSError:
        return None


def signal_groups(pgids: set[int], sig: signal.Signals) -> None:
    for pgid in pgids:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            continue
