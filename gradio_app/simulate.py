"""Traffic simulation, a client of the app: send clips through its public API as users
would, over simulated days, to exercise monitoring (drift reports, the retraining decision).

For each simulated day, ``per_day`` clips go to the app's typed ``/identify`` endpoint with
gradio_client (each answer is a ``core.verdict.Verdict`` with its ``prediction_id``); a share of
them (``feedback_rate``) also get their true composer through ``/feedback`` (a composer the
model does not know as ``other:<name>``). The day's predictions
are then **back-dated** in the prediction store to that day (``PredictionStore.backdate``, which
exists for simulations only), so ``composer-id monitor`` / the ``monitor`` DAG can look at them as
if they had happened then. The simulation therefore needs the app's database
(``COMPOSER_DATABASE_URL``) and the same MLflow store as the app (to pick the held-out works).

Modes:

* ``in-distribution``: the champion's held-out demo works (its reference rows with
  ``split == 'test'``), unchanged: monitoring should find no drift.
* ``noise``: the same works with white noise at ``snr_db`` (default 10 dB SNR).
* ``lowpass``: a "phone microphone": 300-3400 Hz band-pass, resampled to 8 kHz.
* ``mix``: a composer mix unlike the training corpus: every demo recording of only two
  composers (default: the two with most recordings; ``composers`` to choose).

Shifted audio is written to temporary WAV files before upload (removed afterwards).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from core.audio import load_audio
from core.config import Settings
from core.datasets import demo
from core.model import ComposerModel
from core.store import OTHER_NAME_LENGTH, OTHER_PREFIX
from core.verdict import Verdict

MODES = ("in-distribution", "noise", "lowpass", "mix")
PHONE_BAND_HZ = (300.0, 3400.0)
PHONE_RATE = 8000


@dataclass(frozen=True)
class Clip:
    recording_id: str
    path: Path  # the file to send (a shifted copy for noise/lowpass)
    composer: str  # the truth (sent as feedback)


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise at ``snr_db`` dB signal-to-noise ratio (of the clip's mean power)."""
    power = float(np.mean(np.square(samples, dtype=np.float64)))
    noise = rng.normal(0.0, math.sqrt(power / 10 ** (snr_db / 10)), samples.shape)
    return (samples + noise).astype(np.float32)


