"""core.download and core.datasets.musicnet.download against a real local HTTP server.

The server speaks enough of Zenodo's API (``/api/records/<id>`` + file content with Range
support) and can misbehave on purpose: drop the connection mid-file, ignore Range, advertise
a wrong checksum. Nothing here is mocked and nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.config import Settings
from core.datasets import musicnet
from core.download import (
    ChecksumError,
    DownloadError,
    RemoteFile,
    UnsafeArchiveError,
    download_file,
    extraction_marker,
    fetch_record_files,
    is_extracted,
    safe_extract_tar,
)

pytestmark = pytest.mark.integration

RECORD_ID = 4242


class _Handler(BaseHTTPRequestHandler):
    server: FakeZenodo

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:
        srv = self.server
        with srv.lock:
            srv.requests.append((self.path, self.headers.get("Range")))
        if self.path == f"/api/records/{srv.record_id}":
            return self._send(200, json.dumps(srv.record_json()).encode(), "application/json")
        match = re.fullmatch(rf"/api/records/{srv.record_id}/files/([^/]+)/content", self.path)
        if not match or match.group(1) not in srv.files:
            return self._send(404, b'{"status": 404}', "application/json")
        self._serve_file(srv.files[match.group(1)])

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _serve_file(self, data: bytes) -> None:
        srv = self.server
        status, body, extra = 200, data, {"Accept-Ranges": "bytes"}
        header = self.headers.get("Range")
        if header and not srv.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", header).group(1))
            if start >= len(data):
                return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"})
            status, body = 206, data[start:]
            extra["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        with srv.lock:
            drop = srv.drop_after if not srv.dropped else None
            srv.dropped = srv.dropped or drop is not None
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if drop is None:
            self.wfile.write(body)
            return
        # Simulate a dropped connection: promise the whole body, send part, hang up.
        self.wfile.write(body[:drop])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


class FakeZenodo(ThreadingHTTPServer):
    """A tiny Zenodo look-alike on 127.0.0.1 with switchable failure modes."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.record_id = RECORD_ID
        self.files: dict[str, bytes] = {}
        self.advertised_md5: dict[str, str] = {}  # overrides the real digest
        self.requests: list[tuple[str, str | None]] = []
        self.drop_after: int | None = None  # first file response stops after N bytes
        self.dropped = False
        self.ignore_range = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def file_url(self, name: str) -> str:
        return f"{self.base_url}/api/records/{self.record_id}/files/{name}/content"

    def record_json(self) -> dict:
        return {
            "id": self.record_id,
            "files": [
                {
                    "key": name,
                    "size": len(data),
                    "checksum": "md5:"
                    + self.advertised_md5.get(name, hashlib.md5(data).hexdigest()),
                    "links": {"self": self.file_url(name)},
                }
                for name, data in self.files.items()
            ],
        }

    def remote(self, name: str) -> RemoteFile:
        (entry,) = [f for f in fetch_record_files(self.base_url, self.record_id) if f.name == name]
        return entry

    def file_requests(self, name: str) -> list[str | None]:
        """Range headers of the requests for one file's content, in order."""
        with self.lock:
            return [
                rng
                for path, rng in self.requests
                if path == f"/api/records/{RECORD_ID}/files/{name}/content"
            ]


@pytest.fixture
def server() -> Iterator[FakeZenodo]:
    srv = FakeZenodo()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _payload(n: int = 300_000) -> bytes:
    return np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()


FAST = {"progress": False, "chunk_size": 8192, "backoff": 0.0}


# --------------------------------------------------------------------------- record listing


def test_fetch_record_files_parses_zenodo_json(server: FakeZenodo) -> None:
    data = _payload(1000)
    server.files["a.bin"] = data
    (remote,) = fetch_record_files(server.base_url, RECORD_ID)
    assert remote == RemoteFile(
        name="a.bin",
        url=server.file_url("a.bin"),
        size=1000,
        algorithm="md5",
        digest=hashlib.md5(data).hexdigest(),
    )


def test_fetch_record_files_unknown_record(server: FakeZenodo) -> None:
    with pytest.raises(DownloadError, match="not found"):
        fetch_record_files(server.base_url, 1)


