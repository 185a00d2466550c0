"""The local spool: records kept on disk while the database cannot take them.

Files in the spool directory, each name unique (time, pid, counter, random) and never reused:

* ``spool-<unique>.jsonl``: an open segment. One store instance (per process) appends to its
  own segment; every append is fsynced before it is acknowledged.
* ``claimed-<unique>.jsonl``: a segment a flush took by an atomic rename. The flusher holds an
  exclusive ``flock`` on it until it has written the rows and deleted the file; a claimed file
  nobody holds was left by a flusher that died and is taken again by the next flush (the
  inserts are idempotent, so nothing is written twice).
* ``dead-<unique>.jsonl``: dead letters, one JSON line each with the reason and the original
  line: rows the database rejected (or that cannot be read), set aside so the rest drains.

A writer never appends to a file that is not its own open segment: it checks, under the
segment's lock, that the name still points to the file it holds; after a claim it starts a new
segment with a new name. A claim cannot overwrite anything (new unique name), so no record is
lost between a failed flush and the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SEGMENT_GLOBS = ("spool-*.jsonl",)
CLAIM_GLOBS = ("claimed-*.jsonl", "spool-*.flushing")  # the second: left by older versions
DEAD_GLOBS = ("dead-*.jsonl", "rejected-*.jsonl")
_COUNTER = itertools.count()


def unique_name(prefix: str) -> str:
    """A file name no other writer, process or flush in this directory will ever use."""
    return f"{prefix}{time.time_ns()}-{os.getpid()}-{next(_COUNTER)}-{secrets.token_hex(4)}.jsonl"


@dataclass
class Claim:
    """A claimed spool file and the open, locked descriptor that marks it as being flushed."""

    path: Path
    fd: int

    def lines(self) -> list[bytes]:
        size = os.fstat(self.fd).st_size
        chunks, offset = [], 0
        while offset < size:
            chunk = os.pread(self.fd, size - offset, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return [line for line in b"".join(chunks).splitlines() if line.strip()]


class Spool:
    """Durable JSON lines in ``directory``, safe between threads and processes (POSIX)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._pid = -1

    # ---- writing

    def append(self, entry: Mapping[str, Any]) -> None:
        """Append one JSON line to this instance's segment and fsync it before returning."""
        line = (json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n").encode()
        with self._lock:
            for _ in range(1000):
                fd, path = self._segment()
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # a flush is claiming it: wait, or move on if it did
                    if not _same_file(path, fd):
                        self._drop()
                    else:
                        time.sleep(0.001)
                    continue
                try:
                    ours = _same_file(path, fd)
                    if ours:
                        _write_all(fd, line)
                        os.fsync(fd)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                if ours:
                    return
                self._drop()  # claimed since our last append: never write to it again
            raise OSError(f"could not append to a spool segment in {self.directory}")

    def set_aside(self, letters: list[tuple[str, str]]) -> None:
        """Write dead letters ``(reason, original line)`` to a new file, fsynced."""
        if not letters:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / unique_name("dead-")
        payload = "".join(
            json.dumps({"reason": reason, "line": line}, ensure_ascii=False) + "\n"
            for reason, line in letters
        ).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_dir(self.directory)

    def close(self) -> None:
        with self._lock:
            self._drop()

    # ---- claiming (flush)

    def claim_all(self) -> list[Claim]:
        """Claim every file waiting: claimed files no live flusher holds (left by a crash),
        then every open segment (renamed to a new unique name). Each claim stays locked until
        :meth:`finish` or :meth:`release`."""
        claims = [c for c in map(self._recover, self._glob(CLAIM_GLOBS)) if c]
        claims += [c for c in map(self._claim_segment, self._glob(SEGMENT_GLOBS)) if c]
        return claims

    def finish(self, claim: Claim) -> None:
        """The claim's rows are in the database (or set aside): delete the file."""
        try:
            claim.path.unlink(missing_ok=True)
            _fsync_dir(self.directory)
        finally:
            os.close(claim.fd)

    @staticmethod
    def release(claim: Claim) -> None:
        """Give a claim up (the database went away): the next flush takes it again."""
        os.close(claim.fd)

    def _claim_segment(self, path: Path) -> Claim | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a writer holds it for one append at most
            if not _same_file(path, fd):
                os.close(fd)
                return None
            target = self.directory / unique_name("claimed-")
            os.rename(path, target)
            _fsync_dir(self.directory)
            return Claim(target, fd)
        except BaseException:
            os.close(fd)
            raise

    def _recover(self, path: Path) -> Claim | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a live flush holds it
            os.close(fd)
            return None
        if not _same_file(path, fd):  # finished (deleted) since we listed it
            os.close(fd)
            return None
        return Claim(path, fd)

    # ---- reading

    def pending_files(self) -> list[Path]:
        """Files holding records not yet in the database (open segments and claims)."""
        return self._glob(CLAIM_GLOBS) + self._glob(SEGMENT_GLOBS)

    def depth(self) -> int:
        """How many records wait in the spool."""
        return sum(1 for _path, _line in self._lines(self.pending_files()))

    def dead_letters(self) -> int:
        return sum(1 for _path, _line in self._lines(self._glob(DEAD_GLOBS)))

    def find(self, kind: str, record_id: str) -> dict[str, Any] | None:
        """The data of a spooled record of ``kind`` with this id, if one is waiting."""
        needle = record_id.encode()
        for _path, line in self._lines(self.pending_files()):
            if needle not in line:
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(line)
                if entry["kind"] == kind and entry["data"]["id"] == record_id:
                    return entry["data"]
        return None

    def writable(self) -> bool:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return os.access(self.directory, os.W_OK | os.X_OK)

    # ---- internals

    def _segment(self) -> tuple[int, Path]:
        """This instance's open segment, created (with a new unique name) when needed."""
        if self._fd is None or self._path is None or self._pid != os.getpid():
            if self._fd is not None and self._pid != os.getpid():
                os.close(self._fd)  # inherited across fork: the parent keeps its own
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / unique_name("spool-")
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
            self._path, self._pid = path, os.getpid()
            _fsync_dir(self.directory)
        return self._fd, self._path

    def _drop(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd, self._path = None, None

    def _glob(self, patterns: tuple[str, ...]) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(path for pattern in patterns for path in self.directory.glob(pattern))

    @staticmethod
    def _lines(paths: list[Path]) -> Iterator[tuple[Path, bytes]]:
        for path in paths:
            with contextlib.suppress(FileNotFoundError), open(path, "rb") as handle:
                for line in handle:
                    if line.strip():
                        yield path, line


def _same_file(path: Path, fd: int) -> bool:
    """Does ``path`` still name the file open as ``fd`` (not renamed away or replaced)?"""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (on_disk.st_ino, on_disk.st_dev) == (opened.st_ino, opened.st_dev)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
