"""Keep the champion loaded for a long-running server, and follow the alias when it moves.

Requests call :meth:`ChampionService.current`; at most every ``ttl`` seconds one of them
checks which version the alias points to (a cheap registry call) and, if it changed, loads
the new version and swaps the reference. A swap replaces one attribute, so a request that
already holds the old ``Served`` finishes on it. While no champion exists, or MLflow is
unreachable and nothing was ever loaded, ``current`` raises ``ModelUnavailable`` with a
message that says how to fix it; the server stays up and picks the model up by itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from core import registry
from core.config import Settings
from core.model import ComposerModel
from core.predict import Predictor


class ModelUnavailable(RuntimeError):
    """No model can be served right now (the message says why and what to do)."""


@dataclass(frozen=True)
class Served:
    predictor: Predictor
    name: str
    version: str
    alias: str
    run_id: str

    @property
    def model(self) -> ComposerModel:
        return self.predictor.model

    def card(self) -> dict:
        metrics = self.model.metrics
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "candidate": self.model.candidate,
            "trained_at": self.model.trained_at,
            "recording_accuracy": metrics.get("recording_accuracy"),
            "recording_macro_f1": metrics.get("recording_macro_f1"),
            "composers": list(self.model.labels),
            "feature_schema": self.model.feature_config.schema_id,
        }


class ChampionService:
    def __init__(
        self,
        settings: Settings,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self.ttl = settings.app_model_ttl_s if ttl is None else ttl
        self._clock = clock
        self._served: Served | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()
        self.last_error: str | None = None

    def current(self) -> Served:
        """The model to use for this request (refreshing it first when the TTL has passed)."""
        if self._clock() - self._checked_at >= self.ttl:
            self.refresh()
        served = self._served
        if served is None:
            raise ModelUnavailable(self.last_error or "No model loaded yet.")
        return served

    def refresh(self) -> Served | None:
        """Check the alias now; load and swap if it moved. Never raises: errors are kept in
        ``last_error`` and the previous model keeps serving."""
        if not self._lock.acquire(blocking=self._served is None):
            return self._served  # another request is refreshing; serve what we have
        try:
            self._checked_at = self._clock()
            client = registry.connect(self.settings)
            found = registry.champion(client, self.settings)
            if found is None:
                self.last_error = (
                    f"No model has the alias '{self.settings.champion_alias}' in "
                    f"{self.settings.mlflow_tracking_uri} yet. Train one with `make run` "
                    "(or `composer train`); this page picks it up by itself."
                )
                return self._served
            version = str(found.version)
            if self._served is None or self._served.version != version:
                model = registry.load_registered(self.settings, version)
                self._served = Served(
                    predictor=Predictor(model, self.settings.audio),
                    name=self.settings.model_name,
                    version=version,
                    alias=self.settings.champion_alias,
                    run_id=found.run_id or "",
                )
            self.last_error = None
        except Exception as error:  # any registry failure must not stop serving
            self.last_error = (
                f"Cannot reach the model registry at {self.settings.mlflow_tracking_uri} "
                f"({type(error).__name__}: {error}). Check COMPOSER_MLFLOW_TRACKING_URI and "
                "that the MLflow server is up; retrying automatically."
            )
        finally:
            self._lock.release()
        return self._served
