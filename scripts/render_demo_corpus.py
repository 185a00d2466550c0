#!/usr/bin/env python
"""Render the shipped demo corpus (``data/demo``) from the piano-midi.de MIDI collection.

This is a one-off, maintainer-only build step. It is the ONLY part of the project that
needs ``fluidsynth`` and a SoundFont; everybody else uses the committed OGG clips.

Source: a folder of piano-midi.de MIDI files (sequenced by Bernd Krüger,
http://www.piano-midi.de, CC BY-SA 3.0 DE) laid out as ``<Composer>/<name>.mid`` with a
``sources.csv`` (columns ``file,composer,title,year,duration_s,bytes``) next to them.

Example::

    python -P scripts/render_demo_corpus.py --midi-dir /path/to/piano-midi --out data/demo

(``-P``: do not put ``scripts/`` first on ``sys.path``, where ``scripts/platform.py`` would
shadow the standard library's ``platform`` module.)

What it does, deterministically:

1. **Works** (``core.datasets.works.work_of``, shared with the repertoire pack). A file's
   *work* is its ``title`` minus one trailing movement number: a final ``_<digits>`` group
   is stripped, *unless* the token right before it is a catalogue
   label (``Opus``, ``Op``, ``BWV``, ``KV``, ``K``, ``D``, ``Hob``, ``Hoboken``, ``No``), in
   which case the number is the catalogue number of a single-movement work. So
   ``Sonata_No.8_C_minor_Opus_13_2`` -> ``Sonata_No.8_C_minor_Opus_13``,
   ``Preludes_Opus_28_15`` -> ``Preludes_Opus_28``, ``19_Hungarian_Rhapsodies_12`` ->
   ``19_Hungarian_Rhapsodies``, but ``Ballad_G_minor_Opus_23`` and
   ``The_Well-Tempered_Clavier_Part1_BWV_846`` stay as they are. Titles without a trailing
   number (``Etudes_Opus_10_12_Revolutionary``, ``Suite_espanola_Cadiz``) are their own
   work. This reproduces the per-composer work counts of the source README (Bach becomes
   3 works instead of 1, which does not change anything here).
2. **Eligibility.** Files shorter than ``--clip-seconds + 5`` s (per ``sources.csv``) are
   skipped. Composers with at least ``--min-works`` distinct works among the remaining
   files are kept.
3. **Selection.** Per composer up to ``--per-composer`` files, round-robin over the works
   sorted by name (files inside a work in natural title order, i.e. movement 1, 2, ..., 10):
   every work gets one file before any work gets a second. If a composer has more works
   than slots, the works of the first round are spread evenly over the sorted list
   (index ``floor(i * n_works / n_slots)``) instead of taking the alphabetically first ones.
4. **Rendering.** ``fluidsynth -ni -q -O float -F out.wav -r SR SOUNDFONT file.mid`` into
   a temporary directory, downmix to mono, locate the sounding region (first/last sample
   above -50 dB re. peak), cut ``--clip-seconds`` starting at 25 % of that region (clamped
   so the clip fits), peak-normalise to -1 dBFS, 50 ms linear fade in/out, and write OGG
   Vorbis (``--vorbis-quality``, passed to soundfile as
   ``compression_level = 1 - quality``) to ``<out>/audio/<Composer>/<midi_stem>.ogg``.
5. **Manifest.** ``<out>/manifest.csv`` with columns ``recording_id,path,composer,work,
   title,source_midi,start_s,duration_s,licence``, sorted by ``recording_id``; ``path`` is
   relative to ``<out>``; ``start_s`` is the clip's offset in the rendered piece.

Re-running gives bit-identical decoded audio; the ``.ogg`` files still differ in a few bytes
because libsndfile picks a random Ogg stream serial number.

``data/demo/LICENSE.md`` and ``data/demo/README.md`` are maintained by hand: update them
(SoundFont, counts, sizes) if you re-render with different settings.
"""

from __future__ import annotations

import argparse
import csv
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from core.datasets.works import natural_key, work_of

LICENCE = "CC BY-SA 3.0 DE"
MANIFEST_COLUMNS = [
    "recording_id",
    "path",
    "composer",
    "work",
    "title",
    "source_midi",
    "start_s",
    "duration_s",
    "licence",
]
# Preferred SoundFonts, best first: MuseScore General (small/"Lite" build, Splendid Grand
# piano), then the full MuseScore General, then FluidR3 GM.
SOUNDFONT_CANDIDATES = [
    "/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
    "/usr/share/sounds/sf2/MuseScore_General_Lite.sf2",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/usr/share/sounds/sf2/MuseScore_General.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
]
MIN_EXTRA_SECONDS = 5.0  # a file must be at least clip + this long to be eligible
SILENCE_DB = -50.0  # sounding region: samples above this level relative to the peak
PEAK_DBFS = -1.0
FADE_SECONDS = 0.05


