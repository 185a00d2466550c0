"""Fail when a Python module passes 400 lines (run by `make test`).

A module that long has more than one job; split it (keep its public names importable) rather
than raise the limit. Tests are not checked. PENDING lists the modules still over the limit
that someone is splitting; an entry that is no longer over is an error too, so the list only
shrinks.

    python scripts/check_module_size.py [ROOT]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

MAX_LINES = 400
CHECKED = ("core", "dags", "plugins", "gradio_app", "reports_app", "scripts", "bench")
# Over the limit today and being split; remove an entry with the split.
PENDING: frozenset[str] = frozenset(
    {
        "core/monitor.py",
        "bench/app_load.py",
    }
)


@dataclass(frozen=True)
class Module:
    path: str  # relative to the root, with forward slashes
    lines: int


@dataclass(frozen=True)
class SizeReport:
    over: tuple[Module, ...]  # over the limit and not pending: the failures
    pending: tuple[Module, ...]  # over the limit and listed in PENDING
    stale: tuple[str, ...]  # listed in PENDING but no longer over (or gone)

    @property
    def ok(self) -> bool:
        return not self.over and not self.stale


def modules(root: Path, folders: tuple[str, ...] = CHECKED) -> list[Module]:
    found = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            with path.open("rb") as handle:
                lines = sum(1 for _ in handle)
            found.append(Module(path.relative_to(root).as_posix(), lines))
    return found


def check(root: Path, pending: frozenset[str] = PENDING, limit: int = MAX_LINES) -> SizeReport:
    found = modules(root)
    over = [m for m in found if m.lines > limit]
    over_paths = {m.path for m in over}
    return SizeReport(
        over=tuple(m for m in over if m.path not in pending),
        pending=tuple(m for m in over if m.path in pending),
        stale=tuple(sorted(pending - over_paths)),
    )


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1]
    report = check(root)
    for module in report.over:
        print(
            f"check_module_size: {module.path} has {module.lines} lines (limit {MAX_LINES}): "
            "split it into modules with one job each",
            file=sys.stderr,
        )
    for path in report.stale:
        print(
            f"check_module_size: {path} is in PENDING but no longer over {MAX_LINES} lines: "
            "remove it from scripts/check_module_size.py",
            file=sys.stderr,
        )
    if not report.ok:
        return 1
    waiting = ", ".join(f"{m.path} ({m.lines})" for m in report.pending)
    print(
        f"check_module_size: OK (limit {MAX_LINES})"
        + (f"; still to split: {waiting}" if waiting else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
