"""One settings object for the library, the CLI, the DAGs and the app.

Values come from (highest first): keyword arguments, environment variables prefixed
``COMPOSER_`` (nested with ``__``, e.g. ``COMPOSER_FEATURES__N_MFCC=20``), a ``.env`` file in
the working directory, then the defaults below. Nothing else in ``core`` reads the environment.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]

FEATURE_SCHEMA_NAME = "composer-features"
# Bump when feature code changes values; models record the version they were trained with.
FEATURE_SCHEMA_VERSION = 4  # v4: spectral block + note block (transcription)


class FeatureConfig(BaseModel):
    """Everything that changes a feature vector. A trained model carries its own copy."""

    model_config = {"frozen": True}

    schema_version: int = Field(FEATURE_SCHEMA_VERSION, description="Feature code version.")
    sample_rate: int = Field(22050, ge=4000, le=96000, description="Analysis sample rate (Hz).")
    segment_seconds: float = Field(10.0, gt=0.5, le=120, description="Length of one segment.")
    hop_seconds: float = Field(10.0, gt=0.1, le=120, description="Step between segment starts.")
    n_fft: int = Field(2048, ge=256, le=8192)
    hop_length: int = Field(512, ge=64, le=4096)
    n_mfcc: int = Field(13, ge=4, le=40, description="MFCC coefficients (mean/std/max/min each).")
    n_mels: int = Field(128, ge=32, le=256)
    n_chroma: int = Field(12, ge=12, le=36)
    n_contrast_bands: int = Field(6, ge=2, le=8, description="Spectral contrast bands (+1 valley).")
    hpss_kernel: int = Field(17, ge=3, le=63, description="Median kernel for HPSS (mel domain).")

    @property
    def schema_id(self) -> str:
        return f"{FEATURE_SCHEMA_NAME}/v{self.schema_version}"

    def fingerprint(self) -> str:
        """Stable hash of schema version + parameters: the feature-cache key component."""
        payload = json.dumps(self.model_dump(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]


class AudioLimits(BaseModel):
    """What serving and training accept; not part of a model (it does not change features)."""

    model_config = {"frozen": True}

    min_seconds: float = Field(1.0, gt=0, description="Shorter clips are rejected.")
    max_seconds: float = Field(600.0, gt=0, description="Only this much of a clip is analysed.")
    silence_rms: float = Field(1e-4, ge=0, description="RMS below this counts as silence.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COMPOSER_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
    )

    home: Path = Field(REPO_ROOT / "var", description="Where generated state lives (gitignored).")
    demo_dir: Path = Field(REPO_ROOT / "data" / "demo", description="The shipped demo corpus.")
    musicnet_dir: Path | None = Field(None, description="Default: HOME/musicnet.")
    musicnet_base_url: str = Field("https://zenodo.org", description="Zenodo (or a mirror).")
    musicnet_record: int = 5120004
    midi_base_url: str = Field(
        "http://www.piano-midi.de/midis",
        description="Where `composer-id download-midi` fetches the pack's MIDI files: "
        "{midi_base_url}/{file} for each file of data/pack/pieces.csv (<Composer>/<name>.mid).",
    )

    mlflow_tracking_uri: str | None = Field(None, description="Default: sqlite:///HOME/mlflow.db")
    mlflow_artifact_root: Path | None = Field(None, description="Default: HOME/mlartifacts")
    experiment_name: str = "composer-id"
    model_name: str = "composer-classifier"
    champion_alias: str = "champion"

    features: FeatureConfig = FeatureConfig()
    audio: AudioLimits = AudioLimits()

    workers: int = Field(0, ge=0, description="Featurization processes; 0 = one per core.")
    seed: int = 42
    test_fraction: float = Field(0.25, gt=0.05, lt=0.6, description="Share of works held out.")
    cv_folds: int = Field(4, ge=2, le=10)
    use_pack: bool = Field(
        True, description="Train on the repertoire pack (data/pack) besides the dataset's audio."
    )
    pack_dir: Path = Field(REPO_ROOT / "data" / "pack", description="The repertoire pack.")
    works_dir: Path | None = Field(
        REPO_ROOT / "data" / "works",
        description="The known-work index (data/works); empty: no work recognition.",
    )
    min_works_per_composer: int = Field(
        4, ge=1, description="Composers with fewer training works are left out of a model."
    )
    not_sure_below: float = Field(
        0.35,
        ge=0,
        le=1,
        description="Below this top composer probability the answer is 'not sure' with the "
        "top candidates, never a headline composer.",
    )

    # Prediction store (the app records every prediction; monitoring reads them back).
    database_url: str | None = Field(None, description="Default: sqlite:///HOME/predictions.db")
    keep_audio: bool = Field(False, description="Keep uploaded audio (under generated names).")
    spool_dir: Path | None = Field(
        None, description="Default: HOME/spool (records kept while the database is unreachable)."
    )
    audio_store_dir: Path | None = Field(None, description="Default: HOME/audio.")
    db_connect_timeout_s: float = Field(
        2.0, gt=0, le=60, description="Give up connecting to the database after this long."
    )
    db_statement_timeout_s: float = Field(
        5.0,
        gt=0,
        le=600,
        description="Longest a store statement may run (PostgreSQL statement_timeout, SQLite "
        "busy timeout). A prediction or feedback is spooled when the database has not taken it "
        "within connect + statement timeout.",
    )
    db_retry_interval_s: float = Field(
        5.0,
        ge=0,
        le=600,
        description="After a database failure, spool without trying for this long.",
    )

    # The app.
    app_host: str = Field("127.0.0.1", description="Bind address (0.0.0.0 in containers).")
    app_port: int = Field(
        7860, ge=0, le=65535, validation_alias=AliasChoices("PORT", "COMPOSER_APP_PORT")
    )
    app_share: bool = Field(False, description="Ask Gradio for a public share link.")
    app_auth: str | None = Field(None, description="'user:password' for the login page.")
    app_root_path: str = Field("", description="Path prefix when served behind a proxy.")
    app_max_file_mb: float = Field(50.0, gt=0, description="Upload size limit.")
    app_model_ttl_s: float = Field(30.0, ge=0, description="How often to check the alias.")
    app_workers: int = Field(
        2, ge=0, le=32, description="Worker processes for predictions (0: in the server process)."
    )
    app_concurrency: int = Field(
        3,
        ge=1,
        le=64,
        description="Prediction requests admitted at once; one more than the workers keeps "
        "each worker busy while the server sends the previous answer.",
    )

    # ---- Monitoring: drift reports, the retraining decision and trigger, the reports page.
    monitor_min_rows: int = Field(
        30, ge=1, description="Fewer predictions in a window: 'not enough data', no verdict."
    )
    monitor_drift_share: float = Field(
        0.3, gt=0, le=1, description="Share of drifted feature columns that means data drift."
    )
    monitor_min_accuracy: float = Field(
        0.2, ge=0, le=1, description="Accuracy on feedback below this asks for retraining."
    )
    monitor_max_not_piano: float = Field(
        0.25,
        gt=0,
        le=1,
        description="A larger share of non-music uploads in a window is reported as input drift.",
    )
    monitor_min_feedback: int = Field(
        10, ge=1, description="Feedback rows needed before accuracy on feedback counts."
    )
    reports_host: str = Field("127.0.0.1", description="Bind address of the reports page.")
    reports_port: int = Field(8090, ge=0, le=65535, description="Port of the reports page.")
    airflow_url: str = Field("http://127.0.0.1:8080", description="Airflow API server.")
    airflow_user: str = Field("admin", description="Airflow user that may trigger `train`.")
    airflow_password: str | None = Field(None, description="Its password (REST API token).")
    # ---- end of monitoring settings.

    @model_validator(mode="after")
    def _fill_derived_paths(self) -> Settings:
        self.home = Path(self.home).expanduser().resolve()
        if self.musicnet_dir is None:
            self.musicnet_dir = self.home / "musicnet"
        if self.mlflow_artifact_root is None:
            self.mlflow_artifact_root = self.home / "mlartifacts"
        if self.mlflow_tracking_uri is None:
            self.mlflow_tracking_uri = f"sqlite:///{self.home / 'mlflow.db'}"
        self.spool_dir = Path(self.spool_dir or self.home / "spool")
        self.audio_store_dir = Path(self.audio_store_dir or self.home / "audio")
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.home / 'predictions.db'}"
        return self

    @property
    def feature_cache_dir(self) -> Path:
        return self.home / "features"

    @property
    def n_workers(self) -> int:
        return self.workers or max(1, os.cpu_count() or 1)

    def ensure_dirs(self) -> None:
        for path in (self.home, self.feature_cache_dir, self.mlflow_artifact_root):
            Path(path).mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (front doors may build their own ``Settings(...)`` instead)."""
    return Settings()
