"""Build the shipped work index (data/works) and calibrate its acceptance threshold.

Development time only: reads the piano-midi.de MIDI files (``--midi-dir``), renders and
transcribes calibration clips (fluidsynth + TimGM6mb; cached in ``--work-dir``, so a rerun
only re-scores). Writes ``index.npz``, ``pieces.csv``, ``manifest.json`` and the calibration
clips' notes (``calibration/``) into ``--out``. See data/works/README.md.

    .venv/bin/python -P scripts/build_work_index.py --midi-dir ~/piano-midi
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import work_index_build as wb  # noqa: E402
from core.work_calibration import calibrate, write_calibration  # noqa: E402
from core.work_index import WorkIndex  # noqa: E402

BASE_SEED = 20261203
HELD_OUT_FRACTION = 0.2


def _sequence(midi_dir: Path, file: str):
    return file, wb.piece_sequence(midi_dir / file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--midi-dir", type=Path, required=True)
    parser.add_argument("--pieces", type=Path, default=ROOT / "data/pack/pieces.csv")
    parser.add_argument("--out", type=Path, default=ROOT / "data/works")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/work-index-build"))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    pieces = pd.read_csv(args.pieces)
    t0 = time.monotonic()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        done = dict(pool.map(_sequence, [args.midi_dir] * len(pieces), pieces["file"]))
    sequences = [done[f] for f in pieces["file"]]
    index = WorkIndex.from_sequences(pieces, sequences)
    print(f"index: {len(index)} pieces, {index.lengths.sum()} frames, {time.monotonic() - t0:.0f}s")

    held_out = wb.held_out_works(sorted(pieces["work"].unique()), HELD_OUT_FRACTION, BASE_SEED)
    specs = wb.clip_specs(pieces, held_out, BASE_SEED)
    rows, notes = [], []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            pool.submit(wb.cached_clip_notes, spec, args.midi_dir, args.work_dir) for spec in specs
        ]
        for n, fut in enumerate(as_completed(futures), start=1):
            spec, frame, duration = fut.result()
            rows.append({**spec.__dict__, "held_out": spec.work in held_out,
                         "duration_s": round(duration, 3)})  # fmt: skip
            notes.append(frame)
            if n % 20 == 0 or n == len(specs):
                print(f"clips [{n}/{len(specs)}] {time.monotonic() - t0:.0f}s", flush=True)
    clips = pd.DataFrame(rows).sort_values("clip_id").reset_index(drop=True)
    clip_notes = pd.concat(notes, ignore_index=True).sort_values(["clip_id", "onset_s", "pitch"])
    result = calibrate(index, clips, clip_notes)
    index = index.with_threshold(result.threshold)
    index.save(args.out, extra={"calibration": result.summary(), "base_seed": BASE_SEED,
                                "build_command": "scripts/build_work_index.py"})  # fmt: skip
    write_calibration(args.out / "calibration", clips, clip_notes)
    print(result.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
