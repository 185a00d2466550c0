"""Uploaded audio is removed as soon as its prediction is done: Gradio keeps every upload in
its cache folder (``GRADIO_TEMP_DIR``) until the server stops, under the user's file name.

Gradio names an upload by its content (``<cache>/<sha256>/<name>``), so two clients sending
the same clip share one file. A file is therefore removed only when no running prediction
and no queued request still refers to it; the last one to finish removes it. Files that were
in the cache before the server started serving (demo clips shown as examples) are never
touched. Gradio's own ``delete_cache`` (set on the page) sweeps uploads that were never
predicted and empties the cache at shutdown.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import Counter
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

log = logging.getLogger("gradio_app")

# Gradio's own sweep: every 5 minutes, uploads older than 15 minutes (never predicted).
DELETE_CACHE = (300, 900)


class UploadJanitor:
    """``with janitor.using(path): ...`` then the upload is gone unless still needed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_use: Counter[str] = Counter()
        self._page: gr.Blocks | None = None
        self._protected: frozenset[str] = frozenset()

    def bind(self, page: gr.Blocks) -> None:
        """The page whose queue and cache lists are consulted (``build`` calls this)."""
        self._page = page

    def protect_existing(self) -> None:
        """Call after launch: what is in the cache now (demo examples) is never removed."""
        folder = Path(get_upload_folder())
        existing = folder.rglob("*") if folder.is_dir() else ()
        self._protected = frozenset(str(p.resolve()) for p in existing if p.is_file())

    def using(self, path: str) -> _Use:
        return _Use(self, str(Path(path).resolve()))

    def _enter(self, path: str) -> None:
        with self._lock:
            self._in_use[path] += 1

    def _exit(self, path: str) -> None:
        with self._lock:
            self._in_use[path] -= 1
            if self._in_use[path] > 0:
                return
            del self._in_use[path]
            queued = self._queued_paths()
            if not self._removable(path) or queued is None or path in queued:
                return
            self._remove(path)

    def _removable(self, path: str) -> bool:
        folder = str(Path(get_upload_folder()).resolve())
        return path.startswith(folder + os.sep) and path not in self._protected

    def _queued_paths(self) -> set[str] | None:
        """Paths that requests waiting in Gradio's queue will read; None when Gradio's
        internals changed (then nothing is removed here and ``delete_cache`` sweeps)."""
        queue = getattr(self._page, "_queue", None)
        found: set[str] = set()
        try:
            for event_queue in queue.event_queue_per_concurrency_id.values():
                for event in list(event_queue.queue):
                    for value in getattr(event.data, "data", None) or []:
                        if isinstance(value, dict) and value.get("path"):
                            found.add(str(Path(value["path"]).resolve()))
        except AttributeError:
            log.warning("Gradio's queue is not readable: uploads wait for the cache sweep")
            return None
        return found

    def _remove(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as error:
            log.warning("could not remove an upload: %s", error.strerror)
            return
        if self._page is not None:  # Gradio's own lists of cache files, for its sweep
            for files in self._page.temp_file_sets:
                files.discard(path)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))  # the per-content folder, when empty


class _Use:
    def __init__(self, janitor: UploadJanitor, path: str) -> None:
        self.janitor, self.path = janitor, path

    def __enter__(self) -> str:
        self.janitor._enter(self.path)
        return self.path

    def __exit__(self, *_exc: object) -> None:
        self.janitor._exit(self.path)
