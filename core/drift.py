"""Evidently reports for one monitoring window.

* **Reference**: the model's own training corpus (``ComposerModel.reference``), one row per
  recording: the segment features averaged exactly as serving averages them, the composer the
  model predicts for the whole recording (segment probabilities averaged, as serving does) and
  the true composer.
* **Current**: the predictions the store recorded in the window with the same feature schema,
  the ``features`` list expanded into the model's feature columns.

Three questions, answered with Evidently 0.7 (``evidently.Report``, ``DataDriftPreset``,
``ValueDrift``, ``ClassificationPreset``) and read back from the snapshot's test statuses
(``"FAIL"`` = drift), never from method-specific scores:

1. data drift: the share of feature columns whose distribution moved (K-S per column below
   1000 reference rows, Wasserstein above; Evidently's defaults);
2. prediction drift: did the predicted-composer mix move (``predicted`` as a categorical column:
   chi-square below 1000 reference rows, Jensen-Shannon above);
3. classification quality on the rows with feedback (their true composer), next to the model's
   quality on its held-out works.

Evidently is imported inside the functions: the DAG files import ``core.monitor`` at parse time.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning

from core.model import ComposerModel
from core.verdict import recording_probabilities

log = logging.getLogger(__name__)

PREDICTED = "predicted"
TARGET = "composer"


@dataclass
class DriftResult:
    drift_share: float
    drifted_columns: list[str]
    n_columns: int
    data_drift: bool  # Evidently's "share of drifted columns < threshold" test failed
    prediction_drift: bool
    prediction_drift_score: float | None
    prediction_drift_method: str
    snapshot: Any = field(repr=False)  # evidently Snapshot: save_html / save_json / dict


def reference_frame(model: ComposerModel) -> pd.DataFrame:
    """One row per corpus recording: recording_id, split, composer, features, predicted."""
    if model.reference is None or model.reference.empty:
        raise ValueError(
            f"Model {model.candidate} carries no monitoring reference (trained before "
            "monitoring existed?): retrain it."
        )
    rows = model.reference
    names = model.feature_names
    mean_proba = recording_probabilities(
        model.predict_proba(rows), rows["recording_id"].to_numpy(), model.labels
    )
    features = rows.groupby("recording_id", sort=True)[names].mean()
    meta = rows.groupby("recording_id", sort=True)[["split", TARGET]].first()
    frame = meta.join(features)
    frame[PREDICTED] = mean_proba.idxmax(axis=1).reindex(frame.index)
    return frame.reset_index()


def current_frame(predictions: pd.DataFrame, model: ComposerModel) -> pd.DataFrame:
    """The window's predictions comparable with ``model`` (same feature schema and length,
    and a composer: "not piano music" answers are counted apart, not compared with the corpus):
    id, created_at, model_version, the feature columns, predicted, composer (true or None)."""
    names = model.feature_names
    if predictions.empty:
        keep = predictions
    else:
        keep = predictions[
            (predictions["feature_schema"] == model.feature_config.schema_id)
            & (predictions["features"].map(len) == len(names))
            & predictions["composer"].notna()
        ]
    values = np.array(
        [[np.nan if v is None else v for v in row] for row in keep["features"]], dtype=np.float64
    ).reshape(len(keep), len(names))
    frame = pd.DataFrame(values, columns=names, index=keep.index)
    frame.insert(0, "model_version", keep["model_version"].astype(str))
    frame.insert(0, "created_at", keep["created_at"])
    frame.insert(0, "id", keep["id"])
    frame[PREDICTED] = keep["composer"].astype(str)
    frame[TARGET] = pd.Series(list(keep["true_composer"]), index=keep.index, dtype=object)
    return frame.reset_index(drop=True)


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    feature_names: list[str],
    drift_share: float,
) -> DriftResult:
    """Data drift over ``feature_names`` plus prediction drift on ``predicted``."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    columns = [*feature_names, PREDICTED]
    definition = DataDefinition(
        numerical_columns=list(feature_names), categorical_columns=[PREDICTED]
    )
    report = Report(
        [
            DataDriftPreset(columns=list(feature_names), drift_share=drift_share),
            ValueDrift(column=PREDICTED),
        ],
        include_tests=True,
    )
    # A small window often has a constant feature or a composer the reference never predicted:
    # the statistics then divide by zero and Evidently reads the inf/NaN as "drift score
    # undefined". Expected, so numpy's RuntimeWarnings about it are not printed.
    with np.errstate(divide="ignore", invalid="ignore"):
        snapshot = report.run(
            current_data=Dataset.from_pandas(current[columns].copy(), data_definition=definition),
            reference_data=Dataset.from_pandas(
                reference[columns].copy(), data_definition=definition
            ),
        )
    result = snapshot.dict()
    share, share_failed = None, False
    for metric in result["metrics"]:
        if metric["config"].get("type", "").endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    drifted, prediction_failed, method = [], False, ""
    for test in result["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        kind = params.get("type", "")
        failed = test["status"] == "FAIL"
        if kind.endswith("DriftedColumnsCount"):
            share_failed = failed
        elif kind.endswith("ValueDrift"):
            if params.get("column") == PREDICTED:
                prediction_failed = failed
                method = params.get("method", "")
            elif failed:
                drifted.append(params.get("column"))
    score = next(
        (
            float(m["value"])
            for m in result["metrics"]
            if m["config"].get("type", "").endswith("ValueDrift")
            and m["config"].get("column") == PREDICTED
            and m["value"] is not None
        ),
        None,
    )
    if share is None:  # pragma: no cover - Evidently changed its output
        raise RuntimeError("Evidently's report has no DriftedColumnsCount metric.")
    return DriftResult(
        drift_share=share,
        drifted_columns=drifted,
        n_columns=len(feature_names),
        data_drift=share_failed,
        prediction_drift=prediction_failed,
        prediction_drift_score=score,
        prediction_drift_method=method,
        snapshot=snapshot,
    )


def quality_report(reference: pd.DataFrame, labelled: pd.DataFrame) -> tuple[Any | None, str]:
    """Classification quality on the rows with feedback, next to the model's held-out works
    (the reference's ``split == 'test'`` rows) when Evidently can compare them.

    Returns (snapshot or None, note). Evidently 0.7's multiclass metrics fail on exactly two
    labels (they switch to binary with ``pos_label=1``) and when the current rows have a label
    the reference lacks; the report is then skipped or made without a reference, and the note
    says so. Accuracy on feedback, which the decision uses, never depends on this report."""
    from evidently import DataDefinition, Dataset, MulticlassClassification, Report
    from evidently.presets import ClassificationPreset

    if labelled.empty:
        return None, "no feedback"
    current = labelled[[TARGET, PREDICTED]].astype(str)
    labels = set(current[TARGET]) | set(current[PREDICTED])
    if len(labels) == 2:
        return None, "skipped: Evidently's multiclass report needs 1 or at least 3 composers"
    held_out = reference.loc[reference["split"] == "test", [TARGET, PREDICTED]].astype(str)
    known = set(held_out[TARGET]) | set(held_out[PREDICTED])
    use_reference = not held_out.empty and labels <= known and len(known) != 2
    definition = DataDefinition(
        categorical_columns=[TARGET, PREDICTED],
        classification=[MulticlassClassification(target=TARGET, prediction_labels=PREDICTED)],
    )
    try:
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            # Precision of a composer never predicted in the window is undefined; Evidently
            # shows 0, which is the honest figure. scikit-learn's warning about it is noise.
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            snapshot = Report([ClassificationPreset()], include_tests=True).run(
                current_data=Dataset.from_pandas(current, data_definition=definition),
                reference_data=(
                    Dataset.from_pandas(held_out, data_definition=definition)
                    if use_reference
                    else None
                ),
            )
    except Exception as error:  # a display artefact: never let it stop monitoring
        log.warning("Evidently classification report failed: %r", error)
        return None, f"skipped: Evidently failed ({type(error).__name__}: {error})"
    note = "vs the model's held-out works" if use_reference else "without reference (new labels)"
    return snapshot, note
