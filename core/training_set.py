"""Every training source as rows of one table, split by work across all of them.

The primary source (the demo corpus, MusicNet or a user's folder: audio we featurize) decides
the held-out works; the repertoire pack (whole pieces, rendered and augmented) only adds
training rows. A pack window of a held-out work is dropped, never trained on: a work's demo
excerpt and its full-piece windows are always on the same side, or the held-out score would
measure memory of the piece instead of recognition of the composer.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core.datasets import split

PACK_PREFIX = "pack:"
SILENT_ZERO_CROSSINGS = 1e-3  # zero-crossing rate below which a window is DC, not sound


@dataclass(frozen=True)
class TrainingSet:
    table: pd.DataFrame  # recording_id, composer, work, source, segment, features
    split: pd.Series  # recording_id -> "train" / "test"
    test_ids: list[str]  # held-out recordings of the primary source (what the gate scores)
    dropped_composers: dict[str, int]  # composer -> training works, below the minimum
    pack_rows: int  # pack windows used for training


def pack_recordings(pack: pd.DataFrame) -> pd.DataFrame:
    """Pack rows as recordings: one per (piece, soundfont/augmentation variant)."""
    rows = pack.copy()
    rows["recording_id"] = PACK_PREFIX + rows["source"].astype(str) + ":" + rows["piece"]
    rows["source"] = "pack/" + rows["source"].astype(str)
    return rows


def sounding(rows: pd.DataFrame) -> pd.Series:
    """False for pack windows without a single zero crossing: 53 rows (~1 %) of six pieces
    hold a constant offset instead of music (a render defect in pack v4), and training on them
    would teach "a DC offset sounds like Mozart"."""
    if "zero_crossing_mean" not in rows.columns:
        return pd.Series(True, index=rows.index)
    return rows["zero_crossing_mean"] >= SILENT_ZERO_CROSSINGS


def build(
    table: pd.DataFrame,
    manifest: pd.DataFrame,
    feature_names: list[str],
    pack: pd.DataFrame | None = None,
    test_fraction: float = 0.25,
    seed: int = 42,
    min_works: int = 1,
    primary_source: str = "demo",
) -> TrainingSet:
    """The primary ``table`` (featurized ``manifest``) plus an optional ``pack``, split by work.

    Composers with fewer than ``min_works`` distinct training works are left out: with one or
    two works a classifier learns those pieces, not the composer's style.
    """
    sides = primary_split(manifest, test_fraction, seed)
    primary = table.assign(source=primary_source)
    test_works = set(manifest.loc[sides.to_numpy() == "test", "work"])
    frames = [primary]
    if pack is not None and not pack.empty:
        extra = pack_recordings(pack)
        frames.append(extra[~extra["work"].isin(test_works) & sounding(extra)])
    columns = ["recording_id", "composer", "work", "source", "segment", *feature_names]
    combined = pd.concat([f[_present(f, columns)] for f in frames], ignore_index=True)
    recording_sides = combined["recording_id"].map(sides).fillna("train")

    works = combined[recording_sides == "train"].groupby("composer")["work"].nunique()
    dropped = {c: int(n) for c, n in works.items() if n < min_works}
    kept = ~combined["composer"].isin(dropped.keys())
    combined = combined[kept].reset_index(drop=True)
    recording_sides = recording_sides[kept].reset_index(drop=True)
    per_recording = recording_sides.groupby(combined["recording_id"]).first()
    _assert_no_leak(combined, per_recording)
    test_ids = sorted(per_recording.index[per_recording == "test"])
    return TrainingSet(
        table=combined,
        split=per_recording,
        test_ids=test_ids,
        dropped_composers=dropped,
        pack_rows=int(combined["recording_id"].str.startswith(PACK_PREFIX).sum()),
    )


def primary_split(manifest: pd.DataFrame, test_fraction: float, seed: int) -> pd.Series:
    """recording_id -> "train"/"test" for the primary source, grouped by work, leak-checked."""
    sides = split.grouped_split(manifest, test_fraction, seed)
    split.assert_no_work_leak(manifest, sides)
    return pd.Series(sides.to_numpy(), index=manifest["recording_id"].to_numpy())


def _assert_no_leak(table: pd.DataFrame, sides: pd.Series) -> None:
    recordings = table.groupby("recording_id")["work"].first()
    split.assert_no_work_leak(
        recordings.reset_index(), sides.loc[recordings.index].reset_index(drop=True)
    )


def _present(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"Training rows lack columns {missing[:5]} ({len(missing)} in all).")
    return columns
