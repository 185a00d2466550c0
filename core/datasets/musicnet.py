"""MusicNet (Thickstun et al., 2017): 330 freely licensed classical recordings with metadata.

Source: Zenodo record 5120004 (``musicnet.tar.gz``, ~11 GB, and ``musicnet_metadata.csv``),
licence CC BY 4.0. After :func:`download`, ``settings.musicnet_dir`` holds::

    musicnet_metadata.csv            id,composer,composition,movement,ensemble,source,
                                     transcriber,catalog_name,seconds
    musicnet/train_data/<id>.wav     (320 recordings)
    musicnet/train_labels/<id>.csv   note labels (unused here)
    musicnet/test_data/<id>.wav      (10 recordings, MusicNet's official test set)
    musicnet/test_labels/<id>.csv

Caveats that shape every experiment built on this loader:

* **Composer is confounded with ensemble.** Only Beethoven (93 recordings), Bach (39) and
  Schubert (24) have *Solo Piano* recordings; Mozart, Brahms, Dvořák, Haydn, Ravel, Fauré
  and Cambini appear only in chamber/other ensembles. A classifier trained on all
  ensembles can learn "string quartet vs piano" instead of composer, so the default
  manifest is Solo Piano only (three composers).
* **Splits are grouped by work.** Movements and repeated performances of one composition
  sound alike (same keys, themes, often the same performer), so a random split by
  recording leaks. Everything downstream splits by the ``work`` column (see
  :func:`load_manifest`); MusicNet's own ``official_split`` is kept only for reference.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import pandas as pd

from core.config import Settings
from core.download import (
    DownloadError,
    download_file,
    extraction_marker,
    fetch_record_files,
    is_extracted,
    safe_extract_tar,
)

log = logging.getLogger(__name__)

ARCHIVE_NAME = "musicnet.tar.gz"
METADATA_NAME = "musicnet_metadata.csv"
DATA_DIRNAME = "musicnet"
SPLITS = ("train", "test")

#: MusicNet's official test recordings, used for ``official_split`` when the audio folders are
#: not on disk (e.g. metadata-only checks). Files on disk take precedence.
OFFICIAL_TEST_IDS = frozenset(
    {"1759", "1819", "2106", "2191", "2298", "2303", "2382", "2416", "2556", "2628"}
)

METADATA_COLUMNS = (
    "id",
    "composer",
    "composition",
    "movement",
    "ensemble",
    "source",
    "transcriber",
    "catalog_name",
    "seconds",
)
MANIFEST_COLUMNS = [
    "recording_id",
    "path",
    "composer",
    "work",
    "title",
    "ensemble",
    "official_split",
    "duration_s",
]

_DOWNLOAD_HINT = (
    "Run `composer-id download` (or `make download-data`) to fetch MusicNet, or set "
    "COMPOSER_MUSICNET_DIR to a directory that already holds it."
)


def download(settings: Settings, progress: bool = True) -> Path:
    """Fetch and unpack MusicNet into ``settings.musicnet_dir``; return that root.

    Idempotent and offline-safe once done: if the extraction marker says the archive was
    fully unpacked and the metadata is present, nothing touches the network. Otherwise the
    record's file list (with sizes and md5s) is read from ``settings.musicnet_base_url``,
    both files are downloaded (resuming any ``.part``), and the tarball is extracted. The
    tarball is kept so a re-extraction never needs the network; delete it to save ~11 GB.
    """
    root = Path(settings.musicnet_dir or Path(settings.home) / "musicnet")
    root.mkdir(parents=True, exist_ok=True)
    archive = root / ARCHIVE_NAME
    metadata = root / METADATA_NAME
    if metadata.exists() and is_extracted(archive, root):
        log.info("MusicNet already downloaded and extracted in %s", root)
        return root

    files = {
        f.name: f for f in fetch_record_files(settings.musicnet_base_url, settings.musicnet_record)
    }
    missing = [name for name in (ARCHIVE_NAME, METADATA_NAME) if name not in files]
    if missing:
        raise DownloadError(
            f"Zenodo record {settings.musicnet_record} at {settings.musicnet_base_url} does not "
            f"list {', '.join(missing)} (it lists: {', '.join(sorted(files)) or 'nothing'}). "
            "Check settings musicnet_record / musicnet_base_url."
        )
    download_file(files[METADATA_NAME], root, progress=progress)
    download_file(files[ARCHIVE_NAME], root, progress=progress)
    if not is_extracted(archive, root):
        safe_extract_tar(archive, root, progress=progress)
    data_dir = root / DATA_DIRNAME
    if not any((data_dir / f"{split}_data").is_dir() for split in SPLITS):
        extraction_marker(archive, root).unlink(missing_ok=True)
        raise DownloadError(
            f"{archive} did not contain the expected {DATA_DIRNAME}/train_data or "
            f"{DATA_DIRNAME}/test_data folders; is record {settings.musicnet_record} MusicNet?"
        )
    return root


def _clean(value: object) -> str:
    """Strip and collapse whitespace so cosmetic differences never split a group."""
    return re.sub(r"\s+", " ", str(value)).strip() if pd.notna(value) else ""


def _data_dir(root: Path) -> Path:
    """``root/musicnet`` normally; ``root`` itself if it already is the extracted folder."""
    nested = root / DATA_DIRNAME
    if not nested.is_dir() and any((root / f"{split}_data").is_dir() for split in SPLITS):
        return root
    return nested


def work_id(composer: str, composition: str, catalog_name: str = "") -> str:
    """Identity of a composition: ``"<composer>: <catalog_name>"``, else ``"<composer>:
    <composition>"``.

    The catalogue number is preferred because in MusicNet's metadata it is the finer and
    more reliable key: every catalogue number maps to exactly one composition title, but
    some titles cover several works - Schubert's "Piano Sonata in A minor" is both D784 and
    D845, and "Piano Sonata in A major" both D664 and D959. Grouping by title would merge
    those, grouping by catalogue number keeps them apart while all movements and repeated
    performances of one sonata (e.g. the five recordings of Op. 27 No. 2) share one id.
    """
    composer, composition, catalog = _clean(composer), _clean(composition), _clean(catalog_name)
    return f"{composer}: {catalog or composition}"


def _split_of(recording_id: str, data_dir: Path) -> str:
    """MusicNet's split for one recording: from where its files are, else the known list."""
    for split in SPLITS:
        if (data_dir / f"{split}_data" / f"{recording_id}.wav").exists() or (
            data_dir / f"{split}_labels" / f"{recording_id}.csv"
        ).exists():
            return split
    return "test" if recording_id in OFFICIAL_TEST_IDS else "train"


