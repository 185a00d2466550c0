"""The shipped work index (data/works): files, licence, schema, size, and that its threshold
still separates a sample of its own calibration clips."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core import work_calibration
from core.config import REPO_ROOT
from core.work_index import FORMAT, META_COLUMNS, WorkIndex

pytestmark = pytest.mark.data

WORKS = REPO_ROOT / "data" / "works"
FILES = [
    "README.md",
    "LICENSE.md",
    "manifest.json",
    "pieces.csv",
    "index.npz",
    "calibration/clips.csv",
    "calibration/notes.parquet",
]


def test_files_are_there_and_small():
    for name in FILES:
        assert (WORKS / name).is_file(), name
    total = sum(p.stat().st_size for p in WORKS.rglob("*") if p.is_file())
    assert total < 5_000_000


def test_licence_names_the_source_and_the_share_alike_terms():
    text = (WORKS / "LICENSE.md").read_text()
    for needle in ("CC BY-SA 3.0 DE", "Bernd Krüger", "piano-midi.de", "TimGM6mb"):
        assert needle in text


def test_manifest_and_pieces_schema():
    manifest = json.loads((WORKS / "manifest.json").read_text())
    assert manifest["format"] == FORMAT
    assert 0.0 < manifest["threshold"] < 1.0
    pieces = pd.read_csv(WORKS / "pieces.csv")
    assert list(pieces.columns) == [*META_COLUMNS, "frames"]
    assert pieces["piece"].is_unique
    assert manifest["pieces"] == len(pieces)
    assert manifest["frames"] == int(pieces["frames"].sum())
    with np.load(WORKS / "index.npz") as stored:
        assert stored["frames"].dtype == np.uint8
        assert stored["frames"].shape == (manifest["frames"], 12)
        assert stored["lengths"].tolist() == pieces["frames"].tolist()


def test_index_covers_every_piece_of_the_pack_and_the_demo():
    indexed = set(pd.read_csv(WORKS / "pieces.csv")["piece"])
    assert set(pd.read_csv(REPO_ROOT / "data/pack/pieces.csv")["piece"]) <= indexed
    assert set(pd.read_csv(REPO_ROOT / "data/demo/manifest.csv")["recording_id"]) <= indexed


def test_calibration_clips_schema():
    clips, notes = work_calibration.read_calibration(WORKS / "calibration")
    assert list(clips.columns) == work_calibration.CLIP_COLUMNS
    assert clips["clip_id"].is_unique
    assert set(notes["clip_id"]) <= set(clips["clip_id"])
    held = clips.loc[clips["held_out"], "work"]
    assert 0.15 < held.nunique() / clips["work"].nunique() < 0.25
    assert set(notes.columns) == {"clip_id", "onset_s", "offset_s", "pitch", "amplitude"}


def test_threshold_separates_a_sample_of_the_calibration_clips():
    index = WorkIndex.load(WORKS)
    clips, notes = work_calibration.read_calibration(WORKS / "calibration")
    held = set(clips.loc[clips["held_out"], "work"])
    calib_index = index.restrict(set(index.meta["work"]) - held)
    sample = pd.concat(
        [
            clips[~clips["held_out"]].sample(20, random_state=0),
            clips[clips["held_out"]].sample(20, random_state=0),
        ]
    )
    results = work_calibration.evaluate(calib_index, sample, notes)
    rates = work_calibration.rates(results, index.threshold)
    assert rates["work_top1"] >= 0.8
    assert rates["false_match_rate"] <= 0.1
    assert rates["wrong_work_accepted"] == 0