def phone_band(samples: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """300-3400 Hz band-pass (6th-order Butterworth, zero phase), then 8 kHz."""
    sos = signal.butter(6, PHONE_BAND_HZ, btype="bandpass", fs=sample_rate, output="sos")
    filtered = signal.sosfiltfilt(sos, samples.astype(np.float64))
    divisor = math.gcd(PHONE_RATE, sample_rate)
    resampled = signal.resample_poly(filtered, PHONE_RATE // divisor, sample_rate // divisor)
    return resampled.astype(np.float32), PHONE_RATE


def pick_recordings(
    settings: Settings, model: ComposerModel, mode: str, composers: Sequence[str] | None = None
):
    """The manifest rows (recording_id, path, composer) a mode draws its traffic from."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    manifest = demo.load_manifest(settings.demo_dir)
    if mode == "mix":
        known = manifest[manifest["composer"].isin(model.labels)]
        if not composers:
            counts = known["composer"].value_counts()
            ranked = sorted(counts.index, key=lambda c: (-counts[c], c))
            composers = ranked[:2]
        chosen = manifest[manifest["composer"].isin(list(composers))]
    else:
        if model.reference is None:
            raise ValueError("The model has no reference rows: cannot tell its held-out works.")
        held_out = set(model.reference.loc[model.reference["split"] == "test", "recording_id"])
        chosen = manifest[manifest["recording_id"].isin(held_out)]
    if chosen.empty:
        raise ValueError(f"No demo recordings for mode {mode!r} (composers={composers}).")
    return chosen[["recording_id", "path", "composer"]].reset_index(drop=True)


def prepare_clips(
    settings: Settings,
    model: ComposerModel,
    mode: str,
    folder: Path,
    seed: int = 0,
    snr_db: float = 10.0,
    composers: Sequence[str] | None = None,
) -> list[Clip]:
    """The clips of a mode, with shifted copies written to ``folder`` (noise, lowpass)."""
    rng = np.random.default_rng(seed)
    clips = []
    for row in pick_recordings(settings, model, mode, composers).itertuples():
        path = Path(row.path)
        if mode in ("noise", "lowpass"):
            audio = load_audio(path, model.feature_config.sample_rate, settings.audio)
            if mode == "noise":
                samples, rate = add_noise(audio.samples, snr_db, rng), audio.sample_rate
            else:
                samples, rate = phone_band(audio.samples, audio.sample_rate)
            peak = float(np.max(np.abs(samples))) or 1.0
            if peak > 0.99:  # scale, never clip
                samples = samples * (0.99 / peak)
            path = Path(folder) / f"{mode}-{len(clips):04d}.wav"
            sf.write(path, samples, rate, subtype="PCM_16")
        clips.append(Clip(row.recording_id, path, row.composer))
    return clips


def identify(client, path: Path) -> Verdict:
    """One clip through the app's typed endpoint (``client``: a ``gradio_client.Client``)."""
    from gradio_client import handle_file

    return Verdict.model_validate(client.predict(handle_file(str(path)), api_name="/identify"))


def feedback_name(composer: str, known: Collection[str]) -> str:
    """The composer as the store accepts it: one the model knows, else ``other:<name>``."""
    if composer in known:
        return composer
    return OTHER_PREFIX + composer[:OTHER_NAME_LENGTH]


def simulate(
    settings: Settings,
    url: str,
    mode: str = "in-distribution",
    days: int = 1,
    start: datetime | None = None,
    per_day: int | None = None,
    feedback_rate: float = 0.0,
    seed: int = 0,
    snr_db: float = 10.0,
    composers: Sequence[str] | None = None,
    model: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Send ``days`` x ``per_day`` clips to the app at ``url`` and back-date each day's
    predictions to that day (from ``start``, default: ending yesterday). ``per_day`` defaults
    to one request per recording of the mode. Returns one dict per day: day, sent, failed,
    feedback, ids."""
    from gradio_client import Client

    from core.registry import load_version
    from core.store import open_store

    if not 0 <= feedback_rate <= 1:
        raise ValueError("feedback_rate must be within [0, 1]")
    loaded, _ = load_version(settings, model)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = (start or today - timedelta(days=days)).astimezone(UTC)
    rng = np.random.default_rng(seed)
    client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    store = open_store(settings)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix=f"composer-sim-{mode}-") as tmp:
            clips = prepare_clips(settings, loaded, mode, Path(tmp), seed, snr_db, composers)
            count = per_day or len(clips)
            total, done = days * count, 0
            for day in range(days):
                when = first + timedelta(days=day)
                picks = rng.choice(len(clips), size=count, replace=count > len(clips))
                ids, failed, feedback = [], 0, 0
                for index in picks:
                    clip = clips[int(index)]
                    try:
                        verdict = identify(client, clip.path)
                        ids.append(verdict.prediction_id)
                        if rng.random() < feedback_rate:
                            truth = feedback_name(clip.composer, verdict.probabilities)
                            client.predict(verdict.prediction_id, truth, api_name="/feedback")
                            feedback += 1
                    except Exception as error:  # one bad request must not end the simulation
                        failed += 1
                        print(f"request for {clip.recording_id} failed: {error}", flush=True)
                    done += 1
                    if progress:
                        progress(done, total)
                # Spread the day's requests over 01:00-23:00 of the simulated day.
                step = timedelta(hours=22) / max(len(ids), 1)
                store.backdate(ids, when + timedelta(hours=1), step)
                results.append(
                    {
                        "day": when.date().isoformat(),
                        "mode": mode,
                        "sent": len(ids),
                        "failed": failed,
                        "feedback": feedback,
                        "ids": ids,
                    }
                )
    finally:
        store.close()
    return results
