"""Check that the declared dependencies, the pins and the lock agree (run by `make test`).

pyproject.toml declares ranges (core + the extras app, airflow, dev), requirements.txt pins
each of those names once for Python 3.11 on Linux, requirements.lock pins every transitive
package with hashes, and requirements-app.txt (the app image) repeats the core and app lines,
locked in requirements-app.lock at the same versions as requirements.lock.
Four files drift apart silently: an import added without a declaration, a pin bumped in one
file only, a lock not regenerated. It also checks that every third-party import in the code
(and tests) is provided by a declared distribution. Fast and offline: it reads files and the
installed distributions' metadata.

    python scripts/check_deps.py [ROOT]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python scripts/check_deps.py`, scripts/ comes first on sys.path, where
# scripts/platform.py would shadow the standard library's `platform` (packaging imports it).
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import ast
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import packages_distributions

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

# The environment the pins and the lock are for: CI, the images and Composer 3.
LOCK_ENV = {
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
TOOLING_HEADER = "# Tooling"  # deploy/airflow.Dockerfile installs requirements.txt above it
RUNTIME_GROUPS = ("core", "app", "airflow")
APP_GROUPS = ("core", "app")
SCANNED = ("core", "dags", "plugins", "gradio_app", "reports_app", "scripts", "bench", "tests")
LOCK_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


@dataclass(frozen=True)
class Pin:
    """One requirements-file line that applies to LOCK_ENV."""

    requirement: Requirement
    section: str  # "runtime" or "tooling"

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    declared: int = 0
    pinned: int = 0
    locked: int = 0

    def add(self, problem: str) -> None:
        self.problems.append(problem)


def applies(req: Requirement) -> bool:
    return req.marker is None or req.marker.evaluate(LOCK_ENV)


def declared_groups(pyproject: dict, report: Report) -> dict[str, dict[str, Requirement]]:
    """{"core": {...}, "app": {...}, ...}: canonical name -> requirement, self-references out."""
    project = pyproject.get("project", {})
    own = canonicalize_name(project.get("name", ""))
    raw = {"core": project.get("dependencies", []), **project.get("optional-dependencies", {})}
    groups: dict[str, dict[str, Requirement]] = {}
    seen: dict[str, str] = {}
    for group, lines in raw.items():
        groups[group] = {}
        for line in lines:
            req = Requirement(line)
            name = canonicalize_name(req.name)
            if name == own:
                missing = sorted(set(req.extras) - set(raw))
                if missing:
                    report.add(f"pyproject: extra {group!r} refers to unknown extras {missing}")
                continue
            if name in seen:
                report.add(
                    f"pyproject: {req.name} is declared in both {seen[name]!r} and {group!r}"
                )
            seen[name] = group
            groups[group][name] = req
    if not raw["core"]:
        report.add("pyproject: [project] has no dependencies (`pip install .` installs nothing)")
    return groups


def read_pins(path: Path, report: Report) -> list[Pin]:
    """The lines of a requirements file that apply to LOCK_ENV, with their section."""
    pins: list[Pin] = []
    section = "runtime"
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if line == TOOLING_HEADER:
            section = "tooling"
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            report.add(f"{path.name}:{number}: cannot parse {line!r}: {exc}")
            continue
        if applies(req):
            pins.append(Pin(req, section))
    return pins


def read_lock(path: Path, report: Report) -> tuple[dict[str, Version], set[str]]:
    """Pinned versions, and the names the lock says came straight from requirements.txt."""
    versions: dict[str, Version] = {}
    direct: set[str] = set()
    current: str | None = None
    hashed: dict[str, bool] = {}
    for raw in path.read_text().splitlines():
        match = LOCK_ENTRY.match(raw)
        if match:
            current = canonicalize_name(match.group(1))
            versions[current] = Version(match.group(2))
            hashed[current] = "--hash=" in raw
        elif current and "--hash=" in raw:
            hashed[current] = True
        elif current and re.search(r"#\s*(via\s+)?-r requirements\.txt", raw):
            direct.add(current)
    for name, ok in sorted(hashed.items()):
        if not ok:
            report.add(f"{path.name}: {name} has no --hash (regenerate with --generate-hashes)")
    return versions, direct


def check_pins(
    pins: list[Pin], groups: dict[str, dict[str, Requirement]], report: Report, source: str
) -> dict[str, Pin]:
    """Each pin is exact, declared, and inside the declared range; every name is pinned once."""
    declared = {name: req for group in groups.values() for name, req in group.items()}
    by_name: dict[str, Pin] = {}
    for pin in pins:
        req, name = pin.requirement, pin.name
        if name in by_name:
            report.add(f"{source}: {req.name} is pinned twice for Python 3.11")
        by_name[name] = pin
        spec = list(req.specifier)
        if len(spec) != 1 or spec[0].operator != "==" or "*" in spec[0].version:
            report.add(f"{source}: {req.name} is not pinned with == ({req.specifier or 'any'})")
            continue
        want = declared.get(name)
        if want is None:
            report.add(f"{source}: {req.name} is not declared in pyproject.toml")
            continue
        version = Version(spec[0].version)
        if version not in want.specifier:
            report.add(
                f"{source}: {req.name}=={version} is outside pyproject's range {want.specifier}"
            )
        if set(req.extras) != set(want.extras):
            report.add(f"{source}: {req.name} extras {sorted(req.extras)} != pyproject's")
    return by_name


def check_sections(
    by_name: dict[str, Pin], groups: dict[str, dict[str, Requirement]], report: Report
) -> None:
    """Runtime lines (above "# Tooling") = core + app + airflow; tooling lines = dev."""
    runtime = {n for g in RUNTIME_GROUPS for n in groups.get(g, {})}
    for group, reqs in groups.items():
        for name, req in reqs.items():
            if name not in by_name:
                report.add(f"requirements.txt: {req.name} ({group}) is declared but not pinned")
                continue
            want = "runtime" if name in runtime else "tooling"
            if by_name[name].section != want:
                where = "above" if want == "runtime" else "below"
                report.add(
                    f"requirements.txt: {req.name} ({group}) belongs {where} {TOOLING_HEADER!r}"
                )


def check_lock(
    by_name: dict[str, Pin], versions: dict[str, Version], direct: set[str], report: Report
) -> None:
    for name, pin in sorted(by_name.items()):
        version = Version(next(iter(pin.requirement.specifier)).version)
        locked = versions.get(name)
        if locked is None:
            report.add(f"requirements.lock: {pin.requirement.name} is missing (re-lock)")
        elif locked != version:
            report.add(
                f"requirements.lock: {pin.requirement.name}=={locked} but requirements.txt "
                f"pins {version} (re-lock)"
            )
    for name in sorted(direct - set(by_name)):
        report.add(f"requirements.lock: {name} came from requirements.txt, which no longer has it")


def check_app(
    root: Path, full: dict[str, Pin], groups: dict[str, dict[str, Requirement]], report: Report
) -> dict[str, Pin]:
    """The app image installs exactly the core and app names, at the same pins."""
    path = root / "requirements-app.txt"
    if not path.exists():
        return {}
    pins = {pin.name: pin for pin in read_pins(path, report)}
    want = {n for g in APP_GROUPS for n in groups.get(g, {})}
    for name in sorted(want - set(pins)):
        report.add(f"requirements-app.txt: {name} (core/app) is missing")
    for name in sorted(set(pins) - want):
        report.add(f"requirements-app.txt: {name} is not a core or app dependency")
    for name, pin in sorted(pins.items()):
        if name in full and str(pin.requirement) != str(full[name].requirement):
            report.add(
                f"requirements-app.txt: {pin.requirement} differs from requirements.txt's "
                f"{full[name].requirement}"
            )
    return pins


def imported_names(root: Path) -> dict[str, str]:
    """Top-level names the code imports (absolute imports only) -> the first file that does."""
    seen: dict[str, str] = {}
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    seen.setdefault(name.split(".")[0], path.relative_to(root).as_posix())
    return seen


def local_names(root: Path) -> set[str]:
    """The repository's own packages and modules (a script may import its siblings)."""
    names = set(SCANNED)
    for folder in SCANNED:
        names.update(p.stem for p in (root / folder).rglob("*.py"))
    return names


