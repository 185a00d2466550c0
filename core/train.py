"""Candidates, grouped cross-validated selection, held-out evaluation. No MLflow here:
``core.registry`` logs what this returns, so training stays a pure, testable function."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from core import calibration, metrics
from core.config import FeatureConfig
from core.model import ComposerModel, NeighbourIndex
from core.work_index import WorkIndex

Factory = Callable[[int], ClassifierMixin]

CANDIDATES: dict[str, Factory] = {
    # The baseline. Leaf count is capped: on the repertoire pack (~10^4 segments, 20+
    # composers) unbounded trees made a model file of hundreds of MB for no accuracy.
    "random_forest": lambda seed: RandomForestClassifier(
        n_estimators=200,
        max_leaf_nodes=384,
        min_samples_leaf=2,
        class_weight="balanced_subsample",
        n_jobs=1,
        random_state=seed,
    ),
    "logistic_regression": lambda seed: make_pipeline(
        StandardScaler(), LogisticRegression(C=0.3, max_iter=3000, class_weight="balanced")
    ),
    # Platt-scaled probabilities from a 5-fold internal CV, as SVC(probability=True) gave;
    # that option is deprecated in scikit-learn 1.9 (a FutureWarning on every fit).
    "svm_rbf": lambda seed: make_pipeline(
        StandardScaler(),
        CalibratedClassifierCV(
            SVC(C=10.0, gamma="scale", class_weight="balanced", random_state=seed),
            method="sigmoid",
            ensemble=False,
        ),
    ),
    "gradient_boosting": lambda seed: HistGradientBoostingClassifier(
        max_iter=60,
        learning_rate=0.1,
        max_leaf_nodes=15,
        l2_regularization=1.0,
        class_weight="balanced",
        early_stopping=False,
        random_state=seed,
    ),
    # Predicts the class prior: the floor any real model must clear (and a deliberately bad
    # model for testing the promotion gate).
    "dummy": lambda seed: DummyClassifier(strategy="prior"),
}
# Gradient boosting fits one tree per class per round (slow on 20 composers) and the SVM's
# probabilities come from an internal CV (slow, and uncalibrated): both are available but not
# compared by default.
DEFAULT_CANDIDATES = ("random_forest", "logistic_regression")
PRIMARY_METRIC = "recording_macro_f1"


@dataclass
class CandidateScore:
    name: str
    segment_accuracy: float
    recording_accuracy: float
    recording_macro_f1: float
    seconds: float


@dataclass
class TrainResult:
    model: ComposerModel
    cv: list[CandidateScore]
    metrics: dict[str, float]  # held-out: segment_/recording_ accuracy and macro_f1
    per_composer: pd.DataFrame  # held-out, per recording
    test_predictions: pd.DataFrame  # recording_id, composer, predicted, per-label proba
    split: pd.DataFrame  # recording_id, composer, work, split
    plots: dict[str, Path] = field(default_factory=dict)


def train(
    table: pd.DataFrame,
    split: pd.Series,
    config: FeatureConfig,
    feature_names: list[str],
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    cv_folds: int = 4,
    seed: int = 42,
    plot_dir: Path | None = None,
    on_candidate: Callable[[CandidateScore], None] | None = None,
    work_index: WorkIndex | None = None,
) -> TrainResult:
    """Choose among ``candidates`` on grouped CV over training works, refit the winner on all
    training works, and score it once on the held-out works.

    ``split`` maps recording_id -> "train"/"test". ``work_index``, restricted to the table's
    works (both sides: recognising a known piece is not the style test), travels in the model.
    """
    unknown = [c for c in candidates if c not in CANDIDATES]
    if unknown:
        raise ValueError(f"Unknown candidates {unknown}; choose from {sorted(CANDIDATES)}.")
    sides = table["recording_id"].map(split)
    train_rows, test_rows = table[sides == "train"], table[sides == "test"]
    if train_rows.empty or test_rows.empty:
        raise ValueError("Both train and test need recordings; the corpus is too small.")

    cv, out_of_fold = [], {}
    for name in candidates:
        score, out_of_fold[name] = _cross_validate(name, train_rows, feature_names, cv_folds, seed)
        cv.append(score)
        if on_candidate:
            on_candidate(score)
    best = max(cv, key=lambda s: (s.recording_macro_f1, s.recording_accuracy))

    estimator = CANDIDATES[best.name](seed)
    estimator.fit(train_rows[feature_names].to_numpy(np.float32), train_rows["composer"])
    model = ComposerModel(
        estimator=estimator,
        feature_config=config,
        feature_names=list(feature_names),
        labels=sorted(estimator.classes_),
        candidate=best.name,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        calibration=_calibrate(out_of_fold[best.name]),
    )
    held_out, predictions, report = _evaluate(model, test_rows)
    model.metrics = held_out
    primary = _primary(table)
    model.neighbours = NeighbourIndex.build(table[primary], feature_names)
    if work_index is not None:
        model.works = work_index.restrict(set(table["work"]))
    model.reference = _reference(model, table[primary], sides[primary])

    meta = table.groupby("recording_id").first()[["composer", "work"]]
    split_frame = meta.assign(split=meta.index.map(split)).reset_index()
    result = TrainResult(model, cv, held_out, report, predictions, split_frame)
    if plot_dir is not None:
        result.plots = _plots(result, test_rows, plot_dir, seed)
    return result


def _cross_validate(
    name: str, rows: pd.DataFrame, feature_names: list[str], folds: int, seed: int
) -> tuple[CandidateScore, pd.DataFrame]:
    """Grouped-by-work CV scores, and the out-of-fold recording probabilities (with a
    ``composer`` column) that calibrate the winner."""
    started = datetime.now(UTC)
    estimator = CANDIDATES[name](seed)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    labels = np.array(sorted(rows["composer"].unique()))
    proba = cross_val_predict(
        clone(estimator),
        rows[feature_names].to_numpy(np.float32),
        rows["composer"].to_numpy(),
        groups=rows["work"].to_numpy(),
        cv=splitter,
        method="predict_proba",
    )
    # Scored on the primary source's recordings (the clips people upload look like them);
    # the pack's whole-piece "recordings" only help training.
    scored = _primary(rows).to_numpy()
    proba, rows = proba[scored], rows[scored]
    segment_pred = labels[proba.argmax(axis=1)]
    recordings = metrics.aggregate_recordings(proba, rows["recording_id"], labels)
    truth = rows.groupby("recording_id")["composer"].first().loc[recordings.index]
    rec_scores = metrics.scores(truth, recordings.idxmax(axis=1))
    score = CandidateScore(
        name=name,
        segment_accuracy=float(np.mean(segment_pred == rows["composer"].to_numpy())),
        recording_accuracy=rec_scores["accuracy"],
        recording_macro_f1=rec_scores["macro_f1"],
        seconds=(datetime.now(UTC) - started).total_seconds(),
    )
    return score, recordings.assign(composer=truth)


def _calibrate(out_of_fold: pd.DataFrame) -> calibration.Calibration:
    """One temperature for the winner, fitted on recordings it never trained on."""
    labels = [c for c in out_of_fold.columns if c != "composer"]
    known = out_of_fold["composer"].isin(labels)
    truth = out_of_fold.loc[known, "composer"].map({c: i for i, c in enumerate(labels)})
    return calibration.fit(out_of_fold.loc[known, labels].to_numpy(), truth.to_numpy())


def _primary(rows: pd.DataFrame) -> pd.Series:
    """Rows of the audio we featurized ourselves, as opposed to the repertoire pack's."""
    if "source" not in rows.columns:
        return pd.Series(True, index=rows.index)
    primary = ~rows["source"].astype(str).str.startswith("pack/")
    return primary if primary.any() else pd.Series(True, index=rows.index)


