"""The repertoire pack's vocabulary and its list of pieces: what a piece, a variant and the
build options are, reading/writing ``sources.csv``/``pieces.csv``, fetching the MIDI files.

See ``core.datasets.pack`` for the build as a whole."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

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
            "fetch them with `composer-id download-midi --dest DIR`."
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


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------ fetching the MIDI files


def download_midi(
    pieces: Sequence[Piece], base_url: str, dest: Path, progress: bool = False
) -> list[Path]:
    """Fetch every piece's MIDI file from ``{base_url}/{file}`` into ``dest/<file>`` (resumable,
    size- and sha256-checked by ``core.download``) and write ``dest/sources.csv`` so ``dest``
    is a folder ``composer-id build-pack --midi-dir`` accepts."""
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
