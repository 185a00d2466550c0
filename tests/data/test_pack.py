"""The repertoire pack: a tiny fixture build end to end (render -> featurize -> assemble ->
load), determinism, resumability, refusal of another schema; the shipped pack's contract."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mido
import pandas as pd
import pytest

from core.config import REPO_ROOT, FeatureConfig
from core.datasets import pack
from core.datasets.works import work_of
from core.features import feature_names
from tests.conftest import require_system

pytestmark = pytest.mark.data
PACK = REPO_ROOT / "data" / "pack"
SHIFTED = REPO_ROOT / "data" / "shifted"
VARIANTS = (
    pack.Variant("tim", "timgm6mb"),
    pack.Variant("tim-soft", "timgm6mb", humanise_strength=0.5, audio_augment=False),
)


def write_piece(path: Path, notes: list[int], seconds: float) -> int:
    """Repeated broken chords for ``seconds`` at 120 bpm; returns the file size."""
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for i in range(int(seconds * 4)):  # eighth notes
        note = notes[i % len(notes)]
        track.append(mido.Message("note_on", note=note, velocity=60 + (i * 7) % 40, time=0))
        track.append(mido.Message("note_off", note=note, time=240))
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(str(path))
    return path.stat().st_size


@pytest.fixture(scope="module")
def midi_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("midi")
    rows = [
        ("Alpha/alpha_1.mid", "Alpha", "Sonata_Opus_1_1", [60, 64, 67, 72], 12.0),
        ("Alpha/alpha_2.mid", "Alpha", "Sonata_Opus_1_2", [57, 60, 64, 69], 6.0),
        ("Beta/beta_1.mid", "Beta", "Nocturne_Opus_9", [50, 57, 62, 65, 69], 12.0),
    ]
    with (root / "sources.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "composer", "title", "year", "duration_s", "bytes"])
        for file, composer, title, notes, seconds in rows:
            size = write_piece(root / file, notes, seconds)
            w.writerow([file, composer, title, 1800, seconds, size])
    return root


def options(midi_dir: Path, work_dir: Path, **kw) -> pack.BuildOptions:
    return pack.BuildOptions(
        midi_dir=midi_dir, work_dir=work_dir, config=FeatureConfig(), variants=VARIANTS, **kw
    )


@pytest.fixture(scope="module")
def built(midi_dir, tmp_path_factory) -> tuple[pack.BuildOptions, Path, dict]:
    require_system("fluidsynth", "soundfont")
    work = tmp_path_factory.mktemp("work")
    out = tmp_path_factory.mktemp("pack")
    opts = options(midi_dir, work)
    pieces = pack.read_sources(midi_dir)
    manifest = pack.build(pieces, opts, out, "test build", workers=2, progress=None)
    return opts, out, manifest


def test_fixture_build_has_rows_per_piece_variant_and_segment(built):
    opts, out, manifest = built
    table = pack.load_pack(out, opts.config)
    names = feature_names(opts.config)
    assert list(table.columns) == [*pack.META_COLUMNS, *names]
    assert set(table["source"]) == {"tim", "tim-soft"}
    assert set(table["piece"]) == {"Alpha/alpha_1", "Alpha/alpha_2", "Beta/beta_1"}
    # the same work for both movements of the sonata: the split groups them
    assert set(table.loc[table["composer"] == "Alpha", "work"]) == {"Sonata_Opus_1"}
    per = table.groupby(["piece", "source"]).size()
    assert per[("Alpha/alpha_2", "tim")] == 1  # ~6 s: one (short) segment
    assert per[("Alpha/alpha_1", "tim")] >= 1
    assert (table[names].dtypes == "float32").all()
    assert table[names].notna().all().all()
    assert manifest["rows"] == len(table)
    assert manifest["feature_schema"] == opts.config.schema_id
    assert manifest["rows_per_composer"] == table["composer"].value_counts().to_dict()
    pieces = pd.read_csv(out / "pieces.csv")
    assert list(pieces.columns) == pack.PIECES_COLUMNS
    assert pieces["sha256"].str.len().eq(64).all()


def test_rebuild_is_resumable_and_deterministic(built, midi_dir, tmp_path):
    opts, out, _ = built
    pieces = pack.read_sources(midi_dir)
    again = pack.build(pieces, opts, tmp_path / "again", "test build", progress=None)
    assert again["build_computed"] == {"render": 0, "featurize": 0}  # all from the cache
    fresh = options(midi_dir, tmp_path / "fresh-work")
    rebuilt = pack.build(pieces, fresh, tmp_path / "fresh", "test build", progress=None)
    assert rebuilt["build_computed"] == {"render": 6, "featurize": 6}
    pd.testing.assert_frame_equal(
        pack.load_pack(out, opts.config), pack.load_pack(tmp_path / "fresh", fresh.config)
    )
    assert rebuilt["parquet_sha256"] == again["parquet_sha256"]


def test_load_pack_refuses_another_schema_or_config_with_a_rebuild_hint(built):
    opts, out, _ = built
    older = FeatureConfig(schema_version=opts.config.schema_version - 1)
    with pytest.raises(pack.PackError, match="composer-id build-pack --midi-dir PATH"):
        pack.load_pack(out, older)
    with pytest.raises(pack.PackError, match="n_mfcc"):
        pack.load_pack(out, FeatureConfig(n_mfcc=20))


def test_load_pack_refuses_an_edited_parquet(built, tmp_path):
    opts, out, _ = built
    copy = tmp_path / "pack"
    copy.mkdir()
    for name in ("manifest.json", "features.parquet"):
        (copy / name).write_bytes((out / name).read_bytes())
    table = pd.read_parquet(copy / "features.parquet")
    table.iloc[:1].to_parquet(copy / "features.parquet")
    with pytest.raises(pack.PackError, match="sha256"):
        pack.load_pack(copy, opts.config)


def test_chunks_are_spread_over_the_piece_and_differ_per_soundfont():
    assert pack.chunk_plan(20.0, 2, 0) == pack.chunk_plan(20.0, 2, 1) == [(0.0, 20.0)]
    first = pack.chunk_plan(300.0, 2, 0)
    second = pack.chunk_plan(300.0, 2, 1)
    starts = sorted(s for s, _ in first + second)
    assert starts == [30.0 * i for i in range(10)]  # every slot once, no overlap
    assert first[0][0] == 150.0  # the middle first
    assert min(s for s, _ in first[:2]) < 150.0 < max(s for s, _ in first[:3])
    assert not set(first) & set(second)


def test_shifted_set_cuts_the_demo_excerpt_through_the_tempo_change(built, midi_dir, tmp_path):
    opts, _, _ = built
    excerpts = [
        pack.Excerpt("Alpha/alpha_1", "Alpha", "Sonata_Opus_1", "Sonata_Opus_1_1",
                     "Alpha/alpha_1.mid", 1.5, 8.0),
        pack.Excerpt("Beta/beta_1", "Beta", "Nocturne_Opus_9", "Nocturne_Opus_9",
                     "Beta/beta_1.mid", 0.5, 8.0),
    ]  # fmt: skip
    manifest = pack.build_shifted(excerpts, opts, tmp_path / "shifted", "test", progress=None)
    table = pack.load_shifted(tmp_path / "shifted", opts.config)
    assert list(table.columns[: len(pack.SHIFTED_COLUMNS)]) == pack.SHIFTED_COLUMNS
    assert set(table["recording_id"]) == {"Alpha/alpha_1", "Beta/beta_1"}
    assert set(table["source"]) == {"timgm6mb"}
    for meta in manifest["excerpts"].values():
        assert abs(meta["seconds"] - 8.0) < 8.0 * 0.25  # 8 s of music, tempo within +-25 %
        assert meta["start_s"] != meta["demo_start_s"]


def test_downloaded_folder_is_a_valid_midi_dir(midi_dir, tmp_path):
    pieces = pack.read_sources(midi_dir)
    pack.write_pieces(pieces, tmp_path / "pieces.csv")
    again = pack.read_pieces(tmp_path / "pieces.csv")
    assert again == sorted(pieces, key=lambda p: (p.composer, p.file))


# --- the shipped pack and shifted set (read data/ only) -------------------------------------


def shipped(folder: Path) -> dict:
    if not (folder / "manifest.json").is_file():
        pytest.fail(f"{folder} is not built: composer-id build-pack / build-shifted")
    return json.loads((folder / "manifest.json").read_text())


def test_shipped_pack_matches_the_current_feature_schema_and_its_manifest():
    manifest = shipped(PACK)
    config = FeatureConfig()
    table = pack.load_pack(PACK, config)  # checks schema, config and sha256
    assert (PACK / "features.parquet").stat().st_size <= 25 * 1024 * 1024
    assert manifest["rows"] == len(table)
    assert manifest["rows_per_composer"] == table["composer"].value_counts().to_dict()
    assert {"musescore", "fluidr3"} <= set(table["source"])
    assert "timgm6mb" not in set(table["source"])  # held out for the shifted set
    assert table["composer"].nunique() >= 20
    assert table.groupby("piece")["work"].nunique().max() == 1
    assert (table["work"] == table["title"].map(work_of)).all()


def test_shipped_pack_pieces_list_and_licence():
    pieces = pd.read_csv(PACK / "pieces.csv")
    table = pd.read_parquet(PACK / "features.parquet", columns=["piece"])
    assert set(table["piece"]) == set(pieces["piece"])
    assert (pieces["work"] == pieces["title"].map(work_of)).all()
    licence = (PACK / "LICENSE.md").read_text()
    assert "CC BY-SA 3.0 DE" in licence and "Bernd Krüger" in licence
    assert "piano-midi.de" in licence
    assert "composer-id build-pack" in (PACK / "README.md").read_text()


def test_shipped_shifted_set_covers_the_demo_corpus():
    manifest = shipped(SHIFTED)
    table = pack.load_shifted(SHIFTED, FeatureConfig())
    demo = pd.read_csv(REPO_ROOT / "data" / "demo" / "manifest.csv")
    assert set(table["recording_id"]) == set(demo["recording_id"])
    assert set(table["source"]) == {"timgm6mb"}
    merged = table.drop_duplicates("recording_id").merge(demo, on="recording_id")
    assert (merged["work_x"] == merged["work_y"]).all()
    assert manifest["soundfont"] == "timgm6mb"
    assert "CC BY-SA 3.0 DE" in (SHIFTED / "LICENSE.md").read_text()


def test_demo_manifest_works_follow_the_shared_rule():
    demo = pd.read_csv(REPO_ROOT / "data" / "demo" / "manifest.csv")
    assert (demo["title"].map(work_of) == demo["work"]).all()


def test_no_midi_files_are_committed_under_data():
    midi = [p for p in (REPO_ROOT / "data").rglob("*") if p.suffix.lower() in (".mid", ".midi")]
    assert midi == []
