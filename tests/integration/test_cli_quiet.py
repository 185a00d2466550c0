"""`composer-id` as a user runs it: real subprocesses, an isolated home, MLflow store and
prediction database, no PYTHONWARNINGS. Ordinary commands print only what was asked for (no
library warnings, no tracebacks), bad input fails in one clear line before slow work starts,
and an unreachable tracking store fails in seconds.

Training uses a slice of the demo corpus (3 composers x 6 works = 18 clips, as ``folder:``),
without the repertoire pack and with the fastest candidate, on the session's feature cache.
Measured on the shared 2-core machine: ~6 min alone with a cold cache; `monitor` (Evidently
over 500 feature columns, ~90 s) and featurizing the 18 clips are most of it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import requests

from core.config import REPO_ROOT, Settings
from tests.conftest import composer_env_vars

pytestmark = pytest.mark.integration

CLI = str(Path(sys.executable).parent / "composer-id")
COMPOSERS = ("Albeniz", "Chopin", "Grieg")  # 12 recordings of 12 different works each
PER_COMPOSER = 6
DAY = datetime(2026, 2, 1, tzinfo=UTC)
NOISE = re.compile(r"warning|traceback", re.IGNORECASE)


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def run(env: dict[str, str], *args: str, timeout: float = 300) -> Run:
    started = time.perf_counter()
    done = subprocess.run(
        [CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )
    return Run(done.returncode, done.stdout, done.stderr, time.perf_counter() - started)


def assert_quiet(result: Run) -> None:
    noisy = [line for line in result.text.splitlines() if NOISE.search(line)]
    assert not noisy, "\n".join(noisy)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed when the block ends: nothing listens there


def base_env(home: Path) -> dict[str, str]:
    """The caller's environment without COMPOSER_* and without warning filters."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COMPOSER_", "MLFLOW_")) and k not in ("PYTHONWARNINGS", "PORT")
    }
    env.update(
        COLUMNS="200",  # rich tables unwrapped, so rows can be read back
        NUMBA_CACHE_DIR=str(home / "numba"),
        MPLCONFIGDIR=str(home / "matplotlib"),
        COMPOSER_USE_PACK="false",
        COMPOSER_MIN_WORKS_PER_COMPOSER="3",  # 6 works per composer, about 4 for training
        COMPOSER_APP_WORKERS="1",
    )
    return env


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory, session_home) -> tuple[Settings, dict[str, str], Path]:
    """Isolated settings and a folder: dataset of three demo composers. Only the feature
    cache (keyed by audio content and feature config) is the session's, so clips another
    test featurized are not featurized again."""
    home = tmp_path_factory.mktemp("cli-quiet")
    shared = session_home / "features"
    shared.mkdir(parents=True, exist_ok=True)
    (home / "features").symlink_to(shared, target_is_directory=True)
    settings = Settings(
        home=home,
        demo_dir=REPO_ROOT / "data" / "demo",
        mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
        mlflow_artifact_root=home / "artifacts",
        database_url=f"sqlite:///{home / 'predictions.db'}",
        spool_dir=home / "spool",
        use_pack=False,
    )
    demo = pd.read_csv(settings.demo_dir / "manifest.csv")
    chosen = demo[demo["composer"].isin(COMPOSERS)].groupby("composer").head(PER_COMPOSER)
    labels = home / "labels.csv"
    pd.DataFrame(
        {
            "file": [str(settings.demo_dir / p) for p in chosen["path"]],
            "composer": chosen["composer"],
            "work": chosen["work"],
        }
    ).to_csv(labels, index=False)
    env = {**base_env(home), **composer_env_vars(settings)}
    return settings, env, labels


@pytest.fixture(scope="module")
def trained_cli(cli_home) -> tuple[Settings, dict[str, str], Run]:
    settings, env, labels = cli_home
    result = run(
        env, "train", "--dataset", f"folder:{labels}", "--candidates", "logistic_regression"
    )
    assert result.code == 0, result.text
    return settings, env, result


def test_train_prints_only_its_tables(trained_cli):
    _, _, result = trained_cli
    assert_quiet(result)
    assert "Successfully registered" not in result.text and "Created version" not in result.text
    assert "Held-out works" in result.stdout and "logistic_regression" in result.stdout


def test_predict_is_quiet(trained_cli, cli_home):
    settings, env, _ = trained_cli
    demo = pd.read_csv(settings.demo_dir / "manifest.csv")
    clips = [str(settings.demo_dir / p) for p in demo[demo["composer"] == "Chopin"]["path"][:1]]
    result = run(env, "predict", *clips, "--json")
    assert result.code == 0, result.text
    assert_quiet(result)
    assert '"results"' in result.stdout


