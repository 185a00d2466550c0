"""Loading a built pack for training: refuses another feature schema or config, and a
parquet whose sha256 does not match its manifest (a git LFS pointer, an edit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from core.config import FeatureConfig
from core.datasets.pack_pieces import PackError, sha256

REBUILD_HINT = (
    "Rebuild it with the current feature code: `composer-id build-pack --midi-dir PATH "
    "--out {out}` (PATH: the piano-midi.de MIDI folder; `composer-id download-midi --dest PATH` "
    "fetches it), or train without it: COMPOSER_USE_PACK=false."
)


def read_manifest(pack_dir: Path) -> dict[str, Any]:
    path = Path(pack_dir) / "manifest.json"
    if not path.is_file():
        raise PackError(f"No pack at {pack_dir} (manifest.json missing). " + _hint(pack_dir))
    return json.loads(path.read_text())


def _hint(pack_dir: Path) -> str:
    return REBUILD_HINT.format(out=pack_dir)


def load_pack(pack_dir: Path, config: FeatureConfig, verify: bool = True) -> pd.DataFrame:
    """The pack's rows (META_COLUMNS + features) for ``config``; refuses any other schema/config
    and a parquet whose sha256 does not match its manifest."""
    pack_dir = Path(pack_dir)
    manifest = read_manifest(pack_dir)
    if manifest.get("feature_schema") != config.schema_id:
        raise PackError(
            f"The pack at {pack_dir} was built with feature schema "
            f"{manifest.get('feature_schema')}, this code computes {config.schema_id}. "
            + _hint(pack_dir)
        )
    if manifest.get("feature_fingerprint") != config.fingerprint():
        changed = {
            k: (manifest.get("feature_config", {}).get(k), v)
            for k, v in config.model_dump().items()
            if manifest.get("feature_config", {}).get(k) != v
        }
        raise PackError(
            f"The pack at {pack_dir} was built with another feature config "
            f"(pack vs now: {changed}). " + _hint(pack_dir)
        )
    parquet = pack_dir / "features.parquet"
    if not parquet.is_file():
        raise PackError(f"{parquet} is missing. " + _hint(pack_dir))
    if verify and sha256(parquet) != manifest.get("parquet_sha256"):
        raise PackError(
            f"{parquet} does not match the sha256 in its manifest (corrupt or edited; a git "
            "LFS pointer?). Restore it from git or " + _hint(pack_dir)
        )
    table = pd.read_parquet(parquet)
    if len(table) != manifest.get("rows"):
        raise PackError(f"{parquet}: {len(table)} rows, the manifest says {manifest.get('rows')}.")
    return table
