"""Composer identification: audio -> features -> model -> composer, tracked in MLflow."""

import os
from pathlib import Path

# Numba (used by librosa) compiles on first use, ~25 s cold; a persistent cache makes that once.
# It must be set before librosa is imported, so it lives here rather than in config.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / "var" / "numba"))

__version__ = "0.1.0"
