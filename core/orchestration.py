"""What the DAGs share, as plain values (``core`` does not import Airflow): the identity of
the features Asset, retry policies, and Settings built from a run's Params."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from core import pipeline
from core.config import FeatureConfig, Settings

FEATURES_ASSET = {"name": "composer_features", "uri": "composer://features", "group": "composer"}
OWNER = "ml-platform"
# Transient failures (MLflow or database hiccups, file systems): retry with backoff.
TRANSIENT = {"retries": 3, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True}
# Everything else (bad configuration, bad data) fails fast: retrying cannot help.
DEFAULT_ARGS = {"owner": OWNER, "retries": 0}
FEATURE_PARAMS = ("sample_rate", "segment_seconds", "n_mfcc")


def settings_for(params: dict | None = None) -> Settings:
    """Settings from the environment; feature Params (when given) override the config."""
    base = Settings()
    overrides = {k: (params or {})[k] for k in FEATURE_PARAMS if (params or {}).get(k)}
    if not overrides:
        return base
    features = FeatureConfig(**{**base.features.model_dump(), **overrides})
    return base.model_copy(update={"features": features})


def manifest_for(params: dict, settings: Settings) -> pd.DataFrame:
    ensemble = params.get("ensemble") or "Solo Piano"
    return pipeline.load_manifest(
        settings, params["dataset"], None if ensemble == "all" else ensemble
    )
