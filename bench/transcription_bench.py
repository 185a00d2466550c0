#!/usr/bin/env python
"""Transcription benchmark: cost and note accuracy of each network variant, side by side.

On the same demo clips, in one run, one process, one thread (onnxruntime intra-op 1, BLAS 1):

- CPU seconds (``time.process_time``) of ``Transcriber.transcribe`` (network + note decoding,
  audio already decoded at 22050 Hz), scaled to a 30 s clip;
- median note-onset F1 against the clip's own MIDI (``data/demo/notes.parquet``, built by
  ``scripts/build_demo_notes.py``): mir_eval ``precision_recall_f1_overlap`` with a 50 ms
  onset tolerance, pitch within 50 cents, offsets ignored;
- then ``featurize_audio`` per 30 s clip: spectral block only (v3's work) vs spectral + notes
  (schema v4, the served default).

Every variant is warmed up on the first clip before the timed pass. Results are printed and
written to ``bench/results/transcription.json`` (gitignored).

    python bench/transcription_bench.py               # 36 clips spread over the corpus
    python bench/transcription_bench.py --clips 0     # every demo clip (~10 min)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import mir_eval  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from core import features, transcription  # noqa: E402
from core.audio import load_audio  # noqa: E402
from core.config import REPO_ROOT, FeatureConfig  # noqa: E402
from core.featurize import featurize_audio  # noqa: E402
from core.transcription import FLOAT_MODEL, INT8_MODEL, Transcriber  # noqa: E402

DEMO = REPO_ROOT / "data" / "demo"


def variants() -> dict[str, Transcriber]:
    """Baseline first: the float network run as basic-pitch runs it (one window per call,
    basic graph optimisations, 30 overlapping frames)."""
    out = {
        "float, per window, basic opt. (basic-pitch)": Transcriber(
            FLOAT_MODEL, overlap_frames=30, batch_windows=1, optimize=False
        ),
        "float, batched, all opt.": Transcriber(FLOAT_MODEL, overlap_frames=30),
        "float, batched, all opt., overlap 20": Transcriber(FLOAT_MODEL, overlap_frames=20),
    }
    if INT8_MODEL.exists():
        out["int8 (QDQ, CQT float), batched"] = Transcriber(INT8_MODEL, overlap_frames=30)
        out["int8 (QDQ, CQT float), overlap 20"] = Transcriber(INT8_MODEL, overlap_frames=20)
    served = transcription.default_transcriber()
    key = (served.model_path, served.overlap_frames, served.batch_windows, served.optimize)
    return {
        f"{name} (served)"
        if (t.model_path, t.overlap_frames, t.batch_windows, t.optimize) == key
        else name: t
        for name, t in out.items()
    }


def onset_f1(reference: pd.DataFrame, result: transcription.Transcription) -> float:
    ref_intervals = np.column_stack(
        [reference.onset_s, np.maximum(reference.offset_s, reference.onset_s + 0.01)]
    )
    est_intervals = np.column_stack(
        [result.onset_s, np.maximum(result.offset_s, result.onset_s + 0.01)]
    )
    if not len(ref_intervals) or not len(est_intervals):
        return 0.0
    _, _, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_intervals.astype(float),
        mir_eval.util.midi_to_hz(reference.pitch.to_numpy(float)),
        est_intervals.astype(float),
        mir_eval.util.midi_to_hz(result.pitch.astype(float)),
        onset_tolerance=0.05,
        offset_ratio=None,
    )
    return float(f1)


def pick(manifest: pd.DataFrame, n: int) -> pd.DataFrame:
    if n <= 0 or n >= len(manifest):
        return manifest
    index = np.linspace(0, len(manifest) - 1, n).round().astype(int)
    return manifest.iloc[index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=36, help="0 = every demo clip")
    parser.add_argument("--featurize-clips", type=int, default=8)
    args = parser.parse_args(argv)
    threadpool_limits(1)
    console = Console(width=150)
    manifest = pick(pd.read_csv(DEMO / "manifest.csv"), args.clips)
    notes_path = DEMO / "notes.parquet"
    if not notes_path.exists():
        sys.exit(f"{notes_path} is missing: run scripts/build_demo_notes.py (see data/demo).")
    reference = {rid: group for rid, group in pd.read_parquet(notes_path).groupby("recording_id")}
    audio = {
        row.recording_id: load_audio(DEMO / row.path, transcription.SAMPLE_RATE).samples
        for row in manifest.itertuples(index=False)
    }
    table = Table(title=f"Transcription per 30 s clip, {len(audio)} demo clips, one thread")
    for column in ("variant", "CPU-s / 30 s", "x baseline", "median onset F1", "F1 p10", "notes"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    results: dict[str, dict] = {}
    baseline = None
    for name, transcriber in variants().items():
        transcriber.transcribe(next(iter(audio.values())), transcription.SAMPLE_RATE)  # warm
        cpu, f1s, counts = [], [], []
        for rid, samples in audio.items():
            start = time.process_time()
            result = transcriber.transcribe(samples, transcription.SAMPLE_RATE)
            cpu.append((time.process_time() - start) * 30.0 / (len(samples) / 22050))
            f1s.append(onset_f1(reference.get(rid, pd.DataFrame(columns=["onset_s"])), result))
            counts.append(len(result))
        cost = float(np.mean(cpu))
        baseline = baseline or cost
        results[name] = {
            "cpu_s_per_30s": cost,
            "median_onset_f1": float(np.median(f1s)),
            "p10_onset_f1": float(np.percentile(f1s, 10)),
            "mean_notes": float(np.mean(counts)),
        }
        table.add_row(
            name,
            f"{cost:.3f}",
            f"{baseline / cost:.2f}",
            f"{np.median(f1s):.3f}",
            f"{np.percentile(f1s, 10):.3f}",
            f"{np.mean(counts):.0f}",
        )
    console.print(table)
    results["featurize_audio"] = featurize_costs(list(audio.values())[: args.featurize_clips])
    cost = Table(title="featurize_audio per 30 s clip (one thread)")
    for column in ("features per segment", "CPU-s / 30 s"):
        cost.add_column(column, justify="right")
    for label, value in results["featurize_audio"].items():
        cost.add_row(label, f"{value:.3f}")
    console.print(cost)
    out = REPO_ROOT / "bench" / "results" / "transcription.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"clips": len(audio), "results": results}, indent=2))
    console.print(f"written {out.relative_to(REPO_ROOT)}")
    return 0


def featurize_costs(clips: list[np.ndarray]) -> dict[str, float]:
    """Spectral block alone (the v3 pipeline's work) vs ``featurize_audio`` (v4)."""
    config = FeatureConfig()
    spectral = len(features.spectral_feature_names(config))
    both = len(features.feature_names(config))
    featurize_audio(clips[0], config)  # warm: numba, filter banks, the session
    size = round(config.segment_seconds * config.sample_rate)
    spectral_cpu, both_cpu = [], []
    for samples in clips:
        scale = 30.0 / (len(samples) / config.sample_rate)
        start = time.process_time()
        for first in range(0, len(samples), size):
            features.extract(samples[first : first + size], config)
        spectral_cpu.append((time.process_time() - start) * scale)
        start = time.process_time()
        featurize_audio(samples, config)
        both_cpu.append((time.process_time() - start) * scale)
    return {
        f"spectral only ({spectral})": float(np.mean(spectral_cpu)),
        f"spectral + notes ({both}, schema v4)": float(np.mean(both_cpu)),
    }


if __name__ == "__main__":
    raise SystemExit(main())
