"""Resumable, verified HTTP download of one file: ``.part`` -> size and checksum -> final name."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from rich.progress import (
    Progress,
)

from core.download.remote import (
    DEFAULT_TIMEOUT,
    OFFLINE_HINT,
    PART_SUFFIX,
    ChecksumError,
    DownloadError,
    RemoteFile,
    byte_progress,
)

log = logging.getLogger(__name__)


def file_digest(
    path: Path, algorithm: str, progress: Progress | None = None, label: str | None = None
) -> str:
    """Hex digest of a file, read in chunks so multi-GB archives do not fill memory."""
    try:
        hasher = hashlib.new(algorithm)
    except ValueError as exc:
        raise DownloadError(
            f"Checksum algorithm {algorithm!r} for {path.name} is not supported by hashlib."
        ) from exc
    task = None
    if progress is not None:
        task = progress.add_task(f"verify {label or path.name}", total=path.stat().st_size)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
            if task is not None and progress is not None:
                progress.advance(task, len(chunk))
    return hasher.hexdigest()


def _matches(path: Path, remote: RemoteFile, progress: Progress | None = None) -> bool:
    """Whether a local file already has the advertised size and digest."""
    if remote.size is not None and path.stat().st_size != remote.size:
        return False
    if remote.algorithm and remote.digest:
        return file_digest(path, remote.algorithm, progress) == remote.digest.lower()
    return remote.size is not None  # nothing to compare against: do not trust a stale file


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)?/?(\d+|\*)?")


def _range_start(response: requests.Response) -> int | None:
    """Start offset announced by a 206 response's Content-Range, if parseable."""
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _transfer(
    remote: RemoteFile,
    part: Path,
    chunk_size: int,
    timeout: tuple[float, float],
    progress: Progress | None,
    task: Any,
) -> bool:
    """One HTTP attempt: continue ``part`` from its current size (or from zero).

    Returns True when a whole response body was received, False when the caller should
    simply try again. Raises ``requests.RequestException`` for network trouble (the caller
    retries) and :class:`DownloadError` for answers that retrying cannot fix.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}  # byte offsets must refer to the stored file
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with requests.get(remote.url, headers=headers, stream=True, timeout=timeout) as response:
        if response.status_code == 416 and offset:
            # Range not satisfiable: the .part does not fit this file; start over.
            part.unlink(missing_ok=True)
            return False
        if response.status_code >= 500:
            response.raise_for_status()  # HTTPError is a RequestException: retried
        if response.status_code not in (200, 206):
            raise DownloadError(
                f"Downloading {remote.name} from {remote.url} failed with HTTP "
                f"{response.status_code}; check the URL/record, then retry."
            )
        mode = "ab"
        if response.status_code == 200 or _range_start(response) != offset:
            if offset:
                log.info("%s ignored the Range request; restarting from zero", remote.url)
            mode, offset = "wb", 0
        if progress is not None:
            progress.update(task, completed=offset)
        with part.open(mode) as handle:
            for chunk in response.iter_content(chunk_size=chunk_size):
                handle.write(chunk)
                if progress is not None:
                    progress.advance(task, len(chunk))
            handle.flush()
            os.fsync(handle.fileno())
    return True


def download_file(
    remote: RemoteFile,
    dest_dir: Path,
    progress: bool = True,
    chunk_size: int = 1 << 20,
    retries: int = 3,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    backoff: float = 1.0,
) -> Path:
    """Download ``remote`` into ``dest_dir`` and return the verified final path.

    Bytes go to ``<name>.part`` and are appended with ``Range: bytes=N-`` after a dropped
    connection or a restart, so an interrupted multi-GB download is not lost (a server that
    answers 200 to a Range request is handled by starting over). The file gets its final
    name, atomically, only after its size and checksum match; an existing final file that
    already matches is returned without any network access.

    ``retries`` counts consecutive attempts that made no progress; an attempt that received
    bytes resets the count, so a flaky but working connection still finishes. ``backoff`` is
    the base of the exponential wait between attempts (seconds).
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / remote.name
    part = dest_dir / (remote.name + PART_SUFFIX)

    with byte_progress(progress) as bar:
        if final.exists():
            if _matches(final, remote, bar):
                log.info("%s already present and verified; not downloading again", final)
                return final
            log.warning("%s exists but does not match the record; downloading again", final)

        if part.exists() and remote.size is not None and part.stat().st_size > remote.size:
            log.warning("%s is larger than the advertised size; starting over", part)
            part.unlink()

        task = (
            bar.add_task(f"download {remote.name}", total=remote.size) if bar is not None else None
        )
        _fetch(remote, part, Attempts(chunk_size, timeout, retries, backoff), bar, task)
        _verify(remote, part, bar)
    os.replace(part, final)  # atomic: the final name only ever holds verified bytes
    log.info("Downloaded %s", final)
    return final


@dataclass(frozen=True)
class Attempts:
    """How ``download_file`` transfers: chunk size, timeouts, retries without progress and
    the base of the exponential wait between them."""

    chunk_size: int
    timeout: tuple[float, float]
    retries: int
    backoff: float


def _fetch(remote: RemoteFile, part: Path, how: Attempts, bar: Progress | None, task: Any) -> None:
    """Transfer into ``part`` until a whole body arrived (or the advertised size is there),
    retrying while attempts make progress; DownloadError after ``retries`` without."""
    failures = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        if remote.size is not None and have == remote.size:
            return
        try:
            finished = _transfer(remote, part, how.chunk_size, how.timeout, bar, task)
        except requests.RequestException as exc:
            now = part.stat().st_size if part.exists() else 0
            failures = 0 if now > have else failures + 1
            if failures > how.retries:
                raise DownloadError(
                    f"Downloading {remote.name} from {remote.url} failed after "
                    f"{how.retries + 1} attempts without progress: {exc}. Please "
                    f"{OFFLINE_HINT}. Re-running resumes from {part} ({now} bytes so far)."
                ) from exc
            wait = how.backoff * 2 ** max(failures - 1, 0)
            log.warning("Download of %s interrupted (%s); resuming in %.1fs", remote.url, exc, wait)
            time.sleep(min(wait, 60.0))
            continue
        now = part.stat().st_size if part.exists() else 0
        if finished and (remote.size is None or now >= remote.size):
            return
        # Body ended early without an error, or the server rejected our Range: go again.
        failures = 0 if now > have else failures + 1
        if failures > how.retries:
            raise DownloadError(
                f"{remote.url} keeps ending {remote.name} early ({now} of {remote.size} "
                f"bytes); retry later. Re-running resumes from {part}."
            )


def _verify(remote: RemoteFile, part: Path, bar: Progress | None) -> None:
    """Check size and digest of a finished ``.part``; remove it when it is wrong."""
    actual_size = part.stat().st_size if part.exists() else 0
    if remote.size is not None and actual_size != remote.size:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{remote.name} from {remote.url} has {actual_size} bytes, expected {remote.size}. "
            f"The partial file {part} was deleted; retry the download, and if this repeats "
            "the server is serving a different file than the record advertises."
        )
    if remote.algorithm and remote.digest:
        actual = file_digest(part, remote.algorithm, bar, label=remote.name)
        if actual != remote.digest.lower():
            part.unlink(missing_ok=True)
            raise ChecksumError(
                f"{remote.algorithm} checksum mismatch for {remote.name} from {remote.url}: "
                f"expected {remote.digest}, got {actual}. The corrupt partial file {part} "
                "was deleted so the next attempt starts from scratch; retry, and if it "
                "fails again check the network/proxy and that the mirror matches the record."
            )
