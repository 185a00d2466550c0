"""Fit the "not piano music" detector and write core/assets/piano_check.json.

Deterministic: the same shipped rows (data/pack, data/negatives/train_rows.parquet) give the
same coefficients (``tests/data/test_piano_check_data.py`` refits and compares). Prints the
pass rate on the training piano rows and on the held-out shifted set, and the rejection of the
training negatives per kind. Takes a few seconds; no audio tools needed.

    .venv/bin/python -P scripts/train_piano_check.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.piano_check import DETECTOR_PATH, assess_rows, load_detector
from core.piano_check_training import (
    fit_detector,
    load_piano_tables,
    negatives_rows,
    pass_rate,
    training_sets,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped JSON only")
    args = parser.parse_args()
    tables = load_piano_tables()
    negatives = negatives_rows()
    piano, other = training_sets(tables, negatives)
    detector = fit_detector(piano, other)
    if args.check:
        shipped = load_detector()
        same = np.allclose(shipped.coef, detector.coef, atol=1e-6)
        print("shipped detector matches a refit" if same else "shipped detector is STALE")
        raise SystemExit(0 if same else 1)
    detector.save(DETECTOR_PATH)
    load_detector.cache_clear()
    print(f"wrote {DETECTOR_PATH} ({detector.trained_on})")
    for source, table in tables.items():
        rate = pass_rate(source, table, detector)
        print(
            f"{source:8s} piano recordings passed {rate.passed}/{rate.recordings} = {rate.rate:.4f}"
        )
    clips = other.groupby("clip", sort=False)
    rejected = {}
    for _, rows in clips:
        kind = str(rows["kind"].iloc[0])
        ok = not assess_rows(rows, detector).is_piano
        rejected.setdefault(kind, []).append(ok)
    worst = sorted(rejected.items(), key=lambda kv: np.mean(kv[1]))[:8]
    total = sum(map(sum, rejected.values())) / sum(map(len, rejected.values()))
    print(f"training negatives rejected: {total:.3f}; lowest kinds: ")
    for kind, oks in worst:
        print(f"  {kind:28s} {np.mean(oks):.2f} ({len(oks)} clips)")


if __name__ == "__main__":
    main()
