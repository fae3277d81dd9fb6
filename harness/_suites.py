"""Suites shipped with the package (`harness/suites/*.toml`)."""

from __future__ import annotations

from pathlib import Path

from harness._plan import Plan, PlanError, load_suite

SUITES_DIR = Path(__file__).parent / "suites"


def builtin_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def load_builtin(name: str) -> Plan:
    path = SUITES_DIR / f"{name}.toml"
    if not path.exists():
        raise PlanError(f"unknown built-in suite {name!r} (built-in: {', '.join(builtin_suites())})")
    return load_suite(path)


def load_suite_or_builtin(name_or_path: str) -> Plan:
    """A path to a TOML file, or the name of a built-in suite such as 'core'."""
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        return load_suite(name_or_path)
    return load_builtin(name_or_path)