def evaluate_rows(
    model: ComposerModel, rows: pd.DataFrame
) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """Score ``model`` on labelled feature rows: metrics, per-recording predictions, and the
    per-composer report. Used for the held-out set, the gate and ``composer-id evaluate``."""
    return _evaluate(model, rows)


def _evaluate(
    model: ComposerModel, rows: pd.DataFrame
) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    proba = model.predict_proba(rows)
    labels = np.array(model.labels)
    seg = metrics.scores(rows["composer"], labels[proba.argmax(axis=1)])
    raw = metrics.aggregate_recordings(proba, rows["recording_id"], labels)
    recordings = model.recording_proba(proba, rows["recording_id"])
    truth = rows.groupby("recording_id")["composer"].first().loc[recordings.index]
    predicted = recordings.idxmax(axis=1)
    rec = metrics.scores(truth, predicted)
    known = truth.isin(labels).to_numpy()
    truth_idx = truth[known].map({c: i for i, c in enumerate(labels)}).to_numpy()
    held_out = {
        "ece_raw": calibration.expected_calibration_error(raw.to_numpy()[known], truth_idx),
        "ece": calibration.expected_calibration_error(recordings.to_numpy()[known], truth_idx),
        "segment_accuracy": seg["accuracy"],
        "segment_macro_f1": seg["macro_f1"],
        "recording_accuracy": rec["accuracy"],
        "recording_macro_f1": rec["macro_f1"],
        "n_segments": seg["n"],
        "n_recordings": rec["n"],
    }
    predictions = recordings.assign(composer=truth, predicted=predicted).reset_index()
    return held_out, predictions, metrics.per_composer(truth, predicted)


