"""Download and unpack public data sets safely: resumable, verified, and traversal-proof.

Dataset archives are large (MusicNet is ~11 GB) and come over networks that drop, so every
download here resumes from a ``.part`` file, is checked against the size and checksum the
publisher advertises, and only then appears under its final name. Archives are third-party
input, so extraction refuses anything that could write outside the target directory.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import requests
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

log = logging.getLogger(__name__)

#: (connect, read) timeouts in seconds: fail fast when offline, tolerate slow mirrors.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
PART_SUFFIX = ".part"
COMPLETE_SUFFIX = ".complete"

_OFFLINE_HINT = "check the network connection (this machine may be offline) and the URL"


class DownloadError(RuntimeError):
    """A download or extraction failed; the message says which file/URL and what to do."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the size or digest the publisher advertises."""


class UnsafeArchiveError(DownloadError):
    """An archive member would escape the destination or is not a plain file/dir/link."""


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file as described by the publisher (name, URL, expected size/digest).

    ``algorithm`` is a :mod:`hashlib` name (``"md5"``, ``"sha256"``...); ``size``, ``algorithm``
    and ``digest`` may be ``None`` when the source does not advertise them (then that check
    is skipped).
    """

    name: str
    url: str
    size: int | None
    algorithm: str | None
    digest: str | None


# --------------------------------------------------------------------------- record listing


def _parse_checksum(value: str | None) -> tuple[str | None, str | None]:
    """Split Zenodo's ``"md5:abc..."`` into (algorithm, digest)."""
    if not value:
        return None, None
    if ":" in value:
        algorithm, digest = value.split(":", 1)
        return algorithm.strip().lower(), digest.strip().lower()
    return "md5", value.strip().lower()  # legacy Zenodo entries carry a bare md5


def fetch_record_files(
    base_url: str, record_id: int | str, timeout: tuple[float, float] = DEFAULT_TIMEOUT
) -> list[RemoteFile]:
    """List the files of a Zenodo record (``GET {base_url}/api/records/{record_id}``).

    Reading sizes and checksums from the record (rather than hard-coding them) means a
    mirror or a new record version is verified against what it itself publishes. Both the
    current (``key``/``size``/``links.self``) and legacy (``filename``/``filesize``/
    ``links.download``) file entries are understood.
    """
    url = f"{base_url.rstrip('/')}/api/records/{record_id}"
    try:
        response = requests.get(url, headers={"Accept": "application/json"}, timeout=timeout)
    except requests.RequestException as exc:
        raise DownloadError(
            f"Could not reach {url} to list the files of record {record_id}: {exc}. "
            f"Please {_OFFLINE_HINT}."
        ) from exc
    if response.status_code == 404:
        raise DownloadError(
            f"Record {record_id} was not found at {url} (HTTP 404); check the record id and "
            "the base URL (settings musicnet_record / musicnet_base_url)."
        )
    if not response.ok:
        raise DownloadError(
            f"Listing record {record_id} failed: HTTP {response.status_code} from {url}; "
            "retry later."
        )
    try:
        payload = response.json()
    except ValueError as exc:
        raise DownloadError(f"{url} did not return JSON; is the base URL a Zenodo API?") from exc

    entries = payload.get("files")
    if isinstance(entries, dict):  # InvenioRDM style: {"entries": {key: {...}}}
        entries = list((entries.get("entries") or {}).values())
    if not isinstance(entries, list):
        raise DownloadError(f"Record {record_id} at {url} lists no files.")

    files: list[RemoteFile] = []
    for entry in entries:
        name = entry.get("key") or entry.get("filename")
        links = entry.get("links") or {}
        link = links.get("self") or links.get("content") or links.get("download")
        if not name or not link:
            log.warning("Skipping a file entry without name or link in %s: %r", url, entry)
            continue
        size = entry.get("size", entry.get("filesize"))
        algorithm, digest = _parse_checksum(entry.get("checksum"))
        files.append(
            RemoteFile(
                name=str(name),
                url=str(link),
                size=int(size) if size is not None else None,
                algorithm=algorithm,
                digest=digest,
            )
        )
    return files


# --------------------------------------------------------------------------- downloading


def _byte_progress(enabled: bool) -> AbstractContextManager[Progress | None]:
    """A rich progress display for byte transfers (bytes, speed, ETA), or nothing."""
    if not enabled:
        return nullcontext(None)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )


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

    with _byte_progress(progress) as bar:
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
        failures = 0
        while True:
            have = part.stat().st_size if part.exists() else 0
            if remote.size is not None and have == remote.size:
                break
            try:
                finished = _transfer(remote, part, chunk_size, timeout, bar, task)
            except requests.RequestException as exc:
                now = part.stat().st_size if part.exists() else 0
                failures = 0 if now > have else failures + 1
                if failures > retries:
                    raise DownloadError(
                        f"Downloading {remote.name} from {remote.url} failed after "
                        f"{retries + 1} attempts without progress: {exc}. Please "
                        f"{_OFFLINE_HINT}. Re-running resumes from {part} ({now} bytes so far)."
                    ) from exc
                wait = backoff * 2 ** max(failures - 1, 0)
                log.warning(
                    "Download of %s interrupted (%s); resuming in %.1fs", remote.url, exc, wait
                )
                time.sleep(min(wait, 60.0))
                continue
            now = part.stat().st_size if part.exists() else 0
            if finished and (remote.size is None or now >= remote.size):
                break
            # Body ended early without an error, or the server rejected our Range: go again.
            failures = 0 if now > have else failures + 1
            if failures > retries:
                raise DownloadError(
                    f"{remote.url} keeps ending {remote.name} early ({now} of {remote.size} "
                    f"bytes); retry later. Re-running resumes from {part}."
                )

        _verify(remote, part, bar)
    os.replace(part, final)  # atomic: the final name only ever holds verified bytes
    log.info("Downloaded %s", final)
    return final


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


