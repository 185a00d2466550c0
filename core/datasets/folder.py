"""A user's own labelled collection: a CSV of ``file,composer[,work]`` (paths relative to the
CSV), checked as a whole before anything is featurized.

Featurizing a few hundred recordings takes minutes; finding out afterwards that three paths
were misspelt or a composer has a single work wastes them. So every problem is collected
and reported at once, with what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

LABELS_FILE = "labels.csv"
# What the decoders accept (soundfile natively, the rest through ffmpeg).
AUDIO_SUFFIXES = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff", ".webm"}
)


class DatasetError(ValueError):
    """The collection cannot be used as it is; the message lists every problem."""


@dataclass(frozen=True)
class FolderCheck:
    manifest: pd.DataFrame  # recording_id, path, composer, work, title
    problems: list[str] = field(default_factory=list)  # the collection cannot be used
    notes: list[str] = field(default_factory=list)  # usable, but something is left out


def labels_path(path: str | Path) -> Path:
    """``PATH`` may name the CSV itself or a folder holding ``labels.csv``."""
    path = Path(path).expanduser()
    return path / LABELS_FILE if path.is_dir() else path


def load_labels(path: str | Path) -> pd.DataFrame:
    """The labelled recordings as a manifest (no checks beyond the CSV's shape)."""
    csv = labels_path(path)
    if not csv.is_file():
        raise FileNotFoundError(
            f"{csv} not found: give a CSV with columns file,composer[,work] or a folder "
            f"holding {LABELS_FILE}."
        )
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    missing = {"file", "composer"} - set(frame.columns)
    if missing:
        raise DatasetError(f"{csv}: needs columns file,composer (missing {sorted(missing)}).")
    base = csv.resolve().parent
    works = frame["work"] if "work" in frame.columns else frame["file"]
    return pd.DataFrame(
        {
            "recording_id": frame["file"].astype(str),
            "path": [str((base / f).resolve()) for f in frame["file"]],
            "composer": frame["composer"].astype(str).str.strip(),
            "work": [w or f for w, f in zip(works.astype(str), frame["file"], strict=True)],
            "title": frame["file"].astype(str),
        }
    )


def check(manifest: pd.DataFrame, min_works: int) -> FolderCheck:
    """Every problem that would make featurizing or training fail or mislead."""
    problems = []
    found = manifest["path"].map(lambda p: Path(p).is_file())
    missing = manifest.loc[~found, "recording_id"].tolist()
    if missing:
        problems.append(f"{len(missing)} files not found: {_some(missing)}")
    suffixes = manifest["path"].map(lambda p: Path(p).suffix.lower())
    unknown = manifest.loc[~suffixes.isin(AUDIO_SUFFIXES), "recording_id"].tolist()
    if unknown:
        problems.append(
            f"{len(unknown)} files are not in a known audio format "
            f"({', '.join(sorted(AUDIO_SUFFIXES))}): {_some(unknown)}"
        )
    blank = manifest.loc[manifest["composer"] == "", "recording_id"].tolist()
    if blank:
        problems.append(f"{len(blank)} files have no composer: {_some(blank)}")
    duplicated = manifest.loc[manifest["recording_id"].duplicated(), "recording_id"].tolist()
    if duplicated:
        problems.append(f"{len(duplicated)} files are listed twice: {_some(duplicated)}")
    works = manifest[manifest["composer"] != ""].groupby("composer")["work"].nunique()
    few = works[works < min_works]
    notes = []
    if len(few):
        listed = ", ".join(f"{c} ({n})" for c, n in few.items())
        notes.append(
            f"composers with fewer than {min_works} works here are left out unless the "
            f"repertoire pack adds works (with one or two works a model learns the pieces, not "
            f"the composer; COMPOSER_MIN_WORKS_PER_COMPOSER sets the minimum): {listed}"
        )
    return FolderCheck(manifest=manifest, problems=problems, notes=notes)


def checked(path: str | Path, min_works: int) -> FolderCheck:
    """The checked collection, or a ``DatasetError`` listing every problem at once."""
    result = check(load_labels(path), min_works)
    if result.problems:
        raise DatasetError(
            f"{labels_path(path)}: " + "; ".join(result.problems) + ". Nothing was featurized."
        )
    return result


def _some(items: list[str], k: int = 5) -> str:
    shown = ", ".join(items[:k])
    return shown + (f" (and {len(items) - k} more)" if len(items) > k else "")
