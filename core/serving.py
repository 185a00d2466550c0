"""Keep track of the champion for a long-running server, and follow the alias when it moves.

Requests call :meth:`ChampionService.current`; at most every ``ttl`` seconds one of them
checks which version the alias points to (a cheap registry call) and, if it changed, swaps
the reference. A swap replaces one attribute, so a request that already holds the old
``Served`` finishes on it. While no champion exists, or MLflow is unreachable and nothing was
ever found, ``current`` raises ``ModelUnavailable`` with a message that says how to fix it;
the server stays up and picks the model up by itself.

The model is loaded once per process that predicts: a server whose predictions run in worker
processes (``core.workers``) only needs the model card, which is read from the registry (the
version's run: parameters, metrics, tags); the model itself is then loaded by the workers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion

from core import registry
from core.config import FeatureConfig, Settings
from core.identify import identify
from core.model import ComposerModel
from core.verdict import Verdict


class ModelUnavailable(RuntimeError):
    """No model can be served right now (the message says why and what to do)."""


@dataclass(frozen=True)
class ModelCard:
    """What a page shows about the served model, and what a record needs from it."""

    name: str
    version: str
    alias: str
    run_id: str
    candidate: str
    trained_at: str
    recording_accuracy: float | None
    recording_macro_f1: float | None
    composers: tuple[str, ...]
    feature_config: FeatureConfig
    ece: float | None = None  # expected calibration error on held-out works (after calibration)

    @property
    def feature_schema(self) -> str:
        return self.feature_config.schema_id

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "candidate": self.candidate,
            "trained_at": self.trained_at,
            "recording_accuracy": self.recording_accuracy,
            "recording_macro_f1": self.recording_macro_f1,
            "composers": list(self.composers),
            "feature_schema": self.feature_schema,
            "ece": self.ece,
        }

    @classmethod
    def of_model(cls, model: ComposerModel, found: ModelVersion, settings: Settings) -> ModelCard:
        return cls(
            name=settings.model_name,
            version=str(found.version),
            alias=settings.champion_alias,
            run_id=found.run_id or "",
            candidate=model.candidate,
            trained_at=model.trained_at,
            recording_accuracy=model.metrics.get("recording_accuracy"),
            recording_macro_f1=model.metrics.get("recording_macro_f1"),
            composers=tuple(model.labels),
            feature_config=model.feature_config,
            ece=model.metrics.get("ece"),
        )

    @classmethod
    def from_registry(
        cls, client: MlflowClient, found: ModelVersion, settings: Settings
    ) -> ModelCard | None:
        """The card from the version's training run, without loading the model (None when the
        run lacks what is needed, e.g. logged by an older version of the code)."""
        if not found.run_id:
            return None
        run = client.get_run(found.run_id)
        params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
        prefix = "features."
        config = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
        if "candidate" not in params or "composers" not in tags or not config:
            return None
        started = datetime.fromtimestamp(run.info.start_time / 1000, UTC)
        return cls(
            name=settings.model_name,
            version=str(found.version),
            alias=settings.champion_alias,
            run_id=found.run_id,
            candidate=params["candidate"],
            trained_at=started.isoformat(timespec="seconds"),
            recording_accuracy=metrics.get("test_recording_accuracy"),
            recording_macro_f1=metrics.get("test_recording_macro_f1"),
            composers=tuple(tags["composers"].split(", ")),
            feature_config=FeatureConfig(**config),
            ece=metrics.get("test_ece"),
        )


@dataclass(frozen=True)
class Served:
    """The served version: its card, and the model itself where this process predicts."""

    card: ModelCard
    model: ComposerModel | None = None

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def label(self) -> str:
        return f"{self.card.name} v{self.card.version}"

    def identify(self, path: str | Path, settings: Settings) -> Verdict:
        """In this process (only where the model was loaded: ``load_model=True``)."""
        if self.model is None:
            raise ModelUnavailable("This process serves the model card only (no model loaded).")
        verdict = identify(
            self.model,
            path,
            limits=settings.audio,
            not_sure_below=settings.not_sure_below,
        )
        return verdict.model_copy(update={"model": self.label})


class ChampionService:
    """``load_model``: load the model in this process (it predicts here), or only read its
    card from the registry (worker processes predict). Default: load it when the app runs
    no worker processes (``COMPOSER_APP_WORKERS=0``)."""

    def __init__(
        self,
        settings: Settings,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        load_model: bool | None = None,
    ):
        self.settings = settings
        self.ttl = settings.app_model_ttl_s if ttl is None else ttl
        self.load_model = settings.app_workers == 0 if load_model is None else load_model
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
        """Check the alias now; swap if it moved. Never raises: errors are kept in
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
                    "(or `composer-id train`); this page picks it up by itself."
                )
                return self._served
            if self._served is None or self._served.version != str(found.version):
                self._served = self._serve(client, found)
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

    def _serve(self, client: MlflowClient, found: ModelVersion) -> Served:
        card = None if self.load_model else ModelCard.from_registry(client, found, self.settings)
        if card is not None:
            return Served(card)
        model = registry.load_registered(self.settings, str(found.version))
        card = ModelCard.of_model(model, found, self.settings)
        return Served(card, model if self.load_model else None)