def load_manifest(
    root: Path,
    ensemble: str | None = "Solo Piano",
    min_recordings: int = 1,
    require_audio: bool = True,
) -> pd.DataFrame:
    """One row per MusicNet recording: the table every later stage starts from.

    Columns: ``recording_id`` (str), ``path`` (absolute wav path), ``composer``, ``work``
    (see :func:`work_id`; split by this column, never by recording), ``title``
    (composition + movement), ``ensemble``, ``official_split`` (``"train"``/``"test"``) and
    ``duration_s``.

    ``ensemble`` keeps one ensemble (case-insensitive; ``None`` keeps all - beware the
    composer/ensemble confound described in the module docstring). Composers with fewer than
    ``min_recordings`` remaining recordings are dropped. With ``require_audio`` rows whose wav
    is missing are dropped with a warning; ``False`` keeps them, so the metadata can be
    inspected without the 11 GB of audio.
    """
    root = Path(root).expanduser().resolve()
    metadata_path = root / METADATA_NAME
    if not metadata_path.is_file():
        raise FileNotFoundError(
            f"MusicNet metadata not found: expected {metadata_path}. {_DOWNLOAD_HINT}"
        )
    meta = pd.read_csv(metadata_path, dtype=str, keep_default_na=False)
    missing_cols = [c for c in METADATA_COLUMNS if c not in meta.columns]
    if missing_cols:
        raise ValueError(f"{metadata_path} lacks columns {missing_cols}; is it MusicNet's?")

    if ensemble is not None:
        wanted = _clean(ensemble).casefold()
        keep = meta["ensemble"].map(lambda e: _clean(e).casefold() == wanted)
        if not keep.any():
            available = sorted({_clean(e) for e in meta["ensemble"]})
            raise ValueError(f"No MusicNet recordings with ensemble {ensemble!r}; have {available}")
        meta = meta[keep]

    data_dir = _data_dir(root)
    rows = []
    for rec in meta.itertuples(index=False):
        recording_id = _clean(rec.id)
        split = _split_of(recording_id, data_dir)
        composition, movement = _clean(rec.composition), _clean(rec.movement)
        rows.append(
            {
                "recording_id": recording_id,
                "path": str(data_dir / f"{split}_data" / f"{recording_id}.wav"),
                "composer": _clean(rec.composer),
                "work": work_id(rec.composer, rec.composition, rec.catalog_name),
                "title": f"{composition} - {movement}" if movement else composition,
                "ensemble": _clean(rec.ensemble),
                "official_split": split,
                "duration_s": float(rec.seconds) if _clean(rec.seconds) else float("nan"),
            }
        )
    rows.sort(key=lambda row: _sort_key(row["recording_id"]))
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)

    if require_audio and len(manifest):
        present = manifest["path"].map(lambda p: Path(p).is_file())
        if not present.any():
            raise FileNotFoundError(
                f"None of the {len(manifest)} MusicNet recordings has audio under {data_dir} "
                f"(e.g. {manifest['path'].iloc[0]}). {_DOWNLOAD_HINT}"
            )
        if not present.all():
            n_missing = int((~present).sum())
            warnings.warn(
                f"{n_missing} of {len(manifest)} MusicNet recordings have no wav under "
                f"{data_dir} and were dropped (incomplete download?).",
                stacklevel=2,
            )
            manifest = manifest[present]

    if min_recordings > 1:
        counts = manifest["composer"].map(manifest["composer"].value_counts())
        manifest = manifest[counts >= min_recordings]

    return manifest.reset_index(drop=True)


def _sort_key(recording_id: str) -> tuple[int, str]:
    """Numeric ids in numeric order, anything else after them."""
    return (int(recording_id), "") if recording_id.isdigit() else (1 << 62, recording_id)
