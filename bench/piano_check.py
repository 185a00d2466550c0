#!/usr/bin/env python
"""'Not piano music': piano pass rates, non-music rejection and the detector's cost, one run.

* Pass rate per piano source, per recording: the repertoire pack (the detector's training
  piano; also without its 18 chunks that hold a DC offset instead of music), the shifted set
  (a SoundFont the detector never saw) and the demo corpus (decoded and featurized here,
  cached in COMPOSER_HOME, judged by the full ``assess`` on its samples).
* Rejection per non-music kind: every generated kind with seeds 0, 7, 8 (the tests use seed 0,
  training uses 1..6, so seeds >= 7 are unseen) and the shipped clips (speech, instruments),
  each featurized by the real ``core.featurize.featurize_audio``; plus the shipped piano
  controls, which must pass.
* Cost: CPU time of ``assess()`` per clip against the CPU time of featurizing that clip.

    python bench/piano_check.py                  # seeds 0, 7, 8
    python bench/piano_check.py --seeds 0 7 8 9 10 --seconds 30
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import nonmusic
from core.audio import load_audio
from core.config import Settings
from core.datasets.demo import load_manifest
from core.featurize import featurize_audio, featurize_manifest
from core.piano_check import assess, load_detector
from core.piano_check_training import DEFECT_ZCR, load_piano_tables, pass_rate


def piano_sources(settings: Settings, console: Console) -> tuple[Table, list[float]]:
    table = Table(title="Piano recordings that pass (target >= 0.98)")
    for column in ("source", "recordings", "passed", "rate", "rejected (reason, score)"):
        table.add_column(column)
    tables = load_piano_tables(settings.features)
    pack = tables["pack"]
    defects = pack.groupby("recording")["zero_crossing_mean"].transform("min") < DEFECT_ZCR
    tables["pack without DC chunks"] = pack[~defects]
    for source, rows in tables.items():
        rate = pass_rate(source, rows)
        table.add_row(
            source,
            str(rate.recordings),
            str(rate.passed),
            f"{rate.rate:.4f}",
            _failures(rate.failures),
        )
    manifest = load_manifest(settings.demo_dir)
    console.print(f"featurizing the demo corpus ({len(manifest)} clips; cached)...")
    report = featurize_manifest(
        manifest, settings.features, settings.audio, settings.feature_cache_dir, workers=1
    )
    costs, failures, passed = [], [], 0
    for row in manifest.itertuples(index=False):
        samples = load_audio(row.path, settings.features.sample_rate, settings.audio).samples
        rows = report.table[report.table["recording_id"] == row.recording_id]
        started = time.process_time()
        check = assess(samples, settings.features.sample_rate, rows)
        costs.append(time.process_time() - started)
        passed += check.is_piano
        if not check.is_piano:
            failures.append((row.recording_id, check.reason, round(check.score, 3)))
    n = len(manifest)
    table.add_row("demo", str(n), str(passed), f"{passed / n:.4f}", _failures(failures))
    return table, costs


def nonmusic_kinds(
    settings: Settings, seeds: list[int], seconds: float
) -> tuple[Table, Table, list[float], list[float]]:
    config, sr = settings.features, settings.features.sample_rate
    table = Table(title=f"Non-music kinds rejected ({seconds:g} s clips; target: every clip)")
    for column in ("kind", "clips", "rejected", "reasons", "max score"):
        table.add_column(column)
    controls = Table(title="Piano controls (same phrases as the instruments; must pass)")
    for column in ("clip", "passes", "score"):
        controls.add_column(column)
    assess_costs, featurize_costs = [], []

    def judge(samples: np.ndarray) -> tuple:
        started = time.process_time()
        rows = featurize_audio(samples, config)
        featurize_costs.append(time.process_time() - started)
        started = time.process_time()
        check = assess(samples, sr, rows)
        assess_costs.append(time.process_time() - started)
        return check

    for kind in nonmusic.GENERATED:
        checks = [judge(nonmusic.generate(kind, seconds, sr, seed)) for seed in seeds]
        _kind_row(table, kind, checks)
    for clip in nonmusic.shipped_clips():
        check = judge(load_audio(clip.path, sr, settings.audio).samples)
        if clip.group == "piano":
            controls.add_row(clip.kind, "yes" if check.is_piano else "NO", f"{check.score:.3f}")
        else:
            _kind_row(table, f"{clip.kind} ({clip.group})", [check])
    return table, controls, assess_costs, featurize_costs


def _kind_row(table: Table, kind: str, checks: list) -> None:
    rejected = sum(not c.is_piano for c in checks)
    reasons = sorted({c.reason for c in checks if not c.is_piano})
    style = "" if rejected == len(checks) else "bold red"
    table.add_row(
        kind,
        str(len(checks)),
        f"{rejected}/{len(checks)}",
        "; ".join(reasons),
        f"{max(c.score for c in checks):.3f}",
        style=style,
    )


def _failures(failures) -> str:
    shown = [f"{rid} ({reason}, {score})" for rid, reason, score in failures[:4]]
    return "; ".join(shown) + (f" ... +{len(failures) - 4}" if len(failures) > 4 else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 7, 8])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    console = Console()
    settings = Settings()
    detector = load_detector()
    console.print(f"detector: {detector.trained_on}; threshold {detector.threshold}")
    piano, demo_costs = piano_sources(settings, console)
    console.print(piano)
    kinds, controls, assess_costs, featurize_costs = nonmusic_kinds(
        settings, args.seeds, args.seconds
    )
    console.print(kinds)
    console.print(controls)
    costs = np.array(demo_costs + assess_costs) * 1000
    console.print(
        f"assess() CPU per clip: median {np.median(costs):.2f} ms, max {costs.max():.2f} ms "
        f"({len(costs)} clips); featurize_audio per {args.seconds:g} s clip: median "
        f"{np.median(featurize_costs) * 1000:.0f} ms -> assess adds "
        f"{100 * np.median(assess_costs) / np.median(featurize_costs):.2f} %"
    )


if __name__ == "__main__":
    main()
