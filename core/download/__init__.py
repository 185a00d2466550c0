"""Download and unpack public data sets safely: resumable, verified, and traversal-proof.

Dataset archives are large (MusicNet is ~11 GB) and come over networks that drop, so every
download here resumes from a ``.part`` file, is checked against the size and checksum the
publisher advertises, and only then appears under its final name. Archives are third-party
input, so extraction refuses anything that could write outside the target directory.

One job per module: ``remote`` (what a file and an error are), ``records`` (listing a Zenodo
record), ``transfer`` (resumable, verified download) and ``archive`` (safe extraction).
"""

from __future__ import annotations

from core.download.archive import (
    extraction_marker,
    is_extracted,
    safe_extract_tar,
)
from core.download.records import (
    fetch_record_files,
)
from core.download.remote import (
    COMPLETE_SUFFIX,
    DEFAULT_TIMEOUT,
    PART_SUFFIX,
    ChecksumError,
    DownloadError,
    RemoteFile,
    UnsafeArchiveError,
)
from core.download.transfer import (
    download_file,
    file_digest,
)

__all__ = [
    "COMPLETE_SUFFIX",
    "DEFAULT_TIMEOUT",
    "PART_SUFFIX",
    "ChecksumError",
    "DownloadError",
    "RemoteFile",
    "UnsafeArchiveError",
    "download_file",
    "extraction_marker",
    "fetch_record_files",
    "file_digest",
    "is_extracted",
    "safe_extract_tar",
]