# --------------------------------------------------------------------------- extraction


def extraction_marker(archive: Path, dest: Path) -> Path:
    """Path of the marker written after ``archive`` was fully extracted into ``dest``."""
    return Path(dest) / f".{Path(archive).name}{COMPLETE_SUFFIX}"


def is_extracted(archive: Path, dest: Path) -> bool:
    """Whether ``archive`` was completely extracted into ``dest`` (marker present, entries
    still there, and - if the archive is still around - the same archive size)."""
    marker = extraction_marker(archive, dest)
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    archive = Path(archive)
    if archive.exists() and info.get("archive_size") != archive.stat().st_size:
        return False
    return all((Path(dest) / entry).exists() for entry in info.get("entries", []))


#: PEP 706 extraction-filter refusals (absent on Python builds without ``filter=``).
_FILTER_ERRORS: tuple[type[Exception], ...] = (
    (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()
)


def _is_within(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _check_member(member: tarfile.TarInfo, root: str, symlinks: set[str]) -> None:
    """Refuse a member that could write outside ``root`` or is not a file/dir/link.

    Checks are lexical (the archive is judged before anything is written) and complement
    tarfile's ``filter="data"``, which checks the same at write time.
    """
    name = member.name
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchiveError(f"Refusing archive member {name!r}: absolute path.")
    target = os.path.normpath(os.path.join(root, name))
    if not _is_within(target, root):
        raise UnsafeArchiveError(f"Refusing archive member {name!r}: escapes the destination.")
    normalized = PurePosixPath(os.path.relpath(target, root))
    for ancestor in list(normalized.parents)[:-1]:  # skip "."
        if str(ancestor) in symlinks:
            raise UnsafeArchiveError(
                f"Refusing archive member {name!r}: it would be written through the symlink "
                f"{str(ancestor)!r}."
            )
    if member.issym():
        link = member.linkname
        if PurePosixPath(link).is_absolute() or link.startswith(("/", "\\")):
            raise UnsafeArchiveError(
                f"Refusing archive member {name!r}: symlink to absolute path {link!r}."
            )
        resolved = os.path.normpath(os.path.join(os.path.dirname(target), link))
        if not _is_within(resolved, root):
            raise UnsafeArchiveError(
                f"Refusing archive member {name!r}: symlink {link!r} points outside the "
                "destination."
            )
        symlinks.add(str(normalized))
    elif member.islnk():
        link = member.linkname
        resolved = os.path.normpath(os.path.join(root, link))
        if PurePosixPath(link).is_absolute() or not _is_within(resolved, root):
            raise UnsafeArchiveError(
                f"Refusing archive member {name!r}: hard link to {link!r} outside the destination."
            )
    elif member.ischr() or member.isblk() or member.isfifo():
        raise UnsafeArchiveError(
            f"Refusing archive member {name!r}: device or FIFO files are not allowed."
        )
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"Refusing archive member {name!r}: unsupported member type.")


def safe_extract_tar(archive: Path, dest: Path, progress: bool = True) -> list[Path]:
    """Extract a (possibly compressed) tar into ``dest`` and return the extracted paths.

    Members with absolute paths, ``..`` escapes, links pointing outside ``dest`` or device
    files raise :class:`UnsafeArchiveError` before anything reaches ``dest``. Extraction goes
    to a temporary directory inside ``dest``; only after every member is written are the
    top-level entries moved into place (replacing older copies) and a ``.complete`` marker
    written, so an interrupted run never leaves a tree that looks finished.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    marker = extraction_marker(archive, dest)
    marker.unlink(missing_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".extract-{archive.name}-", dir=dest))
    root = os.path.realpath(staging)
    names: list[str] = []

    try:
        with (
            _byte_progress(progress) as bar,
            archive.open("rb") as raw,
            tarfile.open(fileobj=raw, mode="r:*") as tar,
        ):
            task = (
                bar.add_task(f"extract {archive.name}", total=archive.stat().st_size)
                if bar is not None
                else None
            )
            symlinks: set[str] = set()

            def members() -> Iterator[tarfile.TarInfo]:
                # Streaming: one decompression pass, each member checked before it is written.
                for member in tar:
                    _check_member(member, root, symlinks)
                    names.append(os.path.normpath(member.name))
                    if bar is not None:
                        bar.update(task, completed=raw.tell())
                    yield member

            if hasattr(tarfile, "data_filter"):
                tar.extractall(staging, members=members(), filter="data")
            else:  # Python without PEP 706: rely on the explicit checks above
                tar.extractall(staging, members=members())
    except UnsafeArchiveError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UnsafeArchiveError(
            f"{archive}: {exc} Nothing was extracted. The archive is unsafe to unpack "
            "(corrupt or tampered download): delete it and download it again."
        ) from exc
    except _FILTER_ERRORS as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UnsafeArchiveError(f"Refusing archive {archive}: {exc}") from exc
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(
            f"{archive} is not a readable tar archive ({exc}); delete it and download again."
        ) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    entries = sorted(p.name for p in staging.iterdir())
    try:
        for entry in entries:
            target = dest / entry
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.exists():
                shutil.rmtree(target)
            os.replace(staging / entry, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    marker.write_text(
        json.dumps(
            {
                "archive": archive.name,
                "archive_size": archive.stat().st_size,
                "entries": entries,
                "members": len(names),
            }
        )
    )
    return [dest / name for name in dict.fromkeys(names) if name != "."]