@cache
def installed() -> Mapping[str, list[str]]:
    """Top-level package -> the installed distributions that ship it (read once)."""
    return packages_distributions()


def check_imports(
    root: Path,
    groups: dict[str, dict[str, Requirement]],
    report: Report,
    distributions: Callable[[], Mapping[str, list[str]]] = installed,
) -> None:
    """Every third-party import is provided by a declared distribution (the one that ships
    that package, not one that merely depends on it: fastapi comes with gradio, but the
    code that imports fastapi declares it)."""
    declared = {name for group in groups.values() for name in group}
    local = local_names(root) | set(sys.stdlib_module_names) | {"__future__"}
    providers = distributions()
    for name, where in sorted(imported_names(root).items()):
        if name in local:
            continue
        dists = {canonicalize_name(d) for d in providers.get(name, [])}
        if not dists:
            report.add(f"{where} imports {name}, which no installed distribution provides")
        elif not dists & declared:
            report.add(
                f"{where} imports {name} ({', '.join(sorted(dists))}), not declared in "
                "pyproject.toml"
            )


def check_app_lock(
    root: Path, app_pins: dict[str, Pin], full: dict[str, Version], report: Report
) -> None:
    """The app image's lock: the same version as the full lock for every package."""
    path = root / "requirements-app.lock"
    if not path.exists():
        return
    versions, _ = read_lock(path, report)
    for name, version in sorted(versions.items()):
        if name in full and full[name] != version:
            report.add(
                f"requirements-app.lock: {name}=={version} but requirements.lock has {full[name]}"
            )
        elif name not in full:
            report.add(f"requirements-app.lock: {name} is not in requirements.lock")
    for name, pin in sorted(app_pins.items()):
        if name not in versions:
            report.add(f"requirements-app.lock: {pin.requirement.name} is missing (re-lock)")


def check(root: Path) -> Report:
    report = Report()
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    groups = declared_groups(pyproject, report)
    pins = read_pins(root / "requirements.txt", report)
    by_name = check_pins(pins, groups, report, "requirements.txt")
    check_sections(by_name, groups, report)
    versions, direct = read_lock(root / "requirements.lock", report)
    check_lock(by_name, versions, direct, report)
    app_pins = check_app(root, by_name, groups, report)
    check_app_lock(root, app_pins, versions, report)
    check_imports(root, groups, report)
    report.declared = sum(len(g) for g in groups.values())
    report.pinned, report.locked = len(by_name), len(versions)
    return report


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1]
    report = check(root)
    for problem in report.problems:
        print(f"check_deps: {problem}", file=sys.stderr)
    if report.problems:
        print(f"check_deps: {len(report.problems)} problem(s)", file=sys.stderr)
        return 1
    print(
        f"check_deps: OK: {report.declared} declared, {report.pinned} pinned, "
        f"{report.locked} locked with hashes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
