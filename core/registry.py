"""MLflow at the edges: log a training result, register it, promote it behind the gate, and
load a registered model: the one way any front door gets a model.

The model is logged as a pyfunc wrapping ``ComposerModel`` (cloudpickled): it must carry its
feature config, labels, neighbour index and monitoring reference, which a plain sklearn
flavour cannot. Loading needs the ``core`` package installed, as every front door has it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from core import tracking_probe
from core.config import Settings
from core.model import ComposerModel, ComposerPyfunc
from core.train import PRIMARY_METRIC, TrainResult

SERVING_PACKAGES = ("numpy", "pandas", "scipy", "scikit-learn", "librosa", "soundfile", "mlflow")
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
FIRST_CHAMPION = "first model: there was no champion to compare with"
DECIDED_AT_TAG = "promotion_decided_at"
log = logging.getLogger(__name__)
# The model is logged as a cloudpickled Python object on purpose (module docstring); MLflow
# warns about that on every log_model. Drop exactly that message, keep the logger's others.
CLOUDPICKLE_NOTICE = "Passing a Python object as `python_model`"


class RegistryError(RuntimeError):
    """The registry cannot do what was asked (no such model or version, MLflow unreachable)."""


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    reason: str
    version: str
    previous: str | None
    score: float
    champion_score: float | None


def connect(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store and make sure the experiment exists. A store that
    does not answer within seconds raises ``RegistryError`` naming it (MLflow would retry
    for minutes in silence)."""
    uri = settings.mlflow_tracking_uri
    try:
        tracking_probe.check(uri)
    except tracking_probe.TrackingUnreachable as error:
        raise RegistryError(str(error)) from error
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if uri.split(":", 1)[0].split("+", 1)[0] in DATABASE_SCHEMES:
        settings.ensure_dirs()
        if mlflow.get_experiment_by_name(settings.experiment_name) is None:
            mlflow.create_experiment(
                settings.experiment_name,
                artifact_location=Path(settings.mlflow_artifact_root).resolve().as_uri(),
            )
    mlflow.set_experiment(settings.experiment_name)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def log_training(
    result: TrainResult,
    settings: Settings,
    dataset: str,
    table: pd.DataFrame,
    params: dict | None = None,
) -> tuple[str, str]:
    """One MLflow run with everything needed to trust and reproduce the model.

    Returns (run_id, model_uri).
    """
    model = result.model
    sides = table["recording_id"].map(result.split.set_index("recording_id")["split"])
    with mlflow.start_run(run_name=f"{dataset}-{model.candidate}") as run:
        mlflow.log_params(
            {
                "dataset": dataset,
                "candidate": model.candidate,
                "feature_schema": model.feature_config.schema_id,
                "feature_fingerprint": model.feature_config.fingerprint(),
                "n_features": len(model.feature_names),
                "n_composers": len(model.labels),
                "cv_folds": settings.cv_folds,
                "test_fraction": settings.test_fraction,
                "seed": settings.seed,
                **{f"features.{k}": v for k, v in model.feature_config.model_dump().items()},
                **(params or {}),
            }
        )
        mlflow.log_metrics({f"test_{k}": float(v) for k, v in result.metrics.items()})
        for score in result.cv:
            mlflow.log_metrics(
                {
                    f"cv_{score.name}_recording_macro_f1": score.recording_macro_f1,
                    f"cv_{score.name}_recording_accuracy": score.recording_accuracy,
                    f"cv_{score.name}_segment_accuracy": score.segment_accuracy,
                }
            )
        if model.calibration is not None:
            mlflow.log_metrics(
                {
                    "calibration_temperature": model.calibration.temperature,
                    "cv_ece_raw": model.calibration.ece_raw,
                    "cv_ece_calibrated": model.calibration.ece_calibrated,
                }
            )
        mlflow.set_tags({"dataset": dataset, "composers": ", ".join(model.labels)})
        for side in ("train", "test"):
            rows = table[sides == side]
            with warnings.catch_warnings():
                # The hint is about serving signatures (ints cannot hold NaN at inference);
                # this is a description of the training rows, never an input schema. MLflow
                # infers it when the dataset is made and again when it is logged.
                warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer")
                dataset_rows = mlflow.data.from_pandas(
                    rows.drop(columns=["path"], errors="ignore"),
                    name=f"{dataset}-{side}",
                    targets="composer",
                )
                mlflow.log_input(dataset_rows, context="training" if side == "train" else "testing")
        _log_documents(result, model)
        for path in result.plots.values():
            mlflow.log_artifact(str(path), artifact_path="plots")
        # Audio in, answers out: the signature comes from ComposerPyfunc.predict's type hints.
        with _without_cloudpickle_notice():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=ComposerPyfunc(model),
                pip_requirements=_pip_requirements(),
            )
        return run.info.run_id, info.model_uri


