"""Fitting and measuring the "not piano music" detector (``core.piano_check``).

Kept apart from the request path: serving only loads the shipped coefficients. Piano rows come
from the repertoire pack (two SoundFonts, humanised, augmented); other rows from
``data/negatives/train_rows.parquet`` (generated kinds with seeds the tests never use, speech in
other voices and texts, non-piano General MIDI programs on other phrases, keys and tempi). The
shifted set (a SoundFont the pack never uses) and the demo corpus stay out of training, so
their pass rates measure how the detector generalises.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.config import REPO_ROOT, FeatureConfig
from core.piano_check import (
    RULE_COLUMNS,
    Detector,
    PianoCheck,
    decide,
    detector_inputs,
    input_names,
    load_detector,
)

NEGATIVES_ROWS = REPO_ROOT / "data" / "negatives" / "train_rows.parquet"
PACK_DIR = REPO_ROOT / "data" / "pack"
SHIFTED_DIR = REPO_ROOT / "data" / "shifted"
REGULARISATION = 0.3  # inverse L2 strength (sklearn's C)
THRESHOLD = 0.5
PHRASE_SHARE = 0.1  # weight of the piano phrase renders within the piano class
DEFECT_ZCR = 1e-3  # pack rows below: DC, not music (see ``training_sets``)


@dataclass(frozen=True)
class PassRate:
    source: str
    recordings: int
    passed: int
    failures: tuple[tuple[str, str, float], ...]  # (recording, reason, score) of rejections

    @property
    def rate(self) -> float:
        return self.passed / self.recordings if self.recordings else 0.0


def pack_recordings(table: pd.DataFrame) -> pd.Series:
    """A recording id per pack row: the pack stores 30 s chunks (three 10 s segments) of each
    (piece, SoundFont) in order; a chunk ends where ``start_s`` jumps or after three rows
    (two chunks can follow each other seamlessly)."""
    keys = table["piece"].astype(str) + "|" + table["source"].astype(str)
    jump = (keys != keys.shift()) | (table["start_s"].diff().abs().sub(10.0).abs() > 0.5)
    run = jump.cumsum()
    position = run.groupby(run).cumcount()
    chunk = (jump | (position % 3 == 0)).groupby(keys).cumsum()
    return keys + "|" + chunk.astype(str)


def load_piano_tables(config: FeatureConfig | None = None) -> dict[str, pd.DataFrame]:
    """The shipped piano feature tables, each with a ``recording`` column."""
    from core.datasets.pack import load_pack, load_shifted

    config = config or FeatureConfig()
    pack = load_pack(PACK_DIR, config)
    pack = pack.assign(recording=pack_recordings(pack))
    shifted = load_shifted(SHIFTED_DIR, config)
    shifted = shifted.assign(recording=shifted["recording_id"])
    return {"pack": pack, "shifted": shifted}


def fit_detector(
    piano: pd.DataFrame,
    other: pd.DataFrame,
    regularisation: float = REGULARISATION,
    threshold: float = THRESHOLD,
    phrase_share: float = PHRASE_SHARE,
) -> Detector:
    """Logistic regression on standardised inputs; deterministic (lbfgs on fixed data).

    The two classes weigh the same. Within the piano class, the piano renders of the
    negatives' own phrases (``is_piano`` rows, a few dozen against thousands of pack rows)
    carry ``phrase_share`` of the weight: without it the model learns "one melodic line means
    not piano" from the violins and flutes, and rejects a piano playing their melody.
    """
    from sklearn.linear_model import LogisticRegression

    x = np.vstack([detector_inputs(piano), detector_inputs(other)])
    y = np.concatenate([np.ones(len(piano)), np.zeros(len(other))])
    phrase = np.zeros(len(y), dtype=bool)
    if "is_piano" in piano:
        phrase[: len(piano)] = piano["is_piano"].fillna(False).to_numpy(dtype=bool)
    weight = np.where(y == 1, 0.5 / len(piano), 0.5 / len(other))
    if phrase.any():
        weight[phrase] = 0.5 * phrase_share / phrase.sum()
        weight[(y == 1) & ~phrase] = 0.5 * (1 - phrase_share) / (len(piano) - phrase.sum())
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = np.clip((x - mean) / scale, -8.0, 8.0)
    model = LogisticRegression(C=regularisation, max_iter=5000)
    model.fit(z, y, sample_weight=weight * len(y))
    return Detector(
        columns=tuple(input_names()),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        coef=tuple(float(v) for v in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        threshold=threshold,
        trained_on=f"{len(piano)} piano rows (data/pack without DC rows + {phrase.sum()} piano "
        f"phrase renders at {phrase_share:.0%} weight), {len(other)} other rows "
        f"(data/negatives/train_rows.parquet), C={regularisation}",
    )


def training_sets(tables: dict[str, pd.DataFrame], negatives: pd.DataFrame) -> tuple:
    """(piano rows, other rows): the pack plus piano renders of the negatives' phrases. Pack
    rows without a single zero crossing are left out: 53 rows (~1 %) of six pieces hold a
    constant offset instead of music (a rendering defect), and would teach "DC is piano"."""
    pack = tables["pack"][tables["pack"]["zero_crossing_mean"] >= DEFECT_ZCR]
    piano = pd.concat([pack, negatives[negatives["is_piano"]]], ignore_index=True)
    return piano, negatives[~negatives["is_piano"]]


def pass_rate(source: str, table: pd.DataFrame, detector: Detector | None = None) -> PassRate:
    """Share of recordings (``recording`` column) that the detector calls piano: the same
    decision as ``assess_rows`` per recording, with the rows scored in one pass."""
    detector = detector or load_detector()
    keys = table["recording"].to_numpy()
    scores = pd.Series(detector.row_scores(table)).groupby(keys, sort=False).mean()
    means = table[list(RULE_COLUMNS)].groupby(keys, sort=False).mean()
    failures, passed = [], 0
    for recording, score in scores.items():
        check: PianoCheck = decide(float(score), means.loc[recording], detector.threshold)
        if check.is_piano:
            passed += 1
        else:
            failures.append((str(recording), check.reason, round(check.score, 3)))
    return PassRate(source, len(scores), passed, tuple(failures))


def negatives_rows(path: Path = NEGATIVES_ROWS) -> pd.DataFrame:
    return pd.read_parquet(path)