@dataclass(frozen=True)
class Source:
    file: str  # relative to --midi-dir, e.g. "Chopin/chpn_op25_e1.mid"
    composer: str
    title: str
    work: str
    duration_s: float

    @property
    def stem(self) -> str:
        return Path(self.file).stem

    @property
    def recording_id(self) -> str:
        return f"{self.composer}/{self.stem}"


def default_soundfont() -> str | None:
    for candidate in SOUNDFONT_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    return None


def read_sources(midi_dir: Path) -> list[Source]:
    sources_csv = midi_dir / "sources.csv"
    if not sources_csv.is_file():
        raise SystemExit(f"error: {sources_csv} not found (is --midi-dir the piano-midi folder?)")
    out = []
    with sources_csv.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.append(
                Source(
                    file=row["file"],
                    composer=row["composer"],
                    title=row["title"],
                    work=work_of(row["title"]),
                    duration_s=float(row["duration_s"]),
                )
            )
    return out


def select(
    sources: list[Source], *, per_composer: int, min_works: int, min_duration_s: float
) -> dict[str, list[Source]]:
    """Composer -> chosen files (deterministic round-robin over sorted works)."""
    by_composer: dict[str, dict[str, list[Source]]] = defaultdict(lambda: defaultdict(list))
    for s in sources:
        if s.duration_s >= min_duration_s:
            by_composer[s.composer][s.work].append(s)

    chosen: dict[str, list[Source]] = {}
    for composer in sorted(by_composer):
        works = by_composer[composer]
        if len(works) < min_works:
            continue
        names = sorted(works, key=natural_key)
        queues = {w: sorted(works[w], key=lambda s: natural_key(s.title)) for w in names}
        if len(names) > per_composer:  # spread the single round evenly over the works
            names = [names[math.floor(i * len(names) / per_composer)] for i in range(per_composer)]
        picked: list[Source] = []
        depth = 0
        while len(picked) < per_composer:
            progressed = False
            for w in names:
                if depth < len(queues[w]) and len(picked) < per_composer:
                    picked.append(queues[w][depth])
                    progressed = True
            if not progressed:
                break
            depth += 1
        chosen[composer] = picked
    return chosen


