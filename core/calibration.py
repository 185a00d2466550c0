"""Honest confidence: temperature scaling of per-recording composer probabilities.

A recording's verdict is the mean of its segments' probabilities; averaging over-smooths or
over-sharpens depending on the estimator, so the displayed confidence rarely matches how often
the model is right. One temperature, fitted on out-of-fold predictions grouped by work (never
the test set), rescales the verdict so that "72 %" is right about 72 % of the time. One
parameter keeps the ranking unchanged and cannot overfit a few hundred recordings the way
isotonic regression can.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import minimize_scalar

EPS = 1e-6
BINS = 10


@dataclass(frozen=True)
class Calibration:
    """``temperature`` > 1 softens over-confident verdicts, < 1 sharpens timid ones."""

    temperature: float = 1.0
    ece_raw: float = float("nan")  # on the data it was fitted on (out-of-fold recordings)
    ece_calibrated: float = float("nan")
    recordings: int = 0

    def apply(self, proba: np.ndarray) -> np.ndarray:
        """Recording-level probabilities (rows sum to 1) -> calibrated, same shape and order."""
        return soften(np.atleast_2d(np.asarray(proba, dtype=np.float64)), self.temperature)


def soften(proba: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.log(np.clip(proba, EPS, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit(proba: np.ndarray, truth: np.ndarray) -> Calibration:
    """Temperature minimising the negative log-likelihood of ``truth`` (column indices)."""
    proba = np.asarray(proba, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.int64)
    if len(truth) == 0:
        return Calibration()

    def nll(log_t: float) -> float:
        p = soften(proba, float(np.exp(log_t)))[np.arange(len(truth)), truth]
        return float(-np.mean(np.log(np.clip(p, EPS, 1.0))))

    best = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    temperature = float(np.exp(best.x))
    return Calibration(
        temperature=temperature,
        ece_raw=expected_calibration_error(proba, truth),
        ece_calibrated=expected_calibration_error(soften(proba, temperature), truth),
        recordings=len(truth),
    )


def expected_calibration_error(proba: np.ndarray, truth: np.ndarray, bins: int = BINS) -> float:
    """Mean |confidence - accuracy| of the top answer over equal-width confidence bins,
    weighted by how many answers fall in each bin."""
    proba = np.atleast_2d(np.asarray(proba, dtype=np.float64))
    if proba.shape[0] == 0:
        return float("nan")
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.asarray(truth)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap += inside.sum() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(gap / len(confidence))


def reliability(proba: np.ndarray, truth: np.ndarray, bins: int = BINS) -> list[tuple]:
    """(mean confidence, accuracy, count) per non-empty bin: the diagram's points."""
    proba = np.atleast_2d(np.asarray(proba, dtype=np.float64))
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.asarray(truth)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return [
        (float(confidence[which == b].mean()), float(correct[which == b].mean()), int(n))
        for b in range(bins)
        if (n := int((which == b).sum()))
    ]


def plot_reliability(
    raw: np.ndarray, calibrated: np.ndarray, truth: np.ndarray, path: Path, title: str
) -> Path:
    """Reliability diagram: confidence against how often the answer was right, before and
    after calibration; the diagonal is perfect calibration."""
    fig, ax = plt.subplots(figsize=(5.2, 5.2))
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="perfectly calibrated")
    for name, proba, colour in (("raw", raw, "tab:red"), ("calibrated", calibrated, "tab:blue")):
        points = reliability(proba, truth)
        ece = expected_calibration_error(proba, truth)
        if points:
            x, y, _n = zip(*points, strict=True)
            ax.plot(x, y, marker="o", color=colour, label=f"{name} (ECE {ece:.3f})")
            for xi, yi, ni in points:
                ax.annotate(
                    str(ni),
                    (xi, yi),
                    fontsize=7,
                    color=colour,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence of the top answer",
        ylabel="share of answers that were right",
        title=title,
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