def test_info_shows_champion_alias_and_when_promoted(trained_cli):
    _, env, _ = trained_cli
    result = run(env, "info")
    assert result.code == 0, result.text
    assert_quiet(result)
    row = next(line for line in result.stdout.splitlines() if re.match(r"^[│|]\s*1\s*[│|]", line))
    cells = [cell.strip() for cell in re.split(r"[│|]", row)[1:-1]]
    assert cells[1] == "champion", row  # the alias column (blank before the fix)
    assert re.search(r"promoted \d{4}-\d\d-\d\d \d\d:\d\d: first model", cells[4]), row


def test_monitor_is_quiet(trained_cli):
    settings, env, _ = trained_cli
    _record_traffic(settings)
    result = run(env, "monitor", "--start", DAY.date().isoformat(), "--min-rows", "3")
    assert result.code == 0, result.text
    assert_quiet(result)
    assert DAY.date().isoformat() in result.stdout


def _record_traffic(settings: Settings) -> None:
    """Three answers with feedback, one per composer, back-dated to DAY (as the app would)."""
    from core import registry
    from core.identify import identify
    from core.store import PredictionRecord, PredictionStore

    model, found = registry.load_version(settings)
    demo = pd.read_csv(settings.demo_dir / "manifest.csv")
    store = PredictionStore(settings.database_url, settings.spool_dir)
    try:
        ids = []
        for composer in COMPOSERS:
            for path in demo[demo["composer"] == composer]["path"][:1]:
                verdict = identify(model, settings.demo_dir / path)
                record = PredictionRecord.from_verdict(
                    verdict,
                    "simulation",
                    settings.model_name,
                    str(found.version),
                    model.feature_config.schema_id,
                )
                store.record(record)
                store.add_feedback(record.id, composer)
                ids.append(record.id)
        assert store.backdate(ids, DAY + timedelta(hours=1), timedelta(minutes=5)) == len(ids)
    finally:
        store.close()


def test_serve_starts_quietly(trained_cli):
    _, env, _ = trained_cli
    process = subprocess.Popen(
        [CLI, "serve", "--port", "0"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        url = None
        deadline = time.monotonic() + 180
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            url = found.group(1) if found else None
        assert url, "".join(lines)
        assert requests.get(url, timeout=30).status_code == 200
        time.sleep(3)  # anything the first page load makes it print
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            rest, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            rest, _ = process.communicate()
    text = "".join(lines) + (rest or "")
    noisy = [line for line in text.splitlines() if NOISE.search(line)]
    assert not noisy, text


def test_bad_setting_is_one_line_and_exit_2(cli_home):
    _, env, _ = cli_home
    result = run({**env, "COMPOSER_FEATURES__N_MFCC": "abc"}, "info")
    assert result.code == 2, result.text
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "COMPOSER_FEATURES__N_MFCC" in lines[0] and "integer" in lines[0]
    assert "Traceback" not in result.text


def test_unreachable_tracking_uri_fails_fast(cli_home):
    _, env, _ = cli_home
    settings = cli_home[0]
    clip = str(settings.demo_dir / pd.read_csv(settings.demo_dir / "manifest.csv")["path"][0])
    uri = f"http://127.0.0.1:{closed_port()}"
    result = run({**env, "COMPOSER_MLFLOW_TRACKING_URI": uri}, "predict", clip, timeout=60)
    assert result.seconds < 10, result.seconds
    assert result.code == 1, result.text
    assert uri in result.stderr and "COMPOSER_MLFLOW_TRACKING_URI" in result.stderr
    assert "Traceback" not in result.text


def test_bad_input_is_reported_before_slow_work(cli_home, tmp_path):
    """With an unreachable tracking store, an input error must win: it was checked first."""
    _, env, labels = cli_home
    env = {**env, "COMPOSER_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{closed_port()}"}
    missing = run(env, "predict", str(tmp_path / "missing.ogg"))
    assert missing.code == 2 and "missing.ogg" in missing.stderr, missing.text
    assert "MLflow" not in missing.text
    bad = run(env, "train", "--dataset", f"folder:{labels}", "--candidates", "forest,dummy")
    assert bad.code == 2 and "forest" in bad.stderr and "random_forest" in bad.stderr, bad.text
    dataset = run(env, "train", "--dataset", "jazz")
    assert dataset.code == 2 and "folder:PATH" in dataset.stderr, dataset.text
    folder = run(env, "train", "--dataset", f"folder:{tmp_path / 'nowhere'}")
    assert folder.code == 2 and "does not exist" in folder.stderr, folder.text
    mode = run(env, "simulate", "--mode", "radio")
    assert mode.code == 2 and "lowpass" in mode.stderr, mode.text
    helped = run(env, "train", "--help")
    assert "demo|musicnet|folder:PATH" in helped.stdout, helped.stdout
