"""The shipped demo corpus: complete, licensed, within budget, and split without leaks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from core.config import REPO_ROOT, Settings
from core.datasets import split

pytestmark = pytest.mark.data
DEMO = REPO_ROOT / "data" / "demo"


def test_manifest_matches_files_on_disk(demo_manifest):
    listed = {Path(p).resolve() for p in demo_manifest["path"]}
    on_disk = {p.resolve() for p in (DEMO / "audio").rglob("*.ogg")}
    assert listed == on_disk
    assert demo_manifest["recording_id"].is_unique


def test_manifest_has_the_documented_columns():
    raw = pd.read_csv(DEMO / "manifest.csv")
    expected = ["recording_id", "path", "composer", "work", "title", "source_midi", "start_s"]
    assert set(expected) <= set(raw.columns)
    assert set(raw["licence"]) == {"CC BY-SA 3.0 DE"}


def test_enough_composers_and_works(demo_manifest):
    works = demo_manifest.groupby("composer")["work"].nunique()
    assert len(works) >= 10
    assert works.min() >= 6, works.to_dict()


def test_audio_within_budget_and_readable(demo_manifest):
    total = sum(p.stat().st_size for p in (DEMO / "audio").rglob("*.ogg"))
    assert total <= 40 * 1024 * 1024
    for path in demo_manifest["path"].iloc[::25]:
        info = sf.info(path)
        assert info.samplerate == 22050 and info.channels == 1
        assert 20 <= info.duration <= 40


def test_licence_and_attribution_shipped():
    text = (DEMO / "LICENSE.md").read_text()
    assert "Bernd Krüger" in text and "piano-midi.de" in text
    assert "BY-SA 3.0" in text


def test_grouped_split_has_no_work_in_both_sides(demo_manifest):
    settings = Settings()
    sides = split.grouped_split(demo_manifest, settings.test_fraction, settings.seed)
    split.assert_no_work_leak(demo_manifest, sides)
    by_side = demo_manifest.assign(split=sides.to_numpy()).groupby("split")
    train_works, test_works = (set(g["work"]) for _, g in by_side)
    assert not train_works & test_works
    # Every composer is represented on both sides.
    composers = by_side["composer"].nunique()
    assert composers["test"] == composers["train"] == demo_manifest["composer"].nunique()


def test_leak_guard_catches_a_leak():
    manifest = pd.DataFrame(
        {"recording_id": ["a1", "a2", "b1"], "composer": ["A", "A", "B"], "work": ["w", "w", "v"]}
    )
    with pytest.raises(ValueError, match="both train and test"):
        split.assert_no_work_leak(manifest, pd.Series(["train", "test", "test"]))
    split.assert_no_work_leak(manifest, pd.Series(["train", "train", "test"]))
