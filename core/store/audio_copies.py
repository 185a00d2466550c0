"""Copies of uploaded recordings, kept only when ``settings.keep_audio`` asks for it."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.config import Settings

_SUFFIX = re.compile(r"^\.[a-z0-9]{1,8}$")


def store_audio(src_path: Path, settings: Settings) -> str | None:
    """Keep a copy of an uploaded recording under a generated name (never the user's file
    name) when ``settings.keep_audio``; returns its path, or None when audio is not kept."""
    if not settings.keep_audio:
        return None
    src = Path(src_path)
    suffix = src.suffix.lower()
    directory = Path(settings.audio_store_dir)
    directory.mkdir(parents=True, exist_ok=True)
    destination = directory / f"{uuid.uuid4().hex}{suffix if _SUFFIX.match(suffix) else ''}"
    partial = destination.with_name(destination.name + ".partial")
    try:
        shutil.copyfile(src, partial)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return str(destination)
