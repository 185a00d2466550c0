"""The store's health as one typed value, shared by the app, the reports page and the CLI."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["ok", "degraded", "down"]


@dataclass(frozen=True)
class StoreHealth:
    """``ok``: the database answers and nothing waits. ``degraded``: records are kept but not
    all in the database (it is away, the spool is draining, or rows were set aside as dead
    letters). ``down``: nothing can be recorded (no database and no writable spool)."""

    status: Status
    database: bool
    spooled: int
    dead_letters: int
    message: str

    @classmethod
    def assess(
        cls, database: bool, spooled: int, dead_letters: int, spool_writable: bool
    ) -> StoreHealth:
        if database and not spooled and not dead_letters:
            return cls("ok", database, spooled, dead_letters, "ok")
        if database or spool_writable:
            message = f"degraded: spooling {spooled} records, {dead_letters} dead letters"
            if not database:
                message += " (database unreachable)"
            return cls("degraded", database, spooled, dead_letters, message)
        return cls("down", database, spooled, dead_letters, "down: no database, no spool")

    @property
    def http_status(self) -> int:
        """200 while predictions are kept (ok, degraded), 503 when they cannot be."""
        return 503 if self.status == "down" else 200

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
