"""A TCP proxy for fault-injection tests, whose state the test sets: up, down (every connection
closed, new ones refused) or frozen (sockets kept open, nothing forwarded, nothing accepted:
what a stopped process or a silent peer looks like from the client)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from dataclasses import dataclass, field


class FaultProxy:
    """A threaded TCP proxy to ``target`` whose state the test sets: up, down, frozen."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.state = "up"
        self.connections = 0
        self._listening = threading.Event()
        self._stop = threading.Event()
        self._pumps: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._serve, daemon=True, name="proxy")
        self._thread.start()
        assert self._listening.wait(5)

    def url(self, database_url: str) -> str:
        """``database_url`` with the proxy's address instead of the server's."""
        host = f"{self.target[0]}:{self.target[1]}"
        assert host in database_url
        return database_url.replace(host, f"127.0.0.1:{self.port}")

    def kill(self) -> None:
        """Close every connection and refuse new ones."""
        self.state = "down"
        deadline = time.monotonic() + 5
        while (self._listening.is_set() or self._live_pumps()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not self._listening.is_set() and not self._live_pumps()

    def freeze(self) -> None:
        """Keep every socket open but forward nothing and accept nothing (the kernel still
        completes handshakes into the backlog, as for a stopped process)."""
        self.state = "frozen"

    def restore(self) -> None:
        self.state = "up"
        assert self._listening.wait(5)

    def close(self) -> None:
        self._stop.set()
        self.state = "down"
        self._thread.join(5)

    def _live_pumps(self) -> int:
        return sum(pump.is_alive() for pump in self._pumps)

    def _serve(self) -> None:
        listener: socket.socket | None = None
        while not self._stop.is_set():
            if self.state == "down":
                if listener is not None:
                    listener.close()
                    listener = None
                    self._listening.clear()
                time.sleep(0.01)
                continue
            if listener is None:
                listener = socket.socket()
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(("127.0.0.1", self.port))
                listener.listen(128)
                listener.settimeout(0.02)
                self._listening.set()
            if self.state == "frozen":
                time.sleep(0.01)
                continue
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            self.connections += 1
            self._pumps = [pump for pump in self._pumps if pump.is_alive()]
            pair = _Pair(client, upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                pump = threading.Thread(target=self._pump, args=(pair, src, dst), daemon=True)
                self._pumps.append(pump)
                pump.start()
        if listener is not None:
            listener.close()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        try:
            while self.state != "down" and not self._stop.is_set():
                if self.state == "frozen":
                    time.sleep(0.01)
                    continue
                readable, _, _ = select.select([src], [], [], 0.02)
                if not readable:
                    continue
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            pair.done()


@dataclass
class _Pair:
    """Both sockets of one proxied connection: shut down by the first pump that ends, closed
    by the last (never closed under a pump still selecting on them)."""

    client: socket.socket
    upstream: socket.socket
    ended: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def done(self) -> None:
        with self.lock:
            self.ended += 1
            last = self.ended == 2
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            if last:
                sock.close()