def render_clip(
    src: Source,
    midi_dir: Path,
    out_dir: Path,
    soundfont: str,
    sample_rate: int,
    clip_seconds: float,
    vorbis_quality: float,
) -> dict[str, object]:
    """Render one MIDI file, cut and encode the clip; return its manifest row."""
    midi_path = midi_dir / src.file
    with tempfile.TemporaryDirectory(prefix="render_demo_") as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = [
            "fluidsynth",
            "-ni",
            "-q",
            "-O",
            "float",
            "-F",
            str(wav),
            "-r",
            str(sample_rate),
            soundfont,
            str(midi_path),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not wav.is_file():
            raise RuntimeError(f"fluidsynth failed on {src.file}: {proc.stderr.strip()[-500:]}")
        y, sr = sf.read(wav, dtype="float64", always_2d=True)
    if sr != sample_rate:
        raise RuntimeError(f"{src.file}: fluidsynth wrote {sr} Hz, expected {sample_rate}")
    y = y.mean(axis=1)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak <= 0.0:
        raise RuntimeError(f"{src.file}: rendered audio is silent")

    # Sounding region: skip leading (and trailing) silence.
    loud = np.flatnonzero(np.abs(y) >= peak * 10 ** (SILENCE_DB / 20))
    first, last = int(loud[0]), int(loud[-1]) + 1
    n_clip = round(clip_seconds * sr)
    start = first + int(0.25 * (last - first))
    start = max(first, min(start, last - n_clip))
    start = max(0, min(start, len(y) - n_clip))
    seg = y[start : start + n_clip].copy()

    seg *= 10 ** (PEAK_DBFS / 20) / float(np.max(np.abs(seg)))
    n_fade = min(round(FADE_SECONDS * sr), len(seg) // 2)
    if n_fade > 0:
        ramp = np.linspace(0.0, 1.0, n_fade, endpoint=False)
        seg[:n_fade] *= ramp
        seg[-n_fade:] *= ramp[::-1]

    rel_path = Path("audio") / src.composer / f"{src.stem}.ogg"
    dest = out_dir / rel_path
    dest.parent.mkdir(parents=True, exist_ok=True)
    sf.write(
        dest,
        seg.astype(np.float32),
        sr,
        format="OGG",
        subtype="VORBIS",
        compression_level=1.0 - vorbis_quality,
    )
    return {
        "recording_id": src.recording_id,
        "path": rel_path.as_posix(),
        "composer": src.composer,
        "work": src.work,
        "title": src.title,
        "source_midi": src.file,
        "start_s": f"{start / sr:.3f}",
        "duration_s": f"{len(seg) / sr:.3f}",
        "licence": LICENCE,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Render the demo corpus (OGG clips + manifest.csv) from the piano-midi.de MIDI "
            "files with fluidsynth. Maintainer-only: users get the committed audio."
        ),
        epilog=(
            "example: python -P scripts/render_demo_corpus.py "
            "--midi-dir /path/to/piano-midi --out data/demo"
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--midi-dir",
        type=Path,
        required=True,
        default=argparse.SUPPRESS,
        help="piano-midi folder: <Composer>/*.mid plus sources.csv (required)",
    )
    parser.add_argument("--out", type=Path, default=Path("data/demo"), help="output folder")
    parser.add_argument(
        "--soundfont",
        default=default_soundfont(),
        help="SoundFont (.sf2/.sf3); default: first found of " + ", ".join(SOUNDFONT_CANDIDATES),
    )
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="clip length")
    parser.add_argument("--sample-rate", type=int, default=22050, help="output sample rate")
    parser.add_argument("--per-composer", type=int, default=12, help="max clips per composer")
    parser.add_argument(
        "--min-works", type=int, default=6, help="keep composers with at least this many works"
    )
    parser.add_argument(
        "--vorbis-quality",
        type=float,
        default=0.6,
        help="Vorbis VBR quality in [0, 1] (soundfile compression_level = 1 - quality)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel render processes")
    args = parser.parse_args(argv)
    if not args.soundfont or not Path(args.soundfont).is_file():
        parser.error(f"SoundFont not found: {args.soundfont!r} (pass --soundfont)")
    if not 0.0 <= args.vorbis_quality <= 1.0:
        parser.error("--vorbis-quality must be within [0, 1]")
    if shutil.which("fluidsynth") is None:
        parser.error("fluidsynth not found on PATH (apt-get install fluidsynth)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    midi_dir: Path = args.midi_dir.resolve()
    out_dir: Path = args.out
    soundfont = str(Path(args.soundfont).resolve())

    sources = read_sources(midi_dir)
    chosen = select(
        sources,
        per_composer=args.per_composer,
        min_works=args.min_works,
        min_duration_s=args.clip_seconds + MIN_EXTRA_SECONDS,
    )
    jobs = [s for composer in sorted(chosen) for s in chosen[composer]]
    print(f"SoundFont: {soundfont}")
    print(f"{len(chosen)} composers, {len(jobs)} clips -> {out_dir}")
    for composer, picked in chosen.items():
        print(f"  {composer:<13} {len(picked):>3} clips, {len({s.work for s in picked}):>3} works")

    audio_dir = out_dir / "audio"
    if audio_dir.exists():  # start clean so stale clips never linger
        shutil.rmtree(audio_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    t0 = time.monotonic()
    rows: list[dict[str, object]] = []
    failures: list[str] = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {
            pool.submit(
                render_clip,
                s,
                midi_dir,
                out_dir,
                soundfont,
                args.sample_rate,
                args.clip_seconds,
                args.vorbis_quality,
            ): s
            for s in jobs
        }
        for done, fut in enumerate(as_completed(futures), start=1):
            src = futures[fut]
            try:
                rows.append(fut.result())
                status = "ok"
            except Exception as exc:  # report and continue; fail at the end
                failures.append(f"{src.file}: {exc}")
                status = f"FAILED ({exc})"
            elapsed = time.monotonic() - t0
            line = f"[{done:>3}/{len(jobs)}] {elapsed:6.0f}s {src.recording_id} {status}"
            print(line, flush=True)

    rows.sort(key=lambda r: str(r["recording_id"]))
    manifest = out_dir / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

    size_mb = sum(p.stat().st_size for p in audio_dir.rglob("*.ogg")) / 1e6
    minutes = sum(float(r["duration_s"]) for r in rows) / 60
    print(
        f"wrote {manifest} ({len(rows)} clips, {minutes:.1f} min, {size_mb:.1f} MB) "
        f"in {time.monotonic() - t0:.0f}s"
    )
    if failures:
        print(f"{len(failures)} failures:", *failures, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
