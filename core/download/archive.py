"""Extracting third-party tar archives safely: nothing may land outside the destination,
and a marker records a complete extraction so it is not redone."""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from core.download.remote import COMPLETE_SUFFIX, DownloadError, UnsafeArchiveError, byte_progress

log = logging.getLogger(__name__)


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
    try:
        names = _extract_checked(archive, staging, progress)
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

    entries = _move_into_place(staging, dest)
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


def _extract_checked(archive: Path, staging: Path, progress: bool) -> list[str]:
    """Stream every member into ``staging``, each checked before it is written; the
    normalised member names."""
    root = os.path.realpath(staging)
    names: list[str] = []
    with (
        byte_progress(progress) as bar,
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
    return names


def _move_into_place(staging: Path, dest: Path) -> list[str]:
    """Replace ``dest``'s top-level entries with the staged ones; the staging folder goes."""
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
    return entries
