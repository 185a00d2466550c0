"""Listing a Zenodo record's files with the sizes and checksums it publishes."""

from __future__ import annotations

import logging

import requests

from core.download.remote import DEFAULT_TIMEOUT, OFFLINE_HINT, DownloadError, RemoteFile

log = logging.getLogger(__name__)


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
            f"Please {OFFLINE_HINT}."
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
