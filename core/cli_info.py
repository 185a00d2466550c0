"""`composer-id info`'s registry listing: every version with its alias, scores and the
promotion decision, said with when and why (not "no champion yet", which read like now)."""

from __future__ import annotations

import time
from datetime import datetime

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from rich.table import Table

from core import registry
from core.config import Settings

PROMOTION_WORDS = {"promoted": "promoted", "rejected": "not promoted"}


def versions_table(client: MlflowClient, settings: Settings) -> Table | None:
    """One row per registered version (None when nothing is registered yet)."""
    versions = client.search_model_versions(f"name='{settings.model_name}'")
    if not versions:
        return None
    aliases = registry.aliases_by_version(client, settings)
    table = Table("version", "alias", "candidate", "test rec. macro-F1", "promotion", "created")
    for item in sorted(versions, key=lambda v: int(v.version)):
        run = client.get_run(item.run_id) if item.run_id else None
        f1 = run.data.metrics.get("test_recording_macro_f1") if run else None
        table.add_row(
            str(item.version),
            ", ".join(aliases.get(str(item.version), [])),
            run.data.params.get("candidate", "") if run else "",
            f"{f1:.3f}" if f1 is not None else "",
            promotion_text(item),
            _local(item.creation_timestamp / 1000),
        )
    return table


def promotion_text(item: ModelVersion) -> str:
    """``promoted 2026-12-03 14:08: first model: there was no champion to compare with``."""
    tags = item.tags or {}
    reason = tags.get("promotion_reason", "")
    if not reason:
        return ""
    verdict = PROMOTION_WORDS.get(tags.get("promotion", ""), tags.get("promotion", ""))
    decided = tags.get(registry.DECIDED_AT_TAG)
    when = _local(datetime.fromisoformat(decided).timestamp()) if decided else ""
    head = " ".join(part for part in (verdict, when) if part)
    return f"{head}: {reason}" if head else reason


def _local(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))
