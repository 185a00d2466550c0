"""Manifest -> feature table (one row per segment), in parallel, cached per recording.

The cache key is (audio content hash, feature-config fingerprint): renaming or moving files
costs nothing, changing a parameter recomputes, and an interrupted run resumes where it
stopped because each recording's Parquet file is written atomically on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from core import features, note_features, transcription
from core.audio import AudioError, NotAudioError, load_audio, segments
from core.config import AudioLimits, FeatureConfig
from core.fileio import atomic_write

ID_COLUMNS = ["recording_id", "segment", "start_s"]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FeaturizeReport:
    table: pd.DataFrame  # manifest columns + segment columns + features
    computed: int  # recordings computed now
    cached: int  # recordings served from the cache
    failed: dict[str, str]  # recording_id -> error message


def featurize_audio(
    samples: np.ndarray, config: FeatureConfig, notes: transcription.Transcription | None = None
) -> pd.DataFrame:
    """Decoded mono audio -> one row per segment. The single path for training and serving.

    The whole clip is transcribed once (notes cross segment borders and the network needs
    context at window edges); each row is the segment's spectral block followed by the note
    block of the notes that start inside it. ``notes``: the clip's transcription when the
    caller already has it (serving also matches it against the known works).
    """
    features.check_schema(config)
    if notes is None:
        notes = transcription.transcribe(samples, config.sample_rate)
    rows, starts = [], []
    for start, window in segments(
        samples, config.sample_rate, config.segment_seconds, config.hop_seconds
    ):
        end = start + len(window) / config.sample_rate
        spectral = features.extract(window, config)
        rows.append(np.concatenate([spectral, note_features.note_features(notes, start, end)]))
        starts.append(start)
    frame = pd.DataFrame(np.vstack(rows), columns=features.feature_names(config))
    frame.insert(0, "start_s", np.asarray(starts, dtype=np.float32))
    frame.insert(0, "segment", np.arange(len(rows), dtype=np.int32))
    return frame


def featurize_file(path: str | Path, config: FeatureConfig, limits: AudioLimits) -> pd.DataFrame:
    audio = load_audio(path, config.sample_rate, limits)
    return featurize_audio(audio.samples, config)


def content_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:24]


def cached_features(
    path: str | Path, config: FeatureConfig, limits: AudioLimits, cache_dir: Path
) -> tuple[pd.DataFrame, bool]:
    """Features of one file from the cache, computing and storing them on a miss."""
    if not Path(path).is_file():
        raise NotAudioError(f"{Path(path).name}: file not found ({path}).")
    folder = cache_dir / config.fingerprint()
    target = folder / f"{content_hash(path)}-{_limits_key(limits)}.parquet"
    if target.exists():
        return pd.read_parquet(target), True
    frame = featurize_file(path, config, limits)
    atomic_write(target, lambda tmp: frame.to_parquet(tmp, index=False))
    return frame, False


def featurize_manifest(
    manifest: pd.DataFrame,
    config: FeatureConfig,
    limits: AudioLimits,
    cache_dir: Path,
    workers: int = 1,
    progress: Progress | None = None,
) -> FeaturizeReport:
    """Features for every recording in ``manifest`` (needs ``recording_id`` and ``path``).

    Recordings that fail to decode are reported, not fatal: one bad file in a corpus of
    thousands should not stop a run, and the caller decides whether failures are acceptable.
    """
    jobs = [(row.recording_id, row.path) for row in manifest.itertuples(index=False)]
    if workers > 1 and jobs:
        warm_up(config)
    runner = Parallel(n_jobs=max(1, workers), return_as="generator_unordered")
    results = runner(
        delayed(_one)(rid, path, config, limits, cache_dir, workers > 1) for rid, path in jobs
    )
    frames, failed, computed, cached = [], {}, 0, 0
    for done, (rid, frame, hit, error) in enumerate(results, start=1):
        if error is not None:
            failed[rid] = error
        else:
            frame.insert(0, "recording_id", rid)
            frames.append(frame)
            cached += hit
            computed += not hit
        if progress:
            progress(done, len(jobs))
    table = _join_manifest(manifest, frames, config)
    return FeaturizeReport(table=table, computed=computed, cached=cached, failed=failed)


def warm_up(config: FeatureConfig) -> None:
    """Compile librosa's numba functions once, here, and fill the on-disk cache before worker
    processes start: workers compiling and writing the same cache entries at once can read
    each other's half-written files and crash (seen as SIGSEGV in ``peak_pick``)."""
    noise = np.random.default_rng(0).standard_normal(config.sample_rate * 3).astype(np.float32)
    features.extract(0.1 * noise, config)
    transcription.transcribe(0.1 * noise, config.sample_rate)  # this process's ONNX session


def _one(
    rid: str,
    path: str,
    config: FeatureConfig,
    limits: AudioLimits,
    cache_dir: Path,
    parallel: bool = False,
) -> tuple[str, pd.DataFrame | None, bool, str | None]:
    if parallel:  # worker processes: their BLAS threads would compete with each other
        features.single_threaded_blas()
    try:
        frame, hit = cached_features(path, config, limits, cache_dir)
        return rid, frame, hit, None
    except (AudioError, OSError) as error:
        return rid, None, False, str(error)


def _join_manifest(
    manifest: pd.DataFrame, frames: list[pd.DataFrame], config: FeatureConfig
) -> pd.DataFrame:
    names = features.feature_names(config)
    if not frames:
        empty = pd.DataFrame(columns=[*ID_COLUMNS, *names])
        meta = manifest.drop(columns=["path"], errors="ignore").iloc[0:0]
        return meta.merge(empty, on="recording_id")
    segments_table = pd.concat(frames, ignore_index=True)
    meta = manifest.drop(columns=["path"], errors="ignore")
    table = meta.merge(segments_table, on="recording_id", how="inner")
    return table.sort_values(["recording_id", "segment"], kind="stable").reset_index(drop=True)


def _limits_key(limits: AudioLimits) -> str:
    """Limits decide which files are accepted and how much is analysed, so they key too."""
    return hashlib.sha256(limits.model_dump_json().encode()).hexdigest()[:8]
