"""The repertoire pack: every piano-midi.de piece rendered, augmented and featurized.

Build (development time, needs fluidsynth + SoundFonts + the MIDI folder) in two resumable
stages, one cache file per (piece, variant) in a work directory, each written atomically:

1. render: humanise the MIDI, render the whole piece with the variant's SoundFont, augment
   the audio (``core.render``) -> ``audio/<piece>__<variant>.flac`` + a JSON sidecar;
2. featurize: ``core.featurize.featurize_audio`` (the one featurizer of training and serving)
   on the rendered audio -> ``rows/<fingerprint>/<piece>__<variant>.parquet``.

``assemble`` concatenates the rows into ``<out>/features.parquet`` (zstd, float32) with
``manifest.json`` (schema, config, seeds, counts, sha256), ``pieces.csv``, README and LICENSE.
Training calls ``load_pack``, which refuses a pack of another feature schema or config.

Nothing here is needed at run time except ``load_pack``; imports of the build side are lazy.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.config import FeatureConfig
from core.datasets.works import natural_key, piece_id, work_of
from core.fileio import atomic_write

LICENCE = "CC BY-SA 3.0 DE"
ATTRIBUTION = "Bernd Krüger, http://www.piano-midi.de"
PACK_FORMAT = 1
META_COLUMNS = [
    "piece",
    "composer",
    "work",
    "title",
    "source",
    "augmentation",
    "segment",
    "start_s",
]
PIECES_COLUMNS = [
    "piece",
    "file",
    "composer",
    "title",
    "work",
    "year",
    "duration_s",
    "bytes",
    "sha256",
]
SOURCES_COLUMNS = ["file", "composer", "title", "year", "duration_s", "bytes"]
DEFAULT_BASE_SEED = 20260
CHUNK_SECONDS = 30.0  # music featurized per (piece, variant, chunk)
PREROLL_SECONDS = 2.0  # rendered before a chunk (pedal, reverb) and cut off


class PackError(RuntimeError):
    """The pack is missing, corrupt, or was built with another feature schema/config."""


@dataclass(frozen=True)
class Piece:
    """One MIDI file of the collection (derived metadata only: this is what ships)."""

    file: str  # relative to the MIDI folder, e.g. "Chopin/chpn_op25_e1.mid"
    composer: str
    title: str
    year: str
    duration_s: float
    bytes: int
    sha256: str = ""  # of the MIDI file (the downloader verifies it)

    @property
    def piece(self) -> str:
        return piece_id(self.composer, self.file)

    @property
    def work(self) -> str:
        return work_of(self.title)

    @property
    def slug(self) -> str:
        return self.piece.replace("/", "__")


@dataclass(frozen=True)
class Variant:
    """One rendering of every piece: a SoundFont plus its own augmentation draw."""

    name: str
    soundfont: str  # core.render short name or path
    humanise_strength: float = 1.0
    audio_augment: bool = True


DEFAULT_VARIANTS = (Variant("musescore", "musescore"), Variant("fluidr3", "fluidr3"))


@dataclass(frozen=True)
class BuildOptions:
    midi_dir: Path
    work_dir: Path
    config: FeatureConfig
    variants: tuple[Variant, ...] = DEFAULT_VARIANTS
    base_seed: int = DEFAULT_BASE_SEED
    chunks: int = 1  # CHUNK_SECONDS chunks featurized per piece and variant


# ------------------------------------------------------------------ pieces list


def read_sources(midi_dir: Path) -> list[Piece]:
    """The collection's ``sources.csv`` (file,composer,title,year,duration_s,bytes)."""
    path = Path(midi_dir) / "sources.csv"
    if not path.is_file():
        raise PackError(f"{path} not found: --midi-dir must be the piano-midi folder.")
    pieces = read_pieces(path)
    missing = [p.file for p in pieces if not (Path(midi_dir) / p.file).is_file()]
    if missing:
        raise PackError(
            f"{len(missing)} MIDI files listed in {path} are missing (first: {missing[0]}); "
            "fetch them with `composer download-midi --dest DIR`."
        )
    return [replace(p, sha256=sha256(Path(midi_dir) / p.file)) for p in pieces]