def test_offline_is_a_clear_download_error(closed_port: int, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{closed_port}"
    with pytest.raises(DownloadError, match="offline") as info:
        fetch_record_files(base, RECORD_ID)
    assert f"{base}/api/records/{RECORD_ID}" in str(info.value)

    url = f"{base}/files/x.bin"
    remote = RemoteFile("x.bin", url, 10, "md5", "0" * 32)
    with pytest.raises(DownloadError, match="offline") as info:
        download_file(remote, tmp_path, retries=1, **FAST)
    assert url in str(info.value)
    assert not (tmp_path / "x.bin").exists()


# --------------------------------------------------------------------------- downloading


def test_download_verifies_and_skips_existing(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload()
    server.files["a.bin"] = data
    remote = server.remote("a.bin")
    path = download_file(remote, tmp_path, **FAST)
    assert path == tmp_path / "a.bin"
    assert path.read_bytes() == data
    assert not (tmp_path / "a.bin.part").exists()
    assert server.file_requests("a.bin") == [None]

    download_file(remote, tmp_path, **FAST)  # verified copy present: no network
    assert len(server.file_requests("a.bin")) == 1

    path.write_bytes(b"stale")  # wrong content under the final name: fetched again
    assert download_file(remote, tmp_path, **FAST).read_bytes() == data
    assert len(server.file_requests("a.bin")) == 2


def test_resume_after_dropped_connection(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload()
    server.files["big.bin"] = data
    server.drop_after = 100_000
    path = download_file(server.remote("big.bin"), tmp_path, **FAST)
    assert path.read_bytes() == data
    first, second = server.file_requests("big.bin")
    assert first is None
    assert second is not None
    start = int(re.fullmatch(r"bytes=(\d+)-", second).group(1))
    assert 0 < start <= 100_000  # whatever arrived before the drop was kept


def test_resume_existing_part_file(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload()
    server.files["big.bin"] = data
    (tmp_path / "big.bin.part").write_bytes(data[:123_456])  # left by an earlier run
    path = download_file(server.remote("big.bin"), tmp_path, **FAST)
    assert path.read_bytes() == data
    assert server.file_requests("big.bin") == ["bytes=123456-"]


def test_server_ignoring_range_restarts_from_zero(server: FakeZenodo, tmp_path: Path) -> None:
    data = _payload()
    server.files["big.bin"] = data
    server.ignore_range = True
    (tmp_path / "big.bin.part").write_bytes(b"x" * 50_000)  # would corrupt an append
    path = download_file(server.remote("big.bin"), tmp_path, **FAST)
    assert path.read_bytes() == data
    assert server.file_requests("big.bin") == ["bytes=50000-"]


def test_checksum_mismatch(server: FakeZenodo, tmp_path: Path) -> None:
    server.files["a.bin"] = _payload(5000)
    server.advertised_md5["a.bin"] = "0" * 32
    remote = server.remote("a.bin")
    with pytest.raises(ChecksumError) as info:
        download_file(remote, tmp_path, **FAST)
    message = str(info.value)
    assert "a.bin" in message and remote.url in message
    assert "0" * 32 in message and hashlib.md5(server.files["a.bin"]).hexdigest() in message
    assert "retry" in message
    assert not (tmp_path / "a.bin").exists()
    assert not (tmp_path / "a.bin.part").exists()


def test_http_error_is_download_error(server: FakeZenodo, tmp_path: Path) -> None:
    remote = RemoteFile("gone.bin", server.file_url("gone.bin"), 3, None, None)
    with pytest.raises(DownloadError, match="404"):
        download_file(remote, tmp_path, **FAST)


# --------------------------------------------------------------------------- extraction


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"hello") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _device(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info, None


def _all_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_safe_extract_tar_extracts_and_marks_complete(tmp_path: Path) -> None:
    dirinfo = tarfile.TarInfo("pkg")
    dirinfo.type = tarfile.DIRTYPE
    archive = _tar(
        tmp_path / "ok.tar.gz",
        [(dirinfo, None), _file("pkg/a.txt", b"a"), _link("pkg/b.txt", "a.txt")],
    )
    dest = tmp_path / "dest"
    paths = safe_extract_tar(archive, dest, progress=False)
    assert set(paths) == {dest / "pkg", dest / "pkg/a.txt", dest / "pkg/b.txt"}
    assert (dest / "pkg/b.txt").read_bytes() == b"a"
    assert is_extracted(archive, dest)
    assert _all_files(dest) == {
        "pkg",
        "pkg/a.txt",
        "pkg/b.txt",
        extraction_marker(archive, dest).name,
    }


@pytest.mark.parametrize(
    "members",
    [
        pytest.param([_file("ok.txt"), _file("../evil")], id="dotdot"),
        pytest.param([_file("pkg/../../evil")], id="dotdot-nested"),
        pytest.param([_file("ABSOLUTE")], id="absolute"),
        pytest.param([_link("pkg/etc", "/etc")], id="symlink-etc"),
        pytest.param([_link("pkg/up", "../../..")], id="symlink-relative-escape"),
        pytest.param([_link("pkg/passwd", "/etc/passwd", tarfile.LNKTYPE)], id="hardlink"),
        pytest.param([_link("pkg/lnk", "sub"), _file("pkg/lnk/x")], id="through-symlink"),
        pytest.param([_device("pkg/null")], id="device"),
    ],
)
def test_safe_extract_tar_refuses_unsafe_members(tmp_path: Path, members: list) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    members = [
        (_file(str(outside / "abs.txt"))[0], b"x") if info.name == "ABSOLUTE" else (info, data)
        for info, data in members
    ]
    archive = _tar(tmp_path / "bad.tar.gz", members)
    bad_name = members[-1][0].name
    with tarfile.open(archive) as tar:  # the archive really holds the hostile name
        assert tar.getnames()[-1] == bad_name

    dest = tmp_path / "dest"
    before = _all_files(tmp_path)
    with pytest.raises(UnsafeArchiveError) as info:
        safe_extract_tar(archive, dest, progress=False)
    assert repr(bad_name) in str(info.value)
    assert _all_files(dest) == set()  # no staging dir, no half tree, no marker
    assert _all_files(tmp_path) == before | {"dest"}
    assert not is_extracted(archive, dest)


def test_safe_extract_tar_truncated_archive(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "t.tar.gz", [_file("pkg/a.bin", _payload(200_000))])
    archive.write_bytes(archive.read_bytes()[:-5000])
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match="download again"):
        safe_extract_tar(archive, dest, progress=False)
    assert _all_files(dest) == set()


# --------------------------------------------------------------------------- MusicNet end to end

TINY_METADATA = """\
id,composer,composition,movement,ensemble,source,transcriber,catalog_name,seconds
1,Beethoven,Piano Sonata No 8 in C minor,1. Grave,Solo Piano,Test,Test,OP13,1
2,Beethoven,Piano Sonata No 8 in C minor,2. Adagio cantabile,Solo Piano,Test,Test,OP13,1
3,Bach,WTK I. No. 1: Prelude and Fugue in C major,1. Prelude,Solo Piano,Test,Test,BWV846,1
4,Haydn,Quartet No 53 in D major,1. Allegro,String Quartet,Test,Test,OP64NO5,1
"""


def _tiny_musicnet(tmp_path: Path) -> bytes:
    """A MusicNet-shaped tarball: 3 train + 1 test recording, tiny wavs and label CSVs."""
    build = tmp_path / "build" / "musicnet"
    rate = 8000
    tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(rate // 10) / rate).astype(np.float32)
    for rid, split in (("1", "train"), ("2", "test"), ("3", "train"), ("4", "train")):
        (build / f"{split}_data").mkdir(parents=True, exist_ok=True)
        (build / f"{split}_labels").mkdir(parents=True, exist_ok=True)
        sf.write(build / f"{split}_data" / f"{rid}.wav", tone, rate)
        (build / f"{split}_labels" / f"{rid}.csv").write_text(
            "start_time,end_time,instrument,note,start_beat,end_beat,note_value\n"
            "0,800,1,69,0,1,Quarter\n"
        )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(build, arcname="musicnet")
    return buffer.getvalue()


def test_musicnet_download_end_to_end(server: FakeZenodo, tmp_path: Path) -> None:
    server.files["musicnet.tar.gz"] = _tiny_musicnet(tmp_path)
    server.files["musicnet_metadata.csv"] = TINY_METADATA.encode()
    server.files["musicnet_midis.tar.gz"] = b"unused"
    settings = Settings(
        home=tmp_path / "home",
        musicnet_dir=tmp_path / "mn",
        musicnet_base_url=server.base_url,
        musicnet_record=RECORD_ID,
    )

    root = musicnet.download(settings, progress=True)
    assert root == tmp_path / "mn"
    assert (root / "musicnet/train_data/1.wav").is_file()
    assert (root / "musicnet/test_labels/2.csv").is_file()
    assert is_extracted(root / "musicnet.tar.gz", root)
    assert not [p for p in root.iterdir() if p.name.startswith(".extract")]
    assert server.file_requests("musicnet_midis.tar.gz") == []

    n_requests = len(server.requests)
    assert musicnet.download(settings, progress=False) == root  # done: no network at all
    assert len(server.requests) == n_requests

    manifest = musicnet.load_manifest(root)
    assert list(manifest.columns) == musicnet.MANIFEST_COLUMNS
    assert manifest["recording_id"].tolist() == ["1", "2", "3"]
    assert set(manifest["composer"]) == {"Beethoven", "Bach"}
    assert manifest["work"].tolist() == ["Beethoven: OP13", "Beethoven: OP13", "Bach: BWV846"]
    assert manifest["official_split"].tolist() == ["train", "test", "train"]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in manifest["path"])
    assert manifest.loc[0, "title"] == "Piano Sonata No 8 in C minor - 1. Grave"

    (root / "musicnet/train_data/3.wav").unlink()
    with pytest.warns(UserWarning, match="1 of 3"):
        assert musicnet.load_manifest(root)["recording_id"].tolist() == ["1", "2"]
    assert len(musicnet.load_manifest(root, require_audio=False)) == 3


def test_musicnet_download_reports_missing_record_file(server: FakeZenodo, tmp_path: Path) -> None:
    server.files["musicnet_metadata.csv"] = TINY_METADATA.encode()
    settings = Settings(
        home=tmp_path / "home", musicnet_base_url=server.base_url, musicnet_record=RECORD_ID
    )
    with pytest.raises(DownloadError, match=r"musicnet\.tar\.gz") as info:
        musicnet.download(settings, progress=False)
    assert str(RECORD_ID) in str(info.value)
    assert settings.musicnet_dir == tmp_path / "home" / "musicnet"
    assert not os.listdir(settings.musicnet_dir)
