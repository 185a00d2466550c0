"""Predictions in worker processes, so a server uses every core and survives a crash.

In threads, two predictions at once share one interpreter lock: on 2 cores the app used
1.65 of them and each prediction cost ~25% more CPU than alone (``bench/app_load.py``). In
worker processes each prediction has a core to itself. A worker that dies (a decoder
segfault, the OOM killer) costs only the request it was running: the pool is rebuilt and the
server keeps answering.

Workers load the model the server chose, by registry version, through the same
``registry.load_registered`` as :class:`core.serving.ChampionService`, and keep the newest
one; a request that was sent with the old version finishes on the old version. The server
process itself then holds only the model card (``ChampionService(load_model=False)``).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from core import registry
from core.config import FeatureConfig, Settings
from core.featurize import warm_up
from core.identify import identify
from core.model import ComposerModel
from core.serving import ModelUnavailable, Served
from core.verdict import Verdict


class WorkerCrashed(RuntimeError):
    """The process analysing this input died; the pool was restarted for the next request."""


class PredictionWorkers:
    """``identify(served, path)`` in ``processes`` worker processes (0: in this process,
    with the model ``served`` holds)."""

    def __init__(self, settings: Settings, processes: int | None = None):
        self.settings = settings
        self.processes = settings.app_workers if processes is None else processes
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def start(self, served: Served | None = None) -> PredictionWorkers:
        """Start the workers now (and load ``served``'s version in them), not on the first
        request; call after the parent has warmed the numba cache (see ``warm_up``)."""
        if self.processes:
            with self._lock:
                self._pool = self._pool or self._new_pool(served.version if served else None)
                # processes start on demand: as many tasks at once start them all, now
                started = [self._pool.submit(os.getpid) for _ in range(self.processes)]
                for task in started:
                    task.result()
        return self

    def identify(self, served: Served, path: str | Path) -> Verdict:
        if not self.processes:
            return served.identify(path, self.settings)
        pool = self._running_pool()
        try:
            task = pool.submit(_identify, served.version, str(path))
        except BrokenProcessPool:  # broken before this request: start afresh, not its fault
            self._replace(pool)
            pool = self._running_pool()
            task = pool.submit(_identify, served.version, str(path))
        try:
            return task.result().model_copy(update={"model": served.label})
        except BrokenProcessPool as error:
            self._replace(pool)
            raise WorkerCrashed(
                "The analysis of this file crashed its worker process (the file may be "
                "malformed in a way the decoder does not survive). The server restarted the "
                "worker and keeps serving; try another file or convert this one to WAV."
            ) from error

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _running_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = self._new_pool(None)
            return self._pool

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def _new_pool(self, version: str | None) -> ProcessPoolExecutor:
        # spawn: the server has threads running, and forking a threaded process can deadlock
        return ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.settings, version),
        )


# ---- inside a worker process

_settings: Settings | None = None
_models: dict[str, ComposerModel] = {}  # version -> model; the two newest (a swap)


def _start_worker(settings: Settings, version: str | None) -> None:
    global _settings
    _settings = settings
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    if version is not None:
        _model_for(version)
    else:
        warm_up(FeatureConfig())


def _exit_with_parent(parent: int) -> None:
    """A server stopped without shutting the pool down (SIGKILL) would leave its workers
    waiting forever: each watches its parent and leaves with it."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _model_for(version: str) -> ComposerModel:
    if version not in _models:
        assert _settings is not None
        try:
            model = registry.load_registered(_settings, version)
        except Exception as error:  # the server loaded it a moment ago: say so, plainly
            raise ModelUnavailable(
                f"A prediction worker could not load {_settings.model_name} v{version} from "
                f"{_settings.mlflow_tracking_uri} ({type(error).__name__}: {error}); "
                "the next request tries again."
            ) from None
        warm_up(model.feature_config)
        _models[version] = model
        for old in list(_models)[:-2]:
            del _models[old]
    return _models[version]


def _identify(version: str, path: str) -> Verdict:
    assert _settings is not None
    return identify(
        _model_for(version),
        path,
        limits=_settings.audio,
        not_sure_below=_settings.not_sure_below,
    )