def read_pieces(path: Path) -> list[Piece]:
    with Path(path).open(newline="", encoding="utf-8") as fh:
        pieces = [
            Piece(
                file=row["file"],
                composer=row["composer"],
                title=row["title"],
                year=str(row.get("year", "")),
                duration_s=float(row["duration_s"]),
                bytes=int(row["bytes"]),
                sha256=row.get("sha256") or "",
            )
            for row in csv.DictReader(fh)
        ]
    return sorted(pieces, key=lambda p: (p.composer, natural_key(p.file)))


def write_pieces(pieces: Sequence[Piece], path: Path) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(PIECES_COLUMNS)
            for p in pieces:
                w.writerow([getattr(p, c) for c in PIECES_COLUMNS])

    atomic_write(path, write)


# ------------------------------------------------------------------ chunks
# A piece is featurized in CHUNK_SECONDS chunks spread over it (a van der Corput order of
# non-overlapping slots: middle, quarters, eighths...), each SoundFont taking other slots,
# so every extra chunk adds new music; ``BuildOptions.chunks`` says how many per SoundFont.
# Only the chunk (plus a pre-roll for pedal and reverb) is rendered.


def midi_seconds(path: Path) -> float:
    import mido

    return float(mido.MidiFile(str(path)).length)


def _corput(n: int) -> list[int]:
    order: list[int] = []
    i = 1
    while len(order) < n:
        x, denom, k = 0.0, 1.0, i
        while k:
            denom *= 2
            x += (k % 2) / denom
            k //= 2
        slot = min(n - 1, math.floor(x * n))
        if slot not in order:
            order.append(slot)
        i += 1
        if i > 64 * n:  # a rounding collision left a slot out: append the rest in order
            order += [j for j in range(n) if j not in order]
    return order


