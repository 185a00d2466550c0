"""core.featurize: manifest -> feature table, the content-keyed cache, failures, parallelism."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from core.config import AudioLimits, FeatureConfig
from core.features import feature_names
from core.featurize import featurize_manifest

pytestmark = pytest.mark.unit

CONFIG = FeatureConfig()
LIMITS = AudioLimits()
SR = CONFIG.sample_rate
PIECES = [
    ("r1", 262.0, "Bach", "BWV 846"),
    ("r2", 330.0, "Chopin", "Op. 28"),
    ("r3", 392.0, "Liszt", "S. 139"),
]


def write_tone(path: Path, freq: float, seconds: float = 2.0) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    y = 0.4 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * 2 * freq * t)
    sf.write(path, y.astype(np.float32), SR)
    return path


@pytest.fixture
def manifest(tmp_path: Path) -> pd.DataFrame:
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    rows = [
        {
            "recording_id": rid,
            "path": str(write_tone(audio_dir / f"{rid}.wav", freq)),
            "composer": composer,
            "work": work,
        }
        for rid, freq, composer, work in PIECES
    ]
    return pd.DataFrame(rows)


def run(manifest: pd.DataFrame, cache: Path, config: FeatureConfig = CONFIG, **kwargs):
    return featurize_manifest(manifest, config, kwargs.pop("limits", LIMITS), cache, **kwargs)


def test_second_run_is_served_from_the_cache(manifest: pd.DataFrame, tmp_path: Path) -> None:
    cache = tmp_path / "cache"

    first = run(manifest, cache)
    second = run(manifest, cache)

    assert (first.computed, first.cached, first.failed) == (3, 0, {})
    assert (second.computed, second.cached, second.failed) == (0, 3, {})
    pd.testing.assert_frame_equal(first.table, second.table)
    stored = list((cache / CONFIG.fingerprint()).glob("*.parquet"))
    assert len(stored) == 3
    assert not list(cache.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_table_has_manifest_columns_and_no_path(manifest: pd.DataFrame, tmp_path: Path) -> None:
    table = run(manifest, tmp_path / "cache").table

    names = feature_names(CONFIG)
    assert list(table.columns) == ["recording_id", "composer", "work", "segment", "start_s", *names]
    assert "path" not in table.columns
    assert len(table) == 3  # 2 s clips: one segment each
    assert table["recording_id"].tolist() == ["r1", "r2", "r3"]
    assert table["composer"].tolist() == ["Bach", "Chopin", "Liszt"]
    assert table["work"].tolist() == ["BWV 846", "Op. 28", "S. 139"]
    assert table["segment"].tolist() == [0, 0, 0]
    assert table["start_s"].tolist() == [0.0, 0.0, 0.0]
    assert np.isfinite(table[names].to_numpy(dtype=np.float64)).all()
    # different pieces, different vectors
    assert not np.array_equal(table.loc[0, names].to_numpy(), table.loc[1, names].to_numpy())


def test_renamed_copy_is_a_cache_hit(manifest: pd.DataFrame, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run(manifest, cache)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    copy = shutil.copy(manifest.loc[0, "path"], elsewhere / "renamed-copy.wav")
    moved = pd.DataFrame(
        [{"recording_id": "copy", "path": str(copy), "composer": "Bach", "work": "BWV 846"}]
    )

    report = run(moved, cache)

    assert (report.computed, report.cached) == (0, 1)
    original = run(manifest.iloc[:1], cache).table
    names = feature_names(CONFIG)
    np.testing.assert_array_equal(report.table[names].to_numpy(), original[names].to_numpy())


def test_changed_content_under_the_same_name_recomputes(
    manifest: pd.DataFrame, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    before = run(manifest, cache).table
    write_tone(Path(manifest.loc[0, "path"]), 523.0)  # same path, new audio

    report = run(manifest, cache)

    assert (report.computed, report.cached) == (1, 2)
    assert not report.table.loc[0, "mfcc_01_mean":].equals(before.loc[0, "mfcc_01_mean":])
    pd.testing.assert_frame_equal(report.table.iloc[1:], before.iloc[1:])


def test_changing_the_feature_config_recomputes(manifest: pd.DataFrame, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run(manifest, cache)
    wider = FeatureConfig(n_mfcc=20)

    changed = run(manifest, cache, wider)
    again = run(manifest, cache, wider)
    back = run(manifest, cache)

    assert (changed.computed, changed.cached) == (3, 0)
    assert (again.computed, again.cached) == (0, 3)
    assert (back.computed, back.cached) == (0, 3)  # both versions live side by side
    assert "mfcc_20_min" in changed.table.columns
    assert "mfcc_20_min" not in back.table.columns
    assert changed.table.shape[1] == back.table.shape[1] + 7 * 4
    assert {p.name for p in cache.iterdir()} == {CONFIG.fingerprint(), wider.fingerprint()}


def test_changing_max_seconds_recomputes(manifest: pd.DataFrame, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run(manifest, cache)
    report = run(manifest, cache, limits=AudioLimits(max_seconds=1.5))
    assert (report.computed, report.cached) == (3, 0)


def test_bad_files_are_reported_and_the_rest_come_through(
    manifest: pd.DataFrame, tmp_path: Path
) -> None:
    bad = tmp_path / "audio" / "bad.wav"
    bad.write_text("definitely not a wav file\n" * 10)
    silent = tmp_path / "audio" / "silent.wav"
    sf.write(silent, np.zeros(2 * SR, dtype=np.float32), SR)
    extra = pd.DataFrame(
        [
            {"recording_id": "bad", "path": str(bad), "composer": "X", "work": "x"},
            {"recording_id": "hush", "path": str(silent), "composer": "Y", "work": "y"},
            {
                "recording_id": "gone",
                "path": str(tmp_path / "nope.wav"),
                "composer": "Z",
                "work": "z",
            },
        ]
    )
    mixed = pd.concat([manifest.iloc[:2], extra, manifest.iloc[2:]], ignore_index=True)

    report = run(mixed, tmp_path / "cache")

    assert (report.computed, report.cached) == (3, 0)
    assert set(report.failed) == {"bad", "hush", "gone"}
    assert report.failed["bad"].startswith("bad.wav: ")
    assert "not an audio file (text)" in report.failed["bad"]
    assert report.failed["hush"].startswith("silent.wav: ")
    assert "silent" in report.failed["hush"]
    assert "nope.wav" in report.failed["gone"]  # an OSError from hashing the missing file
    assert report.table["recording_id"].tolist() == ["r1", "r2", "r3"]
    assert "path" not in report.table.columns

    # failures are not cached: a second run tries them again and fails the same way
    again = run(mixed, tmp_path / "cache")
    assert (again.computed, again.cached) == (0, 3)
    assert again.failed == report.failed


def test_all_failed_gives_an_empty_table_without_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("nope\n")
    manifest = pd.DataFrame(
        [{"recording_id": "bad", "path": str(bad), "composer": "X", "work": "x"}]
    )
    report = run(manifest, tmp_path / "cache")
    assert set(report.failed) == {"bad"}
    assert report.table.empty
    assert "path" not in report.table.columns


def test_progress_is_reported_per_recording(manifest: pd.DataFrame, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    run(manifest, tmp_path / "cache", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_two_workers_give_the_same_table(manifest: pd.DataFrame, tmp_path: Path) -> None:
    serial = run(manifest, tmp_path / "serial", workers=1)
    parallel = run(manifest, tmp_path / "parallel", workers=2)

    assert (parallel.computed, parallel.cached, parallel.failed) == (3, 0, {})
    pd.testing.assert_frame_equal(serial.table, parallel.table)
