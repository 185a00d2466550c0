"""`composer-id download-midi`: the pack's MIDI files from a real local HTTP server (resumable,
size- and sha256-checked), and a clear message when the server is unreachable."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from core.cli import app
from core.datasets import pack
from core.download import DownloadError
from tests.data.test_pack import write_piece

pytestmark = pytest.mark.integration


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests_seen: ClassVar[list[str]] = []

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        type(self).requests_seen.append(self.path)
        super().do_GET()


@pytest.fixture
def served(tmp_path):
    """A MIDI collection on disk and an HTTP server for it (SimpleHTTP ignores Range headers,
    so a resumed download restarts from zero, which download_file handles)."""
    root = tmp_path / "site"
    root.mkdir()
    rows = [("Alpha/a_1.mid", "Alpha", [60, 64, 67]), ("Beta/b_1.mid", "Beta", [50, 57, 62])]
    lines = ["file,composer,title,year,duration_s,bytes"]
    for file, composer, notes in rows:
        size = write_piece(root / file, notes, 3.0)
        lines.append(f"{file},{composer},{composer}_Piece_1,1800,3.0,{size}")
    (root / "sources.csv").write_text("\n".join(lines) + "\n")
    pieces = pack.read_sources(root)
    pack.write_pieces(pieces, tmp_path / "pieces.csv")
    (root / "sources.csv").unlink()  # the client must write its own
    QuietHandler.requests_seen = []
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", tmp_path / "pieces.csv"
    server.shutdown()
    server.server_close()


def test_downloads_every_file_verified_then_reruns_without_network(served, tmp_path):
    root, url, pieces_csv = served
    dest = tmp_path / "midi"
    result = CliRunner().invoke(
        app,
        ["download-midi", "--dest", str(dest), "--base-url", url, "--pieces-csv", str(pieces_csv)],
    )
    assert result.exit_code == 0, result.output
    for file in ("Alpha/a_1.mid", "Beta/b_1.mid"):
        assert (dest / file).read_bytes() == (root / file).read_bytes()
    assert sorted(QuietHandler.requests_seen) == ["/Alpha/a_1.mid", "/Beta/b_1.mid"]
    # the folder is a valid --midi-dir for build-pack: sources.csv written, sha256s match
    assert [p.piece for p in pack.read_sources(dest)] == ["Alpha/a_1", "Beta/b_1"]
    QuietHandler.requests_seen = []
    again = pack.download_midi(pack.read_pieces(pieces_csv), url, dest)
    assert len(again) == 2 and QuietHandler.requests_seen == []  # verified files are kept


def test_partial_file_is_completed(served, tmp_path):
    root, url, pieces_csv = served
    dest = tmp_path / "midi"
    (dest / "Alpha").mkdir(parents=True)
    data = (root / "Alpha/a_1.mid").read_bytes()
    (dest / "Alpha/a_1.mid.part").write_bytes(data[: len(data) // 2])
    pack.download_midi(pack.read_pieces(pieces_csv), url, dest)
    assert (dest / "Alpha/a_1.mid").read_bytes() == data
    assert not (dest / "Alpha/a_1.mid.part").exists()


def test_a_file_that_does_not_match_its_checksum_is_refused(served, tmp_path):
    root, url, pieces_csv = served
    data = bytearray((root / "Beta/b_1.mid").read_bytes())
    data[-5] ^= 0xFF  # same size, other bytes
    (root / "Beta/b_1.mid").write_bytes(bytes(data))
    with pytest.raises(DownloadError):
        pack.download_midi(pack.read_pieces(pieces_csv), url, tmp_path / "midi")
    assert not (tmp_path / "midi/Beta/b_1.mid").exists()


def test_unreachable_server_gives_a_clear_message(served, tmp_path):
    _, _, pieces_csv = served
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(
        app,
        [
            "download-midi",
            "--dest",
            str(tmp_path / "midi"),
            "--base-url",
            f"http://127.0.0.1:{port}",
            "--pieces-csv",
            str(pieces_csv),
        ],
    )
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "check the network connection" in message
    assert "COMPOSER_MIDI_BASE_URL" in message
    shutil.rmtree(tmp_path / "midi", ignore_errors=True)
