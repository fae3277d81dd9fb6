"""The run store: a run directory that survives crashes and can be resumed.

Layout of a run directory::

    plan.json          the frozen plan plus package versions (written once)
    store.sqlite       each episode's row and its decision rows (one columnar block), one transaction per episode
    decisions.parquet  exports for polars, refreshed by `export()` (and by `load_run`)
    episodes.parquet

Each finished episode is committed with all its decision rows in one SQLite transaction
(WAL journal), so a `kill -9` at any moment loses at most the episodes in flight and never
leaves half an episode behind. Episodes are keyed by (agent, task_id, rollout): a resumed
run skips finished keys and replaces failed ones, so there are never duplicate rows.
"""

from __future__ import annotations

import functools
import json
import platform
import sqlite3
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from harness._files import PLAN_FILE, atomic_write, atomic_write_json, read_plan
from harness._records import (
    DECISION_COLUMNS,
    DECISION_NAMES,
    EPISODE_COLUMNS,
    EPISODE_NAMES,
    DecisionRecord,
    DecisionRows,
    EpisodeRecord,
    episode_values,
)
from scenarios import UsageError

DB_FILE = "store.sqlite"
EXPORT_MARKER = "export.json"
# the exports are a read cache of store.sqlite: lz4 decodes several times faster than zstd
PARQUET_OPTIONS = {"compression": "lz4"}

# the columns derive from the typed records (harness._records), defined once
FINISHED, FAILED = "finished", "failed"


# the column order of the unnamed blocks of early runs (before `answer` existed)
_UNNAMED_BLOCK_COLUMNS = tuple(name for name in DECISION_NAMES if name != "answer")


class RunStoreError(UsageError):
    """A run directory that cannot be used as asked (missing, or a different plan)."""


