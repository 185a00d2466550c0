"""Train/test split grouped by work: movements and performances of one composition never
straddle the split, or a model would learn the piece instead of the composer."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold


def grouped_split(manifest: pd.DataFrame, test_fraction: float = 0.25, seed: int = 42) -> pd.Series:
    """``"train"``/``"test"`` per recording (indexed like ``manifest``), stratified by
    composer so every composer with enough works appears on both sides."""
    n_splits = max(2, round(1 / test_fraction))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    labels = manifest["composer"].to_numpy()
    groups = manifest["work"].to_numpy()
    _, test_index = next(splitter.split(np.zeros(len(manifest)), labels, groups))
    split = pd.Series("train", index=manifest.index, name="split")
    split.iloc[test_index] = "test"
    return split


def assert_no_work_leak(manifest: pd.DataFrame, split: pd.Series) -> None:
    """Raise if any work has recordings on both sides (a cheap guard run on every split)."""
    sides = manifest.assign(split=split.to_numpy()).groupby("work")["split"].nunique()
    leaked = sides[sides > 1].index.tolist()
    if leaked:
        raise ValueError(f"Works in both train and test: {leaked[:5]} ({len(leaked)} in all).")
