"""Files written whole or not at all: a crash never leaves half a plan, report or checkpoint record."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

PLAN_FILE = "plan.json"


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` on a sibling temporary path, then rename it over `path` (atomic on POSIX)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: str | Path, data: Any, **dumps: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, **dumps))


def read_frozen_plan(directory: str | Path) -> dict[str, Any]:
    """The whole plan.json of a run directory: {"plan": ..., "versions": ...}.

    Raises FileNotFoundError when there is none and ValueError when it is not JSON; callers
    that need one message use `RunStore.read_plan` (a RunStoreError naming the directory).
    """
    frozen = json.loads((Path(directory) / PLAN_FILE).read_text())
    if not isinstance(frozen, dict) or not isinstance(frozen.get("plan"), dict):
        raise ValueError(f"{Path(directory) / PLAN_FILE}: no 'plan' object")
    return frozen


def read_plan(directory: str | Path) -> dict[str, Any]:
    """The plan a run directory was made from, as the mapping `Plan.from_dict` reads."""
    return read_frozen_plan(directory)["plan"]
