"""What a window's answers were, as pure functions of its prediction rows (the store's
``predictions_frame``): monitoring, the reports page and the tests share them."""

from __future__ import annotations

import pandas as pd

from core.verdict import KINDS


def composer_mix(composers: pd.Series) -> dict[str, float]:
    """Share of each predicted composer among answers that named one."""
    return composers.dropna().value_counts(normalize=True).round(4).to_dict()


def answer_kinds(predictions: pd.DataFrame) -> dict[str, int]:
    """How many answers of each kind (every kind listed, zeros included; rows recorded
    before kinds existed count as ``composer``)."""
    kinds = predictions["kind"] if "kind" in predictions.columns else pd.Series(dtype=object)
    counts = kinds.fillna("composer").value_counts()
    return {kind: int(counts.get(kind, 0)) for kind in KINDS}


def not_piano_share(kinds: dict[str, int]) -> float | None:
    """Share of uploads that were not piano music (None for an empty window)."""
    total = sum(kinds.values())
    return round(kinds.get("not_piano", 0) / total, 4) if total else None
