"""The built-in demo corpus: 30 s piano excerpts rendered from piano-midi.de MIDI files.

Shipped in the repository (``data/demo``, CC BY-SA 3.0 DE) so that ``make run`` needs no
download. ``scripts/render_demo_corpus.py`` regenerates it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

MANIFEST_COLUMNS = ["recording_id", "path", "composer", "work", "title"]


def load_manifest(demo_dir: Path) -> pd.DataFrame:
    """Manifest with absolute paths; raises with a clear message if the corpus is missing."""
    manifest_path = Path(demo_dir) / "manifest.csv"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"Demo corpus manifest not found at {manifest_path}. It ships with the repository "
            "(data/demo); set COMPOSER_DEMO_DIR if you moved it."
        )
    manifest = pd.read_csv(manifest_path, dtype={"recording_id": str})
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(f"{manifest_path}: missing columns {missing}.")
    manifest["path"] = [str((Path(demo_dir) / p).resolve()) for p in manifest["path"]]
    return manifest