def register(client: MlflowClient, settings: Settings, model_uri: str, run_id: str) -> str:
    """Register the logged model; returns the new version number."""
    with _mlflow_prints_to_log():
        registered = mlflow.register_model(model_uri, settings.model_name)
    client.set_model_version_tag(settings.model_name, registered.version, "run_id", run_id)
    return str(registered.version)


def champion(client: MlflowClient, settings: Settings) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(settings.model_name, settings.champion_alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def aliases_by_version(client: MlflowClient, settings: Settings) -> dict[str, list[str]]:
    """Version -> its aliases. ``search_model_versions`` never fills ``aliases``; the
    registered model's alias map is the source of truth."""
    try:
        aliases = client.get_registered_model(settings.model_name).aliases or {}
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    by_version: dict[str, list[str]] = {}
    for alias, version_number in sorted(aliases.items()):
        by_version.setdefault(str(version_number), []).append(alias)
    return by_version


def decide(
    client: MlflowClient,
    settings: Settings,
    version: str,
    score: float,
    score_champion: Callable[[ComposerModel], float],
) -> Promotion:
    """Should ``version`` become champion? Only if it beats the current champion on the same
    held-out recordings (``score_champion`` re-scores the champion there). No side effects."""
    name = settings.model_name
    current = champion(client, settings)
    if current is None:
        return Promotion(True, FIRST_CHAMPION, version, None, score, None)
    if str(current.version) == str(version):
        return Promotion(True, "already champion", version, version, score, score)
    incumbent = score_champion(load_model(f"models:/{name}/{current.version}"))
    verb = "beats" if score > incumbent else "does not beat"
    sign = ">" if score > incumbent else "<="
    reason = (
        f"{verb} champion v{current.version} on the same held-out works: "
        f"{PRIMARY_METRIC} {score:.3f} {sign} {incumbent:.3f}"
    )
    return Promotion(score > incumbent, reason, version, str(current.version), score, incumbent)


def record_decision(client: MlflowClient, settings: Settings, decision: Promotion) -> None:
    """Tag the version with the decision and, if promoted, move the alias. The alias moves in
    one registry call after the tags, so a failure anywhere before leaves the old champion."""
    name, version = settings.model_name, decision.version
    tags = {
        "promotion": "promoted" if decision.promoted else "rejected",
        "promotion_reason": decision.reason,
        f"gate_{PRIMARY_METRIC}": f"{decision.score:.4f}",
        DECIDED_AT_TAG: datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if decision.champion_score is not None:
        tags[f"gate_champion_{PRIMARY_METRIC}"] = f"{decision.champion_score:.4f}"
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    if decision.promoted:
        client.set_registered_model_alias(name, settings.champion_alias, version)


def promote_if_better(
    client: MlflowClient,
    settings: Settings,
    version: str,
    score: float,
    score_champion: Callable[[ComposerModel], float],
) -> Promotion:
    """``decide`` then ``record_decision``: the gate in one call."""
    decision = decide(client, settings, version, score, score_champion)
    record_decision(client, settings, decision)
    return decision


def set_champion(client: MlflowClient, settings: Settings, version: str, reason: str) -> None:
    """Manual promotion (``composer-id promote --force``): recorded like the gate's decisions."""
    client.get_model_version(settings.model_name, version)  # raises if it does not exist
    client.set_model_version_tag(settings.model_name, version, "promotion", "promoted")
    client.set_model_version_tag(settings.model_name, version, "promotion_reason", reason)
    client.set_model_version_tag(
        settings.model_name,
        version,
        DECIDED_AT_TAG,
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    client.set_registered_model_alias(settings.model_name, settings.champion_alias, version)


def load_model(uri: str) -> ComposerModel:
    """Any ``models:/`` or ``runs:/`` URI -> ComposerModel (the single loading path)."""
    try:
        wrapper = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    except MlflowException as error:
        raise RegistryError(f"Cannot load model {uri}: {error.message}") from error
    if not isinstance(wrapper, ComposerPyfunc):
        raise RegistryError(f"{uri} is not a composer model ({type(wrapper).__name__}).")
    return wrapper.model


def load_registered(settings: Settings, version: str) -> ComposerModel:
    """One registered version of the configured model (what a server serves)."""
    connect(settings)
    return load_model(f"models:/{settings.model_name}/{version}")


def resolve(client: MlflowClient, settings: Settings, ref: str | None = None) -> ModelVersion:
    """A version number, an alias, or None (= champion) -> the ModelVersion, or a clear error."""
    name = settings.model_name
    ref = ref or settings.champion_alias
    try:
        if ref.isdigit():
            return client.get_model_version(name, ref)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException as error:
        raise RegistryError(
            f"No model version '{ref}' of '{name}' in {settings.mlflow_tracking_uri}. "
            "Train one first: `composer-id train` (or `make run`)."
        ) from error


def load_version(settings: Settings, ref: str | None = None) -> tuple[ComposerModel, ModelVersion]:
    client = connect(settings)
    found = resolve(client, settings, ref)
    return load_model(f"models:/{settings.model_name}/{found.version}"), found


def _log_documents(result: TrainResult, model: ComposerModel) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        schema = {
            "name": model.feature_config.schema_id,
            "fingerprint": model.feature_config.fingerprint(),
            "config": model.feature_config.model_dump(),
            "columns": model.feature_names,
        }
        (folder / "feature_schema.json").write_text(json.dumps(schema, indent=2))
        works = result.split.groupby("split")["work"].unique().map(sorted).to_dict()
        (folder / "dataset_split.json").write_text(json.dumps(works, indent=2))
        result.split.to_csv(folder / "split.csv", index=False)
        result.per_composer.to_csv(folder / "per_composer.csv")
        result.test_predictions.to_csv(folder / "test_predictions.csv", index=False)
        pd.DataFrame([vars(s) for s in result.cv]).to_csv(folder / "cv_scores.csv", index=False)
        mlflow.log_artifacts(tmp, artifact_path="evaluation")


def _pip_requirements() -> list[str]:
    pins = []
    for package in SERVING_PACKAGES:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


@contextlib.contextmanager
def _mlflow_prints_to_log():
    """``mlflow.register_model`` prints "Successfully registered model ..." and "Created
    version ..." straight to stderr (``eprint``), where a CLI shows them as noise and Airflow
    as ERROR lines. Capture them and log them at INFO instead. Registration runs in one thread
    of a CLI or a task process, so swapping ``sys.stderr`` for its duration is safe there."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.strip():
                log.info("mlflow: %s", line.strip())


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


@contextlib.contextmanager
def _without_cloudpickle_notice():
    """Silence only MLflow's cloudpickle notice, only while our model is logged."""
    logger = logging.getLogger("mlflow.pyfunc")
    dropper = _DropMessage(CLOUDPICKLE_NOTICE)
    logger.addFilter(dropper)
    try:
        yield
    finally:
        logger.removeFilter(dropper)
