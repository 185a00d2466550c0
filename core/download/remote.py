"""What a download is about: the publisher's description of a file, the errors, and the
progress display shared by transfer, verification and extraction."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

#: (connect, read) timeouts in seconds: fail fast when offline, tolerate slow mirrors.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
PART_SUFFIX = ".part"
COMPLETE_SUFFIX = ".complete"

OFFLINE_HINT = "check the network connection (this machine may be offline) and the URL"


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


def byte_progress(enabled: bool) -> AbstractContextManager[Progress | None]:
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
