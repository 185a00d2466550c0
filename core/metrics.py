"""Scores and plots shared by training, the gate and `composer-id evaluate`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from core.verdict import recording_probabilities


def aggregate_recordings(
    proba: np.ndarray, recording_ids: Sequence[str], labels: Sequence[str]
) -> pd.DataFrame:
    """Probabilities per recording, by the one verdict rule (``core.verdict``)."""
    return recording_probabilities(proba, recording_ids, labels)


def scores(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, float]:
    """Accuracy and macro-F1 over the composers that occur in ``y_true``."""
    present = sorted(set(y_true))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)
        ),
        "n": len(y_true),
    }


def per_composer(y_true: Sequence[str], y_pred: Sequence[str]) -> pd.DataFrame:
    labels = sorted(set(y_true) | set(y_pred))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support},
        index=pd.Index(labels, name="composer"),
    )


def plot_confusion(y_true: Sequence[str], y_pred: Sequence[str], path: Path, title: str) -> Path:
    labels = sorted(set(y_true) | set(y_pred))
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    size = max(5.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted composer")
    ax.set_ylabel("true composer")
    ax.set_title(title)
    for (i, j), value in np.ndenumerate(matrix):
        if value:
            colour = "white" if value > matrix.max() / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=colour, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_importance(importance: pd.Series, path: Path, title: str, top: int = 25) -> Path:
    best = importance.sort_values(ascending=True).tail(top)
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(best) + 1.2))
    ax.barh(best.index, best.to_numpy(), color="#4c72b0")
    ax.set_xlabel("importance")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