def _reference(model: ComposerModel, table: pd.DataFrame, sides: pd.Series) -> pd.DataFrame:
    """Feature rows with their split and the model's prediction: monitoring's reference."""
    proba = model.predict_proba(table)
    reference = table[["recording_id", "composer", *model.feature_names]].copy()
    reference.insert(1, "split", sides.to_numpy())
    reference["predicted"] = np.array(model.labels)[proba.argmax(axis=1)]
    return reference


def _plots(result: TrainResult, test_rows: pd.DataFrame, folder: Path, seed: int) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    model, predictions = result.model, result.test_predictions
    confusion = metrics.plot_confusion(
        predictions["composer"],
        predictions["predicted"],
        folder / "confusion_matrix.png",
        f"Held-out works, per recording ({model.candidate})",
    )
    reliability = _reliability_plot(model, test_rows, folder / "reliability.png")
    importance = _importance(model, test_rows, seed)
    bars = metrics.plot_importance(
        importance, folder / "feature_importance.png", f"Feature importance ({model.candidate})"
    )
    importance.rename("importance").to_csv(folder / "feature_importance.csv")
    return {"confusion_matrix": confusion, "feature_importance": bars, "reliability": reliability}


def _reliability_plot(model: ComposerModel, rows: pd.DataFrame, path: Path) -> Path:
    """Held-out works: confidence against how often the verdict was right."""
    proba = model.predict_proba(rows)
    raw = metrics.aggregate_recordings(proba, rows["recording_id"], model.labels)
    calibrated = model.recording_proba(proba, rows["recording_id"])
    truth = rows.groupby("recording_id")["composer"].first().loc[raw.index]
    known = truth.isin(model.labels).to_numpy()
    index = truth[known].map({c: i for i, c in enumerate(model.labels)}).to_numpy()
    temperature = model.calibration.temperature if model.calibration else 1.0
    return calibration.plot_reliability(
        raw.to_numpy()[known],
        calibrated.to_numpy()[known],
        index,
        path,
        f"Held-out works, per recording (temperature {temperature:.2f})",
    )


def _importance(model: ComposerModel, rows: pd.DataFrame, seed: int) -> pd.Series:
    """Impurity importance where the model has it; permutation on held-out data otherwise."""
    native = getattr(model.estimator, "feature_importances_", None)
    if native is not None:
        return pd.Series(native, index=model.feature_names)
    result = permutation_importance(
        model.estimator,
        rows[model.feature_names].to_numpy(np.float32),
        rows["composer"].to_numpy(),
        n_repeats=3,
        random_state=seed,
        n_jobs=1,
    )
    return pd.Series(result.importances_mean, index=model.feature_names)
