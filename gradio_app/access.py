"""Failed logins are throttled per client: Gradio's login route answers a wrong password at
once (40 guesses took 0.7 s), so a password could be guessed at network speed.

An ASGI middleware in front of ``POST /login``: after a client's first failure each further
attempt waits ``base_delay_s`` doubling per failure (capped at ``max_delay_s``), attempts
from one client are handled one at a time (parallel guesses queue up), and after
``max_failures`` failures the client gets ``429 Too Many Requests`` for ``lockout_s`` without
its password being checked. A successful login clears the client's record. The client is
the peer address, or behind Cloud Run (``trust_forwarded``) the last ``X-Forwarded-For``
entry, the one its proxy appended. Whoever spreads guesses over many addresses meets a
global budget: past ``global_failures`` failures a minute, all attempts queue one at a time
behind ``max_delay_s`` each (slow for everyone, locked for no one).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field

log = logging.getLogger("gradio_app")


@dataclass
class _Client:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LoginThrottle:
    """ASGI middleware; pass as ``Middleware(LoginThrottle)`` in Gradio's ``app_kwargs``."""

    def __init__(
        self,
        app,
        base_delay_s: float = 0.25,
        max_delay_s: float = 4.0,
        max_failures: int = 8,
        lockout_s: float = 900.0,
        forget_after_s: float = 900.0,
        global_failures: int = 30,
        trust_forwarded: bool = False,
    ) -> None:
        self.app = app
        self.base_delay_s, self.max_delay_s = base_delay_s, max_delay_s
        self.max_failures, self.lockout_s = max_failures, lockout_s
        self.forget_after_s = forget_after_s
        self.trust_forwarded = trust_forwarded
        self.global_failures = global_failures
        self.clients: dict[str, _Client] = {}
        self.recent: deque[float] = deque()  # failure times, all clients, last minute
        self.global_lock = asyncio.Lock()

    async def __call__(self, scope, receive, send) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].rstrip("/").endswith("/login")
        ):
            await self.app(scope, receive, send)
            return
        if self._under_attack():
            async with self.global_lock:
                await asyncio.sleep(self.max_delay_s)
                await self._attempt(scope, receive, send)
        else:
            await self._attempt(scope, receive, send)

    def _under_attack(self) -> bool:
        now = time.monotonic()
        while self.recent and now - self.recent[0] > 60:
            self.recent.popleft()
        return len(self.recent) >= self.global_failures

    async def _attempt(self, scope, receive, send) -> None:
        key = self._client_key(scope)
        client = self._client(key)
        async with client.lock:  # one attempt at a time per client
            now = time.monotonic()
            if client.locked_until > now:
                await self._too_many(send, client.locked_until - now)
                return
            if client.failures:
                delay = self.base_delay_s * 2 ** (client.failures - 1)
                await asyncio.sleep(min(delay, self.max_delay_s))
            status: list[int] = []

            async def watch(message) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])
                await send(message)

            await self.app(scope, receive, watch)
            if status and 200 <= status[0] < 300:
                self.clients.pop(key, None)
            elif status and status[0] in (400, 401, 403):
                client.failures += 1
                client.last_failure = time.monotonic()
                self.recent.append(client.last_failure)
                if client.failures >= self.max_failures:
                    client.locked_until = client.last_failure + self.lockout_s
                    log.warning(
                        "login locked for %.0f s after %d failures", self.lockout_s, client.failures
                    )

    def _client(self, key: str) -> _Client:
        now = time.monotonic()
        if len(self.clients) > 10_000:  # forget quiet clients; bounded memory under a spray
            for stale in [
                k
                for k, c in self.clients.items()
                if c.locked_until < now and now - c.last_failure > self.forget_after_s
            ]:
                del self.clients[stale]
        client = self.clients.setdefault(key, _Client())
        if client.locked_until < now and now - client.last_failure > self.forget_after_s:
            client.failures = 0
        return client

    def _client_key(self, scope) -> str:
        if self.trust_forwarded:
            for name, value in scope.get("headers") or []:
                if name == b"x-forwarded-for":
                    return value.decode("latin-1").split(",")[-1].strip()
        peer = scope.get("client")
        return peer[0] if peer else "unknown"

    async def _too_many(self, send, retry_after: float) -> None:
        body = json.dumps(
            {"detail": f"Too many failed logins; try again in {retry_after:.0f} s."}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(int(retry_after) + 1).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
