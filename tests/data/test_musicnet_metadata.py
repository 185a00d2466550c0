"""load_manifest on MusicNet's real metadata (tests/fixtures copy), without any audio."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from core.datasets.musicnet import MANIFEST_COLUMNS, OFFICIAL_TEST_IDS, load_manifest

pytestmark = pytest.mark.data

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "musicnet_metadata.csv"


@pytest.fixture(scope="module")
def metadata() -> pd.DataFrame:
    return pd.read_csv(FIXTURE, dtype={"id": str})


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An extracted-MusicNet layout with the real metadata and no audio."""
    for sub in ("train_data", "train_labels", "test_data", "test_labels"):
        (tmp_path / "musicnet" / sub).mkdir(parents=True)
    shutil.copy(FIXTURE, tmp_path / "musicnet_metadata.csv")
    return tmp_path


def test_all_ensembles_keep_every_row(root: Path, metadata: pd.DataFrame) -> None:
    manifest = load_manifest(root, ensemble=None, require_audio=False)
    assert len(manifest) == len(metadata) == 330
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert manifest["recording_id"].is_unique
    assert set(manifest["recording_id"]) == set(metadata["id"])
    assert manifest["recording_id"].map(type).eq(str).all()
    assert manifest["path"].map(lambda p: Path(p).is_absolute()).all()
    assert manifest["duration_s"].sum() == pytest.approx(metadata["seconds"].sum())
    # Without audio on disk the split comes from MusicNet's published test list.
    test_ids = set(manifest.loc[manifest["official_split"] == "test", "recording_id"])
    assert test_ids == OFFICIAL_TEST_IDS
    assert set(manifest["official_split"]) == {"train", "test"}


def test_solo_piano_is_only_beethoven_bach_schubert(root: Path, metadata: pd.DataFrame) -> None:
    manifest = load_manifest(root, require_audio=False)  # default ensemble: Solo Piano
    assert set(manifest["composer"]) == {"Beethoven", "Bach", "Schubert"}
    assert len(manifest) == (metadata["ensemble"] == "Solo Piano").sum() == 156
    assert manifest["composer"].value_counts().to_dict() == {
        "Beethoven": 93,
        "Bach": 39,
        "Schubert": 24,
    }
    assert (manifest["ensemble"] == "Solo Piano").all()
    assert set(load_manifest(root, ensemble="solo piano", require_audio=False)["recording_id"]) == (
        set(manifest["recording_id"])
    )


def test_min_recordings_drops_small_composers(root: Path) -> None:
    def composers(n: int, ensemble: str | None = "Solo Piano") -> set[str]:
        manifest = load_manifest(root, ensemble=ensemble, min_recordings=n, require_audio=False)
        return set(manifest["composer"])

    assert composers(24) == {"Beethoven", "Bach", "Schubert"}
    assert composers(25) == {"Beethoven", "Bach"}
    assert composers(40) == {"Beethoven"}
    assert composers(94) == set()
    assert composers(10, ensemble=None) == {"Beethoven", "Bach", "Schubert", "Mozart", "Brahms"}


def test_movements_of_one_composition_share_one_work(root: Path, metadata: pd.DataFrame) -> None:
    manifest = load_manifest(root, ensemble=None, require_audio=False)
    merged = manifest.merge(metadata, left_on="recording_id", right_on="id")
    # every catalogued composition (all its movements and performances) is exactly one work
    assert merged.groupby(["composer_x", "catalog_name"])["work"].nunique().eq(1).all()
    # ... and a work never mixes composers or catalogue numbers
    assert merged.groupby("work")["composer_x"].nunique().eq(1).all()
    assert merged.groupby("work")["catalog_name"].nunique().eq(1).all()
    assert manifest["work"].nunique() == metadata.groupby(["composer", "catalog_name"]).ngroups

    moonlight = merged[merged["catalog_name"] == "OP27NO2"]
    assert len(moonlight) == 5 and moonlight["work"].nunique() == 1
    assert moonlight["title"].nunique() == 2  # 1st and 3rd movements, repeated performances

    # Same title, different works: Schubert's two A minor sonatas stay apart.
    a_minor = merged[merged["composition"] == "Piano Sonata in A minor"]
    assert set(a_minor["work"]) == {"Schubert: D784", "Schubert: D845"}


def test_title_joins_composition_and_movement(root: Path) -> None:
    manifest = load_manifest(root, require_audio=False).set_index("recording_id")
    assert manifest.loc["2303", "title"] == (
        "WTK I. No. 5: Prelude and Fugue in D major - 1. Prelude"
    )
    assert manifest.loc["2303", "official_split"] == "test"


def test_require_audio_without_audio_explains_how_to_download(root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="composer-id download"):
        load_manifest(root)


def test_missing_metadata_names_path_and_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_manifest(tmp_path, require_audio=False)
    message = str(info.value)
    assert str(tmp_path / "musicnet_metadata.csv") in message
    assert "composer-id download" in message and "make download-data" in message


def test_unknown_ensemble_lists_available(root: Path) -> None:
    with pytest.raises(ValueError, match="String Quartet"):
        load_manifest(root, ensemble="Gamelan", require_audio=False)
