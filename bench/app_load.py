#!/usr/bin/env python
"""Load test of the Gradio app's ``/identify`` API: N concurrent clients, M requests each.

Each client is a thread with its own ``gradio_client.Client``; every request uploads a demo
clip (``--clip-seconds`` long) and waits for the prediction. Latency is measured per request,
end to end on the client (upload + queue + featurize + predict + response). Two warm-up
requests are sent first and not counted.

The server is, by default, started by this script in a subprocess (``python -m gradio_app``)
on a free 127.0.0.1 port with ``--concurrency`` as its ``app_concurrency``:

* without ``--home``: a temporary home; the demo corpus is trained into it first
  (random_forest + logistic_regression, as in the tests);
* with ``--home DIR``: the champion in DIR's MLflow store is reused (trained there if none).

Predictions go to a temporary SQLite store either way. ``--url`` points at a running app
instead (loopback only). Results are printed and written to ``bench/results/app_load.json``.

Targets (issue): p50 <= 0.5 s and p95 <= 1 s for a 30 s clip with 8 concurrent clients on
2 cores.

    python bench/app_load.py
    python bench/app_load.py --home /tmp/composer-home --concurrency 4
    python bench/app_load.py --url http://127.0.0.1:7860/ --clients 4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
for _var in ("NO_PROXY", "no_proxy"):  # loopback traffic never goes through a proxy
    os.environ[_var] = ",".join(filter(None, [os.environ.get(_var), "127.0.0.1", "localhost"]))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from core.config import REPO_ROOT, Settings  # noqa: E402
from core.datasets import demo  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "bench" / "results" / "app_load.json"
CANDIDATES = ("random_forest", "logistic_regression")
TARGET_P50_S = 0.5
TARGET_P95_S = 1.0
TARGET_CLIENTS = 8
TARGET_CLIP_S = 30.0
TARGET_CORES = 2
WARMUP_REQUESTS = 2
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

console = Console() if sys.stdout.isatty() else Console(width=120)  # logs: no wrapping


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Concurrent clients against the app's /identify API (gradio_client, one client "
            "per thread): p50/p95/max latency, throughput and errors vs the targets "
            f"(p50 <= {TARGET_P50_S:g} s, p95 <= {TARGET_P95_S:g} s for a "
            f"{TARGET_CLIP_S:g} s clip, {TARGET_CLIENTS} clients, {TARGET_CORES} cores)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (threads)")
    parser.add_argument(
        "--requests-per-client", type=int, default=10, help="timed requests per client"
    )
    parser.add_argument(
        "--clip-seconds",
        type=float,
        default=30.0,
        help="length of the uploaded clips (demo clips are trimmed or looped to it)",
    )
    parser.add_argument(
        "--url",
        default=None,
        help="a running app (loopback only); default: start one in a subprocess",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="reuse the champion in this home (trained there if none); "
        "default: train into a temporary home",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="the started app's app_concurrency (predictions at once); default: the setting's",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="the started app's app_workers (prediction processes; 0 = threads in the server "
        "process); default: the setting's",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds allowed per request")
    parser.add_argument(
        "--deadline",
        type=float,
        default=900.0,
        help="seconds allowed for the whole timed phase (unfinished requests are errors)",
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=180.0, help="seconds for the app to come up"
    )
    parser.add_argument(
        "--demo-dir", type=Path, default=REPO_ROOT / "data" / "demo", help="demo corpus"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    args = parser.parse_args(argv)
    for name in ("clients", "requests_per_client"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.clip_seconds <= 0:
        parser.error("--clip-seconds must be positive")
    if args.workers is not None and not 0 <= args.workers <= 32:
        parser.error("--workers must be between 0 and 32")
    if args.concurrency is not None and not 1 <= args.concurrency <= 64:
        parser.error("--concurrency must be between 1 and 64")
    if args.url:
        host = urlsplit(args.url).hostname
        if host not in LOOPBACK:
            parser.error(f"--url must be a loopback address (127.0.0.1), not {host!r}")
        if args.home or args.concurrency or args.workers is not None:
            parser.error(
                "--home, --concurrency and --workers only apply to the app this script starts"
            )
    return args


# ---- clips


def prepare_clips(demo_dir: Path, seconds: float, workdir: Path, limit: int = 32) -> list[Path]:
    """Up to ``limit`` demo clips (round-robin over composers), each exactly ``seconds`` long:
    the shipped ogg when it already has that length, else a trimmed/looped ogg in workdir."""
    manifest = demo.load_manifest(demo_dir).sort_values("recording_id", kind="stable")
    by_composer = [list(group["path"]) for _, group in manifest.groupby("composer", sort=True)]
    picked: list[str] = []
    while len(picked) < min(limit, len(manifest)):
        for paths in by_composer:
            if paths and len(picked) < limit:
                picked.append(paths.pop(0))
    clips = []
    for index, path in enumerate(picked):
        info = sf.info(path)
        if abs(info.duration - seconds) < 0.05:
            clips.append(Path(path))
            continue
        samples, rate = sf.read(path, always_2d=True, dtype="float32")
        frames = round(seconds * rate)
        reps = int(np.ceil(frames / len(samples)))
        out = workdir / f"clip{index:02d}_{Path(path).stem}.ogg"
        sf.write(out, np.tile(samples, (reps, 1))[:frames], rate, format="OGG", subtype="VORBIS")
        clips.append(out)
    return clips


# ---- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_champion(settings: Settings) -> str:
    """The champion's version in ``settings``' MLflow store, training the demo corpus first
    if there is none."""
    from core import pipeline, registry

    existing = registry.champion(registry.connect(settings), settings)
    if existing is not None:
        console.print(f"Reusing {settings.model_name} v{existing.version} ({settings.home}).")
        return str(existing.version)
    console.print(f"No champion in {settings.home}: training the demo corpus ({CANDIDATES}).")
    started = time.perf_counter()
    with console.status("training (featurize + fit + register)"):
        result = pipeline.run(settings, "demo", candidates=CANDIDATES)
    console.print(
        f"Trained v{result.version} in {time.perf_counter() - started:.0f} s "
        f"({result.promotion.reason})."
    )
    return str(registry.champion(registry.connect(settings), settings).version)


@dataclass
class Server:
    url: str
    process: subprocess.Popen | None
    log_path: Path | None
    database_url: str | None


@contextlib.contextmanager
def started_app(args: argparse.Namespace, workdir: Path) -> Iterator[Server]:
    """The app in a subprocess on a free loopback port (its own CPU time, no shared GIL with
    the clients), stopped on exit."""
    home = (args.home or workdir / "home").expanduser().resolve()
    settings = Settings(home=home)
    settings.ensure_dirs()
    ensure_champion(settings)
    port = free_port()
    data = workdir / "app-data"
    database_url = f"sqlite:///{data / 'predictions.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSER_APP_")}
    env.update(
        COMPOSER_HOME=str(home),
        COMPOSER_MLFLOW_TRACKING_URI=str(settings.mlflow_tracking_uri),
        COMPOSER_MLFLOW_ARTIFACT_ROOT=str(settings.mlflow_artifact_root),
        COMPOSER_DATABASE_URL=database_url,
        COMPOSER_SPOOL_DIR=str(data / "spool"),
        COMPOSER_AUDIO_STORE_DIR=str(data / "audio"),
        COMPOSER_KEEP_AUDIO="false",
        COMPOSER_APP_HOST="127.0.0.1",
        COMPOSER_APP_PORT=str(port),
        COMPOSER_APP_SHARE="false",
        GRADIO_ANALYTICS_ENABLED="False",
        PYTHONUNBUFFERED="1",
    )
    if args.concurrency is not None:
        env["COMPOSER_APP_CONCURRENCY"] = str(args.concurrency)
    if args.workers is not None:
        env["COMPOSER_APP_WORKERS"] = str(args.workers)
    data.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "app.log"
    url = f"http://127.0.0.1:{port}/"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gradio_app"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_up(url, process, log_path, args.startup_timeout)
        yield Server(url, process, log_path, database_url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until_up(url: str, process: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with (
        console.status(f"starting the app on {url}"),
        httpx.Client(trust_env=False, timeout=5) as http,
    ):
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(
                    f"The app exited with {process.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if http.get(f"{url}config").status_code == 200:
                    return
            time.sleep(0.5)
    tail = log_path.read_text()[-3000:]
    raise SystemExit(f"The app did not come up within {timeout:g} s:\n{tail}")


# ---- the load


@dataclass
class Outcome:
    client: int
    index: int
    seconds: float
    ok: bool
    composer: str | None = None
    error: str | None = None


@dataclass
class Load:
    outcomes: list[Outcome] = field(default_factory=list)
    wall_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


def make_client(url: str, timeout: float) -> Client:
    """gradio_client opens a new httpx client for every upload and call, and each one loads
    the CA bundle again by default (~25 ms of CPU, three times per request): on a 2-core box
    shared with the app that alone took 0.14 CPU-s per request. One SSLContext, shared,
    keeps verification and drops the reloads (the traffic here is plain HTTP anyway)."""
    return Client(
        url,
        verbose=False,
        download_files=False,
        analytics_enabled=False,
        ssl_verify=_SSL_CONTEXT,  # passed on to httpx as ``verify``  # type: ignore[arg-type]
        httpx_kwargs={"timeout": timeout, "trust_env": False},
    )


_SSL_CONTEXT = ssl.create_default_context()


def one_request(client: Client, clip: Path, timeout: float) -> tuple[float, str]:
    started = time.perf_counter()
    job = client.submit(handle_file(str(clip)), api_name="/identify")
    try:
        result = job.result(timeout=timeout)
    except BaseException:
        job.cancel()
        raise
    seconds = time.perf_counter() - started
    # One typed answer (core.verdict.Verdict as a dict): its first candidate, if any.
    candidates = result.get("candidates") if isinstance(result, dict) else None
    if not candidates:
        raise RuntimeError(f"no composer in the response: {str(result)[:200]}")
    return seconds, candidates[0]["composer"]


def warm_up(url: str, clips: list[Path], timeout: float) -> list[float]:
    client = make_client(url, timeout)
    try:
        return [
            one_request(client, clips[i % len(clips)], timeout)[0] for i in range(WARMUP_REQUESTS)
        ]
    finally:
        client.close()


def run_load(url: str, clips: list[Path], args: argparse.Namespace) -> Load:
    load = Load()
    clients: list[Client | None] = [None] * args.clients
    setup_errors: list[str] = []

    def connect(i: int) -> None:
        try:
            clients[i] = make_client(url, args.timeout)
        except Exception as error:
            setup_errors.append(f"client {i}: {type(error).__name__}: {error}")

    connectors = [threading.Thread(target=connect, args=(i,)) for i in range(args.clients)]
    for thread in connectors:
        thread.start()
    for thread in connectors:
        thread.join(args.timeout)
    if setup_errors or any(c is None for c in clients):
        raise SystemExit(f"Could not connect every client: {setup_errors or 'timeout'}")

    start = threading.Barrier(args.clients + 1, timeout=args.timeout)
    deadline = [0.0]

    def worker(i: int) -> None:
        client = clients[i]
        start.wait()
        for n in range(args.requests_per_client):
            if time.monotonic() > deadline[0]:
                load.add(Outcome(i, n, 0.0, False, error="deadline passed before sending"))
                continue
            clip = clips[(i * args.requests_per_client + n) % len(clips)]
            began = time.perf_counter()
            try:
                seconds, composer = one_request(client, clip, args.timeout)
                load.add(Outcome(i, n, seconds, True, composer))
            except Exception as error:
                message = f"{type(error).__name__}: {error}"[:300]
                load.add(Outcome(i, n, time.perf_counter() - began, False, error=message))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    what = f"{args.clients} clients x {args.requests_per_client} requests"
    with console.status(f"{what} ({args.clip_seconds:g} s clips)"):
        deadline[0] = time.monotonic() + args.deadline
        began = time.perf_counter()
        start.wait()
        for thread in threads:
            thread.join(max(0.0, deadline[0] + args.timeout - time.monotonic()))
        load.wall_s = time.perf_counter() - began
    hung = sum(thread.is_alive() for thread in threads)
    done = {(o.client, o.index) for o in load.outcomes}
    for i in range(args.clients):
        for n in range(args.requests_per_client):
            if (i, n) not in done:
                load.add(Outcome(i, n, 0.0, False, error="no answer before the deadline"))
    if hung:
        console.print(f"[yellow]{hung} client thread(s) still running at the deadline.[/]")
    for client in clients:
        with contextlib.suppress(Exception):
            client.close()
    return load


def server_latencies(database_url: str | None) -> list[float]:
    """The app's own per-prediction latency (decode + features + model), from its store."""
    if not database_url:
        return []
    from core.store import PredictionStore

    try:
        store = PredictionStore(database_url, Path(tempfile.mkdtemp(prefix="spool-")))
        try:
            frame = store.predictions()
        finally:
            store.close()
    except Exception as error:  # informative only
        console.print(f"[yellow]Could not read the app's prediction store: {error}[/]")
        return []
    return [float(v) for v in frame["latency_s"].dropna()]


