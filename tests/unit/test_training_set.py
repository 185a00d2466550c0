"""The split by work across every source, and a user's labelled folder checked up front."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core import training_set
from core.datasets import folder

pytestmark = pytest.mark.unit

NAMES = ["f1", "f2"]


def _demo(n_composers: int = 4, works: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, manifest = [], []
    for c in range(n_composers):
        for w in range(works):
            rid = f"C{c}/w{w}"
            manifest.append({"recording_id": rid, "composer": f"C{c}", "work": f"C{c}-w{w}"})
            for segment in range(3):
                rows.append({**manifest[-1], "segment": segment, "start_s": 10.0 * segment})
    table = pd.DataFrame(rows)
    rng = np.random.default_rng(0)
    table[NAMES] = rng.normal(size=(len(table), len(NAMES)))
    return table, pd.DataFrame(manifest)


def _pack(manifest: pd.DataFrame, extra_composer: str | None = None) -> pd.DataFrame:
    """Two rendered variants of every demo work (as the pack holds them), plus works the demo
    does not have."""
    rows = []
    works = manifest[["composer", "work"]].to_dict("records")
    works += [{"composer": "C0", "work": "C0-pack-only"}]
    if extra_composer:
        works += [{"composer": extra_composer, "work": f"{extra_composer}-w{i}"} for i in range(2)]
    for source in ("musescore", "fluidr3"):
        for item in works:
            piece = item["work"].replace("-", "/")
            for segment in range(5):
                rows.append({**item, "piece": piece, "source": source, "segment": segment})
    pack = pd.DataFrame(rows).assign(start_s=0.0, f1=0.5, f2=-0.5)
    return pack


def test_no_work_is_on_both_sides_across_sources():
    table, manifest = _demo()
    result = training_set.build(table, manifest, NAMES, _pack(manifest), test_fraction=0.25)
    recordings = result.table.groupby("recording_id")["work"].first()
    sides = result.split.loc[recordings.index]
    by_work = pd.DataFrame({"work": recordings, "side": sides}).groupby("work")["side"].nunique()
    assert (by_work == 1).all()
    test_works = set(recordings[sides == "test"])
    assert test_works, "the split held nothing out"
    pack_rows = result.table[result.table["source"].str.startswith("pack/")]
    # a held-out work's full-piece windows are dropped, never trained on
    assert not set(pack_rows["work"]) & test_works
    assert "C0-pack-only" in set(pack_rows["work"])
    assert result.pack_rows == len(pack_rows) > 0


def test_held_out_recordings_are_the_primary_sources_only():
    table, manifest = _demo()
    result = training_set.build(table, manifest, NAMES, _pack(manifest))
    assert result.test_ids
    assert set(result.test_ids) <= set(manifest["recording_id"])
    assert set(result.table.loc[result.table["recording_id"].isin(result.test_ids), "source"]) == {
        "demo"
    }


def test_same_split_with_and_without_the_pack():
    table, manifest = _demo()
    alone = training_set.build(table, manifest, NAMES, None, seed=7)
    with_pack = training_set.build(table, manifest, NAMES, _pack(manifest), seed=7)
    assert alone.test_ids == with_pack.test_ids


def test_composers_with_too_few_works_are_left_out_and_reported():
    table, manifest = _demo()
    result = training_set.build(table, manifest, NAMES, _pack(manifest, "Rare"), min_works=3)
    assert result.dropped_composers == {"Rare": 2}
    assert "Rare" not in set(result.table["composer"])


def test_missing_feature_columns_are_an_error():
    table, manifest = _demo()
    with pytest.raises(ValueError, match="lack columns"):
        training_set.build(table, manifest, [*NAMES, "note_density"], None)


def _collection(tmp_path, rows: list[str]) -> object:
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "b.flac").write_bytes(b"fLaC")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "labels.csv").write_text("file,composer,work\n" + "\n".join(rows) + "\n")
    return tmp_path


def test_folder_reports_every_problem_before_featurizing(tmp_path):
    path = _collection(
        tmp_path,
        ["a.wav,Chopin,op10", "missing.wav,Chopin,op25", "notes.txt,Liszt,et1", "b.flac,,x"],
    )
    with pytest.raises(folder.DatasetError) as caught:
        folder.checked(path, min_works=1)
    message = str(caught.value)
    assert "1 files not found: missing.wav" in message
    assert "not in a known audio format" in message and "notes.txt" in message
    assert "no composer: b.flac" in message
    assert "Nothing was featurized" in message


def test_folder_notes_composers_with_few_works(tmp_path):
    path = _collection(tmp_path, ["a.wav,Chopin,op10", "b.flac,Chopin,op10"])
    result = folder.checked(tmp_path / "labels.csv", min_works=2)
    assert result.problems == []
    assert "Chopin (1)" in result.notes[0]
    assert list(result.manifest["work"]) == ["op10", "op10"]
    assert folder.labels_path(path) == tmp_path / "labels.csv"


def test_folder_without_work_column_makes_each_file_its_own_work(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "labels.csv").write_text("file,composer\na.wav,Chopin\n")
    manifest = folder.load_labels(tmp_path)
    assert manifest.loc[0, "work"] == "a.wav"
    assert manifest.loc[0, "path"] == str((tmp_path / "a.wav").resolve())