def chunk_plan(seconds: float, n_variants: int, variant_index: int) -> list[tuple[float, float]]:
    """(score start, length) of each chunk this variant may use, in priority order."""
    if seconds <= CHUNK_SECONDS:
        return [(0.0, seconds)]
    slots = math.floor(seconds / CHUNK_SECONDS)
    offset = (seconds - slots * CHUNK_SECONDS) / 2
    order = _corput(slots)
    # snake order (A B B A A B ...) so no SoundFont gets only the late slots
    owner = [
        i % n_variants if (i // n_variants) % 2 == 0 else n_variants - 1 - i % n_variants
        for i in range(len(order))
    ]
    mine = [slot for slot, v in zip(order, owner, strict=True) if v == variant_index]
    mine = mine or order[:1]
    return [(round(offset + s * CHUNK_SECONDS, 3), CHUNK_SECONDS) for s in mine]


# ------------------------------------------------------------------ stage 1: render


def _key(piece: Piece, variant: Variant, chunk: int) -> str:
    return f"{piece.slug}__{variant.name}__c{chunk}"


def audio_path(work_dir: Path, piece: Piece, variant: Variant, chunk: int = 0) -> Path:
    return Path(work_dir) / "audio" / f"{_key(piece, variant, chunk)}.flac"


def render_piece(
    piece: Piece, variant: Variant, opts: BuildOptions, chunk: int = 0
) -> tuple[Path, bool]:
    """Render + augment one chunk of a (piece, variant) unless cached; (sidecar, computed?).

    The sidecar says ``"skip": true`` when the piece is too short for this chunk.
    """
    import soundfile as sf

    from core import render

    target = audio_path(opts.work_dir, piece, variant, chunk)
    sidecar = target.with_suffix(".json")
    if sidecar.is_file():
        return sidecar, False
    midi = Path(opts.midi_dir) / piece.file
    seconds = midi_seconds(midi)
    index = opts.variants.index(variant)
    plan = chunk_plan(seconds, len(opts.variants), index)
    if chunk >= len(plan):
        meta = {"piece": piece.piece, "variant": variant.name, "chunk": chunk, "skip": True}
        atomic_write(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(meta)))
        return sidecar, True
    start, length = plan[chunk]
    seed = render.seed_for(opts.base_seed, piece.piece, variant.name)  # one draw per variant
    sr = opts.config.sample_rate
    pre = max(0.0, start - PREROLL_SECONDS)
    out = render.render_augmented(
        midi,
        variant.soundfont,
        sr,
        seed,
        humanise_strength=variant.humanise_strength,
        audio_augment=variant.audio_augment,
        from_s=pre,
        until_s=start + length + 0.5,
        soundfont_cache=Path(opts.work_dir) / "soundfonts",
    )
    a, b = (float(x) for x in out.time_map(np.array([start, start + length])))
    y = out.samples[round(a * sr) : round(b * sr)]
    if start + length >= seconds - 0.01:  # the piece's end: keep the release
        y = trim_tail(out.samples[round(a * sr) :], sr)
    atomic_write(target, lambda tmp: sf.write(tmp, y, sr, format="FLAC"))
    meta = {
        "piece": piece.piece,
        "variant": variant.name,
        "chunk": chunk,
        "soundfont": out.soundfont,
        "seed": seed,
        "sample_rate": sr,
        "midi_seconds": round(seconds, 3),
        "score_start_s": start,
        "score_seconds": length,
        "start_s": round(performed_seconds(out.humanise, start), 3),
        "seconds": round(len(y) / sr, 3),
        "augmentation": out.describe(),
        "params": out.params(),
    }
    atomic_write(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    return sidecar, True


def performed_seconds(humanise: Any, score_s: float) -> float:
    """Where score time ``score_s`` falls in the whole humanised performance."""
    from core import render

    return float(render.time_map(humanise, score_s + 1.0)(score_s))


def trim_tail(y: np.ndarray, sample_rate: int, floor_db: float = -60.0) -> np.ndarray:
    """Drop the release tail fluidsynth renders after the music (below ``floor_db`` re peak)."""
    loud = np.flatnonzero(np.abs(y) >= np.max(np.abs(y)) * 10 ** (floor_db / 20))
    end = min(len(y), int(loud[-1]) + 1 + int(0.5 * sample_rate)) if loud.size else len(y)
    return y[:end]


# ------------------------------------------------------------------ stage 2: featurize


def rows_path(
    work_dir: Path, config: FeatureConfig, piece: Piece, variant: Variant, chunk: int = 0
) -> Path:
    key = f"{config.schema_id.replace('/', '-')}-{config.fingerprint()}"
    return Path(work_dir) / "rows" / key / f"{_key(piece, variant, chunk)}.parquet"


def labelled_rows(
    y: np.ndarray, config: FeatureConfig, head: dict[str, Any], offset_s: float = 0.0
) -> pd.DataFrame:
    """``featurize_audio`` rows (float32, starts shifted by ``offset_s``) behind the
    metadata columns in ``head``: the row format of the pack and the shifted set."""
    from core.featurize import featurize_audio

    rows = featurize_audio(y, config)
    rows["start_s"] = (rows["start_s"] + np.float32(offset_s)).astype(np.float32)
    features = [c for c in rows.columns if c not in ("segment", "start_s")]
    rows[features] = rows[features].astype(np.float32)
    return pd.concat([pd.DataFrame(head, index=rows.index), rows], axis=1)


def featurize_piece(
    piece: Piece, variant: Variant, opts: BuildOptions, chunk: int = 0
) -> tuple[Path, bool]:
    """Feature rows of one rendered chunk unless cached; (rows path, computed?)."""
    import soundfile as sf

    target = rows_path(opts.work_dir, opts.config, piece, variant, chunk)
    if target.is_file():
        return target, False
    src = audio_path(opts.work_dir, piece, variant, chunk)
    meta = json.loads(src.with_suffix(".json").read_text())
    if meta.get("skip"):
        out = pd.DataFrame()
    else:
        y, sr = sf.read(src, dtype="float32")
        if sr != opts.config.sample_rate:
            raise PackError(f"{src}: {sr} Hz, the feature config wants {opts.config.sample_rate}")
        head = {
            "piece": piece.piece,
            "composer": piece.composer,
            "work": piece.work,
            "title": piece.title,
            "source": variant.name,
            "augmentation": meta["augmentation"],
        }
        out = labelled_rows(y, opts.config, head, offset_s=meta["start_s"])
    atomic_write(target, lambda tmp: out.to_parquet(tmp, index=False))
    return target, True


# ------------------------------------------------------------------ the build loop


@dataclass(frozen=True)
class StageReport:
    stage: str
    jobs: int
    computed: int
    cpu_s: float  # summed over workers, fluidsynth included
    wall_s: float
    failures: tuple[str, ...]


def _run_one(
    stage: str, piece: Piece, variant: Variant, opts: BuildOptions, chunk: int
) -> tuple[bool, float]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = _cpu_seconds()
    fn = render_piece if stage == "render" else featurize_piece
    _, computed = fn(piece, variant, opts, chunk)
    return computed, _cpu_seconds() - t0


def _cpu_seconds() -> float:
    """CPU time of this process plus its waited-for children (fluidsynth runs as one)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def jobs_of(pieces: Sequence[Piece], opts: BuildOptions) -> list[tuple[Piece, Variant, int]]:
    """Chunk by chunk (all pieces' first chunks before any second one), so a stopped build
    still covers every piece evenly."""
    return [(p, v, k) for k in range(opts.chunks) for p in pieces for v in opts.variants]


def run_stage(
    stage: str,
    pieces: Sequence[Piece],
    opts: BuildOptions,
    workers: int = 2,
    progress: Callable[[str], None] | None = print,
) -> StageReport:
    """Run ``render`` or ``featurize`` for every (piece, variant, chunk), at most 2 processes."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    jobs = jobs_of(pieces, opts)
    if stage == "render":  # decode SF3 SoundFonts once, before the workers need them
        from core.render import fast_soundfont

        for v in opts.variants:
            fast_soundfont(v.soundfont, Path(opts.work_dir) / "soundfonts")
    t0 = time.monotonic()
    computed, cpu, failures = 0, 0.0, []
    with ProcessPoolExecutor(max_workers=max(1, min(2, workers))) as pool:
        futures = {pool.submit(_run_one, stage, p, v, opts, k): (p, v, k) for p, v, k in jobs}
        for done, fut in enumerate(as_completed(futures), start=1):
            p, v, k = futures[fut]
            try:
                did, seconds = fut.result()
                computed += did
                cpu += seconds
                status = f"{seconds:.1f} CPU-s" if did else "cached"
            except Exception as exc:  # report and continue; the caller decides
                failures.append(f"{p.piece} [{v.name} c{k}]: {exc}")
                status = f"FAILED ({exc})"
            if progress:
                elapsed = time.monotonic() - t0
                progress(
                    f"{stage} [{done:>4}/{len(jobs)}] {elapsed:6.0f}s "
                    f"{p.piece} [{v.name} c{k}] {status}"
                )
    return StageReport(stage, len(jobs), computed, cpu, time.monotonic() - t0, tuple(failures))


def build(
    pieces: Sequence[Piece],
    opts: BuildOptions,
    out_dir: Path,
    command: str,
    workers: int = 2,
    progress: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Render, featurize and assemble: the whole pack build (each stage resumable)."""
    reports = [run_stage(stage, pieces, opts, workers, progress) for stage in STAGES]
    failures = [f for r in reports for f in r.failures]
    if failures:
        raise PackError(
            f"{len(failures)} jobs failed (rerun to retry only those): " + "; ".join(failures[:5])
        )
    extra = {
        "build_cpu_s": {r.stage: round(r.cpu_s, 1) for r in reports},
        "build_computed": {r.stage: r.computed for r in reports},
    }
    return assemble(pieces, opts, out_dir, command, extra)


STAGES = ("render", "featurize")


def options(
    midi_dir: Path | str,
    work_dir: Path | str,
    config: FeatureConfig,
    chunks: int = 1,
    soundfonts: Sequence[str] | None = None,
) -> BuildOptions:
    """Build options for front doors; ``soundfonts`` (short names) replace the default pair."""
    variants = tuple(Variant(name, name) for name in soundfonts) if soundfonts else None
    return BuildOptions(
        midi_dir=Path(midi_dir),
        work_dir=Path(work_dir),
        config=config,
        chunks=chunks,
        **({"variants": variants} if variants else {}),
    )


def build_piece(piece_id_: str, opts: BuildOptions) -> dict[str, Any]:
    """Render and featurize every variant and chunk of one piece in this process (one mapped
    Airflow task); resumable like the CLI build, sharing its cache."""
    piece = select_pieces(read_sources(opts.midi_dir), [piece_id_])[0]
    computed, t0 = 0, _cpu_seconds()
    for _, variant, chunk in jobs_of([piece], opts):
        computed += render_piece(piece, variant, opts, chunk)[1]
        computed += featurize_piece(piece, variant, opts, chunk)[1]
    return {"piece": piece.piece, "computed": computed, "cpu_s": round(_cpu_seconds() - t0, 2)}


# ------------------------------------------------------------------ assemble + load


def assemble(
    pieces: Sequence[Piece],
    opts: BuildOptions,
    out_dir: Path,
    command: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Concatenate cached rows into ``out_dir``: features.parquet, manifest.json, pieces.csv."""
    frames = []
    for p, v, k in jobs_of(pieces, opts):
        path = rows_path(opts.work_dir, opts.config, p, v, k)
        if not path.is_file():
            raise PackError(f"{p.piece} [{v.name} c{k}] is not featurized yet ({path}).")
        frames.append(pd.read_parquet(path))
    table = pd.concat([f for f in frames if len(f)], ignore_index=True)
    table = table.sort_values(["piece", "source", "start_s"], kind="stable")
    table["segment"] = table.groupby(["piece", "source"]).cumcount().astype(np.int32)
    return write_table(table, pieces, opts, out_dir, command, extra)


def write_table(
    table: pd.DataFrame,
    pieces: Sequence[Piece],
    opts: BuildOptions,
    out_dir: Path,
    command: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out_dir = Path(out_dir)
    table = table.sort_values(["piece", "source", "segment"], kind="stable").reset_index(drop=True)
    parquet = out_dir / "features.parquet"
    atomic_write(
        parquet,
        lambda tmp: table.to_parquet(tmp, index=False, compression="zstd", compression_level=19),
    )
    write_pieces(pieces, out_dir / "pieces.csv")
    features = [c for c in table.columns if c not in META_COLUMNS]
    manifest = {
        "format": PACK_FORMAT,
        "feature_schema": opts.config.schema_id,
        "feature_config": opts.config.model_dump(),
        "feature_fingerprint": opts.config.fingerprint(),
        "n_features": len(features),
        "rows": len(table),
        "pieces": int(table["piece"].nunique()),
        "works": int(table["work"].nunique()),
        "composers": int(table["composer"].nunique()),
        "rows_per_composer": {k: int(n) for k, n in table["composer"].value_counts().items()},
        "rows_per_source": {k: int(n) for k, n in table["source"].value_counts().items()},
        "variants": [asdict(v) for v in opts.variants],
        "base_seed": opts.base_seed,
        "chunks_per_piece_variant": opts.chunks,
        "chunk_seconds": CHUNK_SECONDS,
        "licence": LICENCE,
        "attribution": ATTRIBUTION,
        "build_command": command,
        "parquet_sha256": sha256(parquet),
        "parquet_bytes": parquet.stat().st_size,
        **(extra or {}),
    }
    atomic_write(
        out_dir / "manifest.json",
        lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n"),
    )
    return manifest


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


REBUILD_HINT = (
    "Rebuild it with the current feature code: `composer build-pack --midi-dir PATH "
    "--out {out}` (PATH: the piano-midi.de MIDI folder; `composer download-midi --dest PATH` "
    "fetches it), or train without it: COMPOSER_USE_PACK=false."
)


def read_manifest(pack_dir: Path) -> dict[str, Any]:
    path = Path(pack_dir) / "manifest.json"
    if not path.is_file():
        raise PackError(f"No pack at {pack_dir} (manifest.json missing). " + _hint(pack_dir))
    return json.loads(path.read_text())


def _hint(pack_dir: Path) -> str:
    return REBUILD_HINT.format(out=pack_dir)


def load_pack(pack_dir: Path, config: FeatureConfig, verify: bool = True) -> pd.DataFrame:
    """The pack's rows (META_COLUMNS + features) for ``config``; refuses any other schema/config
    and a parquet whose sha256 does not match its manifest."""
    pack_dir = Path(pack_dir)
    manifest = read_manifest(pack_dir)
    if manifest.get("feature_schema") != config.schema_id:
        raise PackError(
            f"The pack at {pack_dir} was built with feature schema "
            f"{manifest.get('feature_schema')}, this code computes {config.schema_id}. "
            + _hint(pack_dir)
        )
    if manifest.get("feature_fingerprint") != config.fingerprint():
        changed = {
            k: (manifest.get("feature_config", {}).get(k), v)
            for k, v in config.model_dump().items()
            if manifest.get("feature_config", {}).get(k) != v
        }
        raise PackError(
            f"The pack at {pack_dir} was built with another feature config "
            f"(pack vs now: {changed}). " + _hint(pack_dir)
        )
    parquet = pack_dir / "features.parquet"
    if not parquet.is_file():
        raise PackError(f"{parquet} is missing. " + _hint(pack_dir))
    if verify and sha256(parquet) != manifest.get("parquet_sha256"):
        raise PackError(
            f"{parquet} does not match the sha256 in its manifest (corrupt or edited; a git "
            "LFS pointer?). Restore it from git or " + _hint(pack_dir)
        )
    table = pd.read_parquet(parquet)
    if len(table) != manifest.get("rows"):
        raise PackError(f"{parquet}: {len(table)} rows, the manifest says {manifest.get('rows')}.")
    return table


def select_pieces(pieces: Iterable[Piece], only: Sequence[str] | None = None) -> list[Piece]:
    """All pieces, or those whose id or composer is in ``only``."""
    pieces = list(pieces)
    if not only:
        return pieces
    wanted = set(only)
    chosen = [p for p in pieces if p.piece in wanted or p.composer in wanted]
    if not chosen:
        raise PackError(f"No piece matches {sorted(wanted)}.")
    return chosen


# ------------------------------------------------------------------ the shifted bench set
# Every demo recording again, but from a SoundFont the pack never uses (TimGM6mb) and
# humanised: the same ~30 s of music (start mapped through the tempo change), so a model's
# score on it measures robustness to another piano and another "performer".

SHIFTED_SOUNDFONT = "timgm6mb"
SHIFTED_COLUMNS = [
    "recording_id",
    "composer",
    "work",
    "title",
    "source",
    "augmentation",
    "segment",
    "start_s",
]
FADE_SECONDS = 0.05


@dataclass(frozen=True)
class Excerpt:
    """One demo row: which piece and which part of it."""

    recording_id: str
    composer: str
    work: str
    title: str
    source_midi: str
    start_s: float
    duration_s: float

    @property
    def slug(self) -> str:
        return self.recording_id.replace("/", "__")


def read_demo_excerpts(manifest_csv: Path) -> list[Excerpt]:
    frame = pd.read_csv(manifest_csv)
    return [
        Excerpt(r.recording_id, r.composer, r.work, r.title, r.source_midi, r.start_s, r.duration_s)
        for r in frame.itertuples(index=False)
    ]


def shifted_audio_path(work_dir: Path, ex: Excerpt) -> Path:
    return Path(work_dir) / "shifted" / "audio" / f"{ex.slug}.flac"


def render_excerpt(ex: Excerpt, opts: BuildOptions) -> tuple[Path, bool]:
    """Render the humanised piece up to the excerpt's end with TimGM6mb and cut the excerpt."""
    import soundfile as sf

    from core import render

    target = shifted_audio_path(opts.work_dir, ex)
    sidecar = target.with_suffix(".json")
    if target.is_file() and sidecar.is_file():
        return target, False
    seed = render.seed_for(opts.base_seed, "shifted", ex.recording_id)
    sr = opts.config.sample_rate
    out = render.render_augmented(
        Path(opts.midi_dir) / ex.source_midi,
        SHIFTED_SOUNDFONT,
        sr,
        seed,
        audio_augment=False,
        from_s=max(0.0, ex.start_s - PREROLL_SECONDS),
        until_s=ex.start_s + ex.duration_s + 2.0,
        soundfont_cache=Path(opts.work_dir) / "soundfonts",
    )
    start, end = (
        float(x) for x in out.time_map(np.array([ex.start_s, ex.start_s + ex.duration_s]))
    )
    y = out.samples[round(start * sr) : round(end * sr)].astype(np.float64)
    y = render.normalise(y)  # as the demo clips: -1 dBFS peak and 50 ms fades
    n_fade = min(round(FADE_SECONDS * sr), len(y) // 2)
    ramp = np.linspace(0.0, 1.0, n_fade, endpoint=False, dtype=np.float32)
    y[:n_fade] *= ramp
    y[len(y) - n_fade :] *= ramp[::-1]
    atomic_write(target, lambda tmp: sf.write(tmp, y, sr, format="FLAC"))
    meta = {
        "recording_id": ex.recording_id,
        "soundfont": out.soundfont,
        "seed": seed,
        "demo_start_s": ex.start_s,
        "start_s": round(performed_seconds(out.humanise, ex.start_s), 3),
        "seconds": round(len(y) / sr, 3),
        "augmentation": out.describe(),
        "params": out.params(),
    }
    atomic_write(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    return target, True


def featurize_excerpt(ex: Excerpt, opts: BuildOptions) -> pd.DataFrame:
    import soundfile as sf

    src = shifted_audio_path(opts.work_dir, ex)
    meta = json.loads(src.with_suffix(".json").read_text())
    y, _ = sf.read(src, dtype="float32")
    head = {
        "recording_id": ex.recording_id,
        "composer": ex.composer,
        "work": ex.work,
        "title": ex.title,
        "source": SHIFTED_SOUNDFONT,
        "augmentation": meta["augmentation"],
    }
    return labelled_rows(y, opts.config, head)


def _shifted_one(stage: str, ex: Excerpt, opts: BuildOptions) -> tuple[Any, float]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = _cpu_seconds()
    result = render_excerpt(ex, opts)[1] if stage == "render" else featurize_excerpt(ex, opts)
    return result, _cpu_seconds() - t0


def build_shifted(
    excerpts: Sequence[Excerpt],
    opts: BuildOptions,
    out_dir: Path | None,
    command: str,
    workers: int = 2,
    progress: Callable[[str], None] | None = print,
    featurize: bool = True,
) -> dict[str, Any]:
    """Render (cached) and, if ``featurize``, featurize every excerpt into ``out_dir``."""
    from core.render import fast_soundfont

    fast_soundfont(SHIFTED_SOUNDFONT, Path(opts.work_dir) / "soundfonts")
    stages = ["render", "featurize"] if featurize else ["render"]
    frames: dict[str, pd.DataFrame] = {}
    cpu: dict[str, float] = {}
    for stage in stages:
        t0, cpu[stage] = time.monotonic(), 0.0
        with ProcessPoolExecutor(max_workers=max(1, min(2, workers))) as pool:
            futures = {pool.submit(_shifted_one, stage, ex, opts): ex for ex in excerpts}
            for done, fut in enumerate(as_completed(futures), start=1):
                ex = futures[fut]
                result, seconds = fut.result()
                cpu[stage] += seconds
                if stage == "featurize":
                    frames[ex.recording_id] = result
                if progress:
                    progress(
                        f"shifted {stage} [{done:>3}/{len(excerpts)}] "
                        f"{time.monotonic() - t0:5.0f}s {ex.recording_id} {seconds:.1f} CPU-s"
                    )
    if not featurize or out_dir is None:
        return {"cpu_s": cpu}
    table = pd.concat([frames[k] for k in sorted(frames)], ignore_index=True)
    out_dir = Path(out_dir)
    parquet = out_dir / "features.parquet"
    atomic_write(
        parquet,
        lambda tmp: table.to_parquet(tmp, index=False, compression="zstd", compression_level=19),
    )
    excerpts_meta = {}
    for ex in excerpts:
        meta = json.loads(shifted_audio_path(opts.work_dir, ex).with_suffix(".json").read_text())
        excerpts_meta[ex.recording_id] = {
            k: meta[k] for k in ("demo_start_s", "start_s", "seconds", "seed", "augmentation")
        }
    manifest = {
        "format": PACK_FORMAT,
        "feature_schema": opts.config.schema_id,
        "feature_config": opts.config.model_dump(),
        "feature_fingerprint": opts.config.fingerprint(),
        "soundfont": SHIFTED_SOUNDFONT,
        "rows": len(table),
        "recordings": int(table["recording_id"].nunique()),
        "composers": int(table["composer"].nunique()),
        "base_seed": opts.base_seed,
        "licence": LICENCE,
        "attribution": ATTRIBUTION,
        "build_command": command,
        "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
        "parquet_sha256": sha256(parquet),
        "parquet_bytes": parquet.stat().st_size,
        "excerpts": excerpts_meta,
    }
    atomic_write(
        out_dir / "manifest.json",
        lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2) + "\n"),
    )
    return manifest


def load_shifted(shifted_dir: Path, config: FeatureConfig) -> pd.DataFrame:
    """The shifted bench set for ``config`` (same schema/config/sha checks as the pack)."""
    return load_pack(shifted_dir, config)


# ------------------------------------------------------------------ fetching the MIDI files


def download_midi(
    pieces: Sequence[Piece], base_url: str, dest: Path, progress: bool = False
) -> list[Path]:
    """Fetch every piece's MIDI file from ``{base_url}/{file}`` into ``dest/<file>`` (resumable,
    size- and sha256-checked by ``core.download``) and write ``dest/sources.csv`` so ``dest``
    is a folder ``composer build-pack --midi-dir`` accepts."""
    from core.download import DownloadError, RemoteFile, download_file

    dest = Path(dest)
    paths = []
    for p in pieces:
        folder, name = (dest / p.file).parent, Path(p.file).name
        remote = RemoteFile(
            name=name,
            url=f"{base_url.rstrip('/')}/{p.file}",
            size=p.bytes,
            algorithm="sha256" if p.sha256 else None,
            digest=p.sha256 or None,
        )
        try:
            paths.append(download_file(remote, folder, progress=progress, retries=2, backoff=0.5))
        except DownloadError as exc:
            raise type(exc)(
                f"{exc} (MIDI base URL: {base_url}; change it with --base-url or "
                "COMPOSER_MIDI_BASE_URL)"
            ) from exc

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(SOURCES_COLUMNS)
            for p in pieces:
                w.writerow([getattr(p, c) for c in SOURCES_COLUMNS])

    atomic_write(dest / "sources.csv", write)
    return paths