@functools.cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    # looked up once per process: each metadata lookup scans sys.path, about 2 ms apiece, which a
    # short run would otherwise pay on every call (the installed packages do not change under it)
    versions = {"python": platform.python_version()}
    for name in ("regret-harness", "numpy", "polars", "litellm", "torch", "transformers", "peft", "trl"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return tuple(versions.items())


def package_versions() -> dict[str, str]:
    return dict(_installed_versions())


class RunStore:
    """Append-only, crash-safe store of one run's decisions and episodes."""

    def __init__(self, directory: str | Path, create: bool = True) -> None:
        self.directory = Path(directory)
        if not create and not (self.directory / DB_FILE).exists():
            raise RunStoreError(f"{self.directory} is not a run directory (no {DB_FILE})")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.directory / DB_FILE, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable against process crashes
        # one row per episode holding its decision rows column by column (JSON): a single
        # insert per episode instead of one per decision keeps the store off the hot path
        self._db.execute("CREATE TABLE IF NOT EXISTS decision_blocks (agent TEXT, task_id TEXT, rollout INTEGER, "
                         "n INTEGER, columns BLOB, PRIMARY KEY (agent, task_id, rollout))")
        columns = ", ".join(f"{name} {sql}" for name, sql, _ in EPISODE_COLUMNS)
        self._db.execute(f"CREATE TABLE IF NOT EXISTS episodes ({columns}, PRIMARY KEY (agent, task_id, rollout))")
        present = {row[1] for row in self._db.execute("PRAGMA table_info(episodes)")}
        for name, sql, _ in EPISODE_COLUMNS:  # a run made before a column was added: add it, empty
            if name not in present:
                self._db.execute(f"ALTER TABLE episodes ADD COLUMN {name} {sql}")
        # a commit counter tells whether the Parquet exports are stale
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)")
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('commits', 0)")
        # the spend ledger: every committed attempt's cost, also of failed attempts a resume replaced
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('spent', (SELECT coalesce(sum(cost), 0) FROM episodes))")
        names = ", ".join(EPISODE_NAMES)
        self._insert_episode = f"INSERT OR REPLACE INTO episodes ({names}) VALUES ({', '.join('?' * len(EPISODE_NAMES))})"

    # --- plan ---------------------------------------------------------------------------
    @property
    def plan_path(self) -> Path:
        return self.directory / PLAN_FILE

    def write_plan(self, plan: dict[str, Any]) -> None:
        atomic_write_json(self.plan_path, {"plan": plan, "versions": package_versions()}, indent=2, sort_keys=True)

    def read_plan(self) -> dict[str, Any]:
        try:
            return read_plan(self.directory)
        except FileNotFoundError:
            raise RunStoreError(f"{self.directory} is not a run directory (no {PLAN_FILE})") from None
        except ValueError as exc:
            raise RunStoreError(f"{self.plan_path}: not a readable plan ({exc})") from None

    # --- episodes -----------------------------------------------------------------------
    def finished_keys(self) -> set[tuple[str, str, int]]:
        rows = self._db.execute("SELECT agent, task_id, rollout FROM episodes WHERE status = ?", (FINISHED,))
        return {tuple(r) for r in rows}

    def commit_episode(self, episode: EpisodeRecord, decisions: Iterable[DecisionRecord]) -> None:
        """Write one episode and its decisions atomically, replacing any earlier failed attempt.

        Failed attempts are stored without decision rows, and finished episodes are never run
        again, so a key's decision rows are written exactly once. The decisions are stored as
        one block of named columns, so a run keeps reading when a column is added later.
        """
        rows = DecisionRows.of(decisions).rows
        block = orjson.dumps(dict(zip(DECISION_NAMES, map(list, zip(*rows))))) if rows else None
        db = self._db
        db.execute("BEGIN")
        try:
            if block is not None:
                db.execute("INSERT OR REPLACE INTO decision_blocks VALUES (?, ?, ?, ?, ?)",
                           (*episode.key, len(rows), block))
            db.execute(self._insert_episode, episode_values(episode))
            db.execute("UPDATE meta SET value = value + 1 WHERE key = 'commits'")
            db.execute("UPDATE meta SET value = value + ? WHERE key = 'spent'", (float(episode.cost or 0.0),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def commits(self) -> int:
        return int(self._db.execute("SELECT value FROM meta WHERE key = 'commits'").fetchone()[0])

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, count(*) FROM episodes GROUP BY status").fetchall()
        return dict(rows)

    def total_cost(self) -> float:
        """The cost of the episodes now in the store (a replaced failed attempt no longer counts)."""
        return float(self._db.execute("SELECT coalesce(sum(cost), 0) FROM episodes").fetchone()[0])

    def total_spent(self) -> float:
        """Everything this run directory has spent: every committed attempt, replaced ones included."""
        return float(self._db.execute("SELECT value FROM meta WHERE key = 'spent'").fetchone()[0])

    # --- reading ------------------------------------------------------------------------
    def iter_decision_blocks(self) -> Iterator[list[list[Any]]]:
        """Each episode's decision columns (DECISION_COLUMNS order), sorted by agent, task, rollout."""
        cursor = self._db.execute("SELECT n, columns FROM decision_blocks ORDER BY agent, task_id, rollout")
        for n, block in cursor:
            columns = orjson.loads(block)
            if isinstance(columns, list):  # a run written before blocks named their columns
                columns = dict(zip(_UNNAMED_BLOCK_COLUMNS, columns))
            yield [columns.get(name) or [None] * n for name in DECISION_NAMES]

    def iter_decisions(self) -> Iterator[DecisionRecord]:
        """Every decision as a record, sorted by agent, task, rollout, t."""
        for columns in self.iter_decision_blocks():
            for values in zip(*columns):
                yield DecisionRecord(*values)

    # --- export -------------------------------------------------------------------------
    def export(self, batch_rows: int = 200_000) -> tuple[Path, Path]:
        """Write decisions.parquet and episodes.parquet (sorted, so identical runs give identical files)."""
        import polars as pl

        def frame_of(columns: list[list[Any]], spec) -> pl.DataFrame:
            return pl.DataFrame({name: values for (name, _, _), values in zip(spec, columns)},
                                schema={name: getattr(pl, dtype) for name, _, dtype in spec})

        frames: list[pl.DataFrame] = []
        pending: list[list[Any]] = [[] for _ in DECISION_COLUMNS]
        for block in self.iter_decision_blocks():
            for values, column in zip(pending, block):
                values.extend(column)
            if len(pending[0]) >= batch_rows:
                frames.append(frame_of(pending, DECISION_COLUMNS))
                pending = [[] for _ in DECISION_COLUMNS]
        frames.append(frame_of(pending, DECISION_COLUMNS))
        decisions = pl.concat(frames)
        rows = self._db.execute(f"SELECT {', '.join(EPISODE_NAMES)} FROM episodes ORDER BY agent, task_id, rollout").fetchall()
        episodes = frame_of([list(c) for c in zip(*rows)] if rows else [[] for _ in EPISODE_COLUMNS], EPISODE_COLUMNS)
        paths = []
        for name, frame in (("decisions", decisions), ("episodes", episodes)):
            paths.append(atomic_write(self.directory / f"{name}.parquet",
                                      lambda tmp, frame=frame: frame.write_parquet(tmp, **PARQUET_OPTIONS)))
        atomic_write_json(self.directory / EXPORT_MARKER, {"commits": self.commits()})
        return paths[0], paths[1]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_run(directory: str | Path, refresh: bool = True):
    """Return (decisions, episodes) of a run directory as polars LazyFrames.

    The Parquet exports are refreshed first when the store has commits they lack. A `run`
    column (the directory's name) is added so several runs can be concatenated.
    """
    import polars as pl

    directory = Path(directory)
    with RunStore(directory, create=False) as store:
        if refresh:
            try:
                exported = json.loads((directory / EXPORT_MARKER).read_text())["commits"]
            except (FileNotFoundError, ValueError, KeyError):
                exported = -1
            if exported != store.commits():
                store.export()
    run = pl.lit(directory.name).alias("run")
    return (
        pl.scan_parquet(directory / "decisions.parquet").with_columns(run),
        pl.scan_parquet(directory / "episodes.parquet").with_columns(run),
    )