# ---- report


def cpu_per_request(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    """CPU seconds per timed request, by part: the clients (this process), the app's server
    process and its prediction workers. On one machine they share the cores, so this shows
    where the capacity goes."""
    return {part: (after[part] - before[part]) / n for part in before if part in after and n}


def cpu_snapshot(server_pid: int | None) -> dict[str, float]:
    """Cumulative user + system CPU seconds per part (Linux /proc for the app)."""
    times = os.times()
    parts = {"clients": times.user + times.system}
    if server_pid is not None:
        with contextlib.suppress(OSError):
            parts["app_server"] = _process_cpu(server_pid)
            parts["app_workers"] = sum(_process_cpu(child) for child in _children(server_pid))
    return parts


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    return children


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarize(load: Load, args: argparse.Namespace, server: Server, extra: dict) -> dict:
    ok = [o.seconds for o in load.outcomes if o.ok]
    errors = [o for o in load.outcomes if not o.ok]
    cpus = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cpus
    p50, p95 = percentile(ok, 50), percentile(ok, 95)
    return {
        "clients": args.clients,
        "requests_per_client": args.requests_per_client,
        "requests": len(load.outcomes),
        "ok": len(ok),
        "errors": len(errors),
        "error_samples": sorted({o.error for o in errors if o.error})[:5],
        "clip_seconds": args.clip_seconds,
        "p50_s": p50,
        "p95_s": p95,
        "max_s": max(ok) if ok else None,
        "mean_s": float(np.mean(ok)) if ok else None,
        "wall_s": load.wall_s,
        "throughput_rps": len(ok) / load.wall_s if load.wall_s > 0 else None,
        "cpu_count": cpus,
        "cpus_usable": usable,
        "app_concurrency": (
            (args.concurrency or Settings.model_fields["app_concurrency"].default)
            if server.process
            else None
        ),
        "targets": {
            "p50_s": TARGET_P50_S,
            "p95_s": TARGET_P95_S,
            "clients": TARGET_CLIENTS,
            "clip_seconds": TARGET_CLIP_S,
            "cores": TARGET_CORES,
        },
        "pass": {
            "p50": p50 is not None and not errors and p50 <= TARGET_P50_S,
            "p95": p95 is not None and not errors and p95 <= TARGET_P95_S,
        },
        "composers_predicted": sorted({o.composer for o in load.outcomes if o.composer}),
        "url": server.url,
        "started_app": server.process is not None,
        "command": shlex.join([sys.executable, *sys.argv]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "latencies_s": sorted(ok),
        **extra,
    }


def fmt(value: float | None, unit: str = " s") -> str:
    return "n/a" if value is None else f"{value:.3f}{unit}"


def verdict(passed: bool) -> str:
    return "[bold green]PASS[/]" if passed else "[bold red]MISS[/]"


def print_report(summary: dict) -> None:
    table = Table(
        title=f"/identify under load ({summary['url']})",
        caption=(
            f"{summary['clip_seconds']:g} s clips; app_concurrency="
            f"{summary['app_concurrency'] if summary['app_concurrency'] is not None else '?'}; "
            f"{summary['cpu_count']} CPUs ({summary['cpus_usable']} usable); "
            f"latency = client-side end to end (upload + queue + predict)"
        ),
    )
    for column in ("metric", "value", "target", "result"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    failed = summary["errors"] > 0
    table.add_row("clients", str(summary["clients"]), str(TARGET_CLIENTS), "")
    table.add_row("requests (timed)", str(summary["requests"]), "", "")
    table.add_row(
        "p50 latency",
        fmt(summary["p50_s"]),
        f"<= {TARGET_P50_S:g} s",
        verdict(summary["pass"]["p50"]),
    )
    table.add_row(
        "p95 latency",
        fmt(summary["p95_s"]),
        f"<= {TARGET_P95_S:g} s",
        verdict(summary["pass"]["p95"]),
    )
    table.add_row("max latency", fmt(summary["max_s"]), "", "")
    table.add_row("throughput", fmt(summary["throughput_rps"], " req/s"), "", "")
    table.add_row(
        "errors", str(summary["errors"]), "0", "[red]errors[/]" if failed else "[green]none[/]"
    )
    table.add_row("CPU count", str(summary["cpu_count"]), str(TARGET_CORES), "")
    server = summary.get("server_latency_s") or {}
    if server.get("p50") is not None:
        table.add_row(
            "server predict p50 / p95",
            f"{server['p50']:.3f} / {server['p95']:.3f} s",
            "",
            "",
        )
    cpu = summary.get("cpu_s_per_request") or {}
    if "app_server" in cpu:
        table.add_row(
            "CPU s per request: server + workers",
            f"{cpu['app_server']:.3f} + {cpu['app_workers']:.3f}",
            "",
            "",
        )
    if "clients" in cpu:
        table.add_row("CPU s per request: clients", f"{cpu['clients']:.3f}", "", "")
    console.print(table)
    conditions = (
        summary["clients"] == TARGET_CLIENTS
        and abs(summary["clip_seconds"] - TARGET_CLIP_S) < 1e-9
        and summary["cpus_usable"] == TARGET_CORES
    )
    if not conditions:
        console.print(
            f"[yellow]Note: the targets are stated for {TARGET_CLIENTS} clients, "
            f"{TARGET_CLIP_S:g} s clips and {TARGET_CORES} cores; this run differs.[/]"
        )
    for sample in summary["error_samples"]:
        console.print(f"[red]error:[/] {sample}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="app-load-") as tmp:
        workdir = Path(tmp)
        clips = prepare_clips(args.demo_dir, args.clip_seconds, workdir)
        console.print(f"{len(clips)} clips of {args.clip_seconds:g} s from {args.demo_dir}.")
        with contextlib.ExitStack() as stack:
            if args.url:
                server = Server(args.url, None, None, None)
            else:
                server = stack.enter_context(started_app(args, workdir))
            warm = warm_up(server.url, clips, args.timeout)
            console.print(
                f"Warm-up ({WARMUP_REQUESTS} requests, not counted): "
                + ", ".join(f"{s:.2f} s" for s in warm)
            )
            pid = server.process.pid if server.process else None
            cpu_before = cpu_snapshot(pid)
            load = run_load(server.url, clips, args)
            cpu_after = cpu_snapshot(pid)
            server_times = server_latencies(server.database_url)
        timed_server = server_times[WARMUP_REQUESTS:]  # oldest first: drop the warm-up
        extra = {
            "warmup_s": warm,
            "server_latency_s": {
                "n": len(timed_server),
                "p50": percentile(timed_server, 50),
                "p95": percentile(timed_server, 95),
                "max": max(timed_server) if timed_server else None,
            },
        }
        extra["cpu_s_per_request"] = cpu_per_request(cpu_before, cpu_after, len(load.outcomes))
        summary = summarize(load, args, server, extra)
    print_report(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"Wrote {args.out}")
    return 0 if summary["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
