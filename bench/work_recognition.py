#!/usr/bin/env python
"""Known-work recognition benchmark: the shipped index (data/works) on its calibration clips.

The clips are shifted performances (TimGM6mb, humanised, global tempo +-10 %, from anywhere
in the piece) already transcribed by the served transcriber (``data/works/calibration``), so
the run needs neither the MIDI files nor fluidsynth. One run prints:

- work top-1 (recognised, right work, score >= threshold) on every clip, full index;
- false matches: clips of the held-out works (~20 %) against the index without them;
- CPU-s per query against the full index (``time.process_time`` of ``WorkIndex.search``:
  chroma, shortlist, DTW re-rank; the transcription is not included, the request already
  pays for it), median and 95th percentile.

Results also go to ``bench/results/work_recognition.json`` (gitignored).

    .venv/bin/python bench/work_recognition.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import work_calibration  # noqa: E402
from core.work_index import WorkIndex  # noqa: E402
from core.work_index_build import stored_notes  # noqa: E402

TARGETS = {"work_top1": 0.90, "false_match_rate": 0.02, "cpu_s_median": 0.1}


def main() -> int:
    works = ROOT / "data" / "works"
    index = WorkIndex.load(works)
    clips, notes = work_calibration.read_calibration(works / "calibration")
    held = set(clips.loc[clips["held_out"], "work"])
    index.search(stored_notes(notes.iloc[:50]), 30.0)  # warm up (numba)
    full = work_calibration.evaluate(index, clips.assign(held_out=False), notes)
    without = index.restrict(set(index.meta["work"]) - held)
    negatives = work_calibration.evaluate(without, clips[clips["held_out"]], notes)
    on_full = work_calibration.rates(full, index.threshold)
    on_held = work_calibration.rates(negatives, index.threshold)
    false_ids = negatives.loc[negatives["score"] >= index.threshold, ["clip_id", "found_piece"]]
    result = {
        "threshold": index.threshold,
        "index_pieces": len(index),
        "clips": len(full),
        "work_top1": on_full["work_top1"],
        "work_top1_any_score": on_full["work_top1_any_score"],
        "wrong_work_accepted": on_full["wrong_work_accepted"],
        "held_out_clips": len(negatives),
        "false_match_rate": on_held["false_match_rate"],
        "false_matches": false_ids.to_dict(orient="records"),
        "cpu_s_median": on_full["cpu_s_median"],
        "cpu_s_p95": on_full["cpu_s_p95"],
    }
    print(f"work index: {len(index)} pieces, threshold {index.threshold}")
    print(
        f"work top-1 on {len(full)} shifted clips (full index): {result['work_top1']:.3f} "
        f"(target >= {TARGETS['work_top1']}; right at any score "
        f"{result['work_top1_any_score']:.3f}, wrong work accepted {result['wrong_work_accepted']})"
    )
    print(
        f"false matches on {len(negatives)} clips of {len(held)} works not in the index: "
        f"{result['false_match_rate']:.3f} (target <= {TARGETS['false_match_rate']})"
    )
    for row in result["false_matches"]:
        print(f"  {row['clip_id']} -> {row['found_piece']}")
    print(
        f"CPU-s per query, full index: median {result['cpu_s_median']:.3f}, "
        f"p95 {result['cpu_s_p95']:.3f} (target <= {TARGETS['cpu_s_median']})"
    )
    out = ROOT / "bench" / "results" / "work_recognition.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
