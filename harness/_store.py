"""The run store: a run directory that survives crashes and can be resumed.

Layout of a run directory::

    plan.json          the frozen plan plus package versions (written once)
    store.sqlite       each episode's row and its decision rows (one compressed columnar segment,
                       harness._segments), one transaction per episode
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

from harness import _segments as segments
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




def _as_list(values: Any, n: int) -> list[Any]:
    if values is None:
        return [None] * n
    values = segments.column_values(values, n)
    return values.tolist() if hasattr(values, "tolist") else values


def _series(name: str, values: Any, n: int, dtype):
    """One decoded column of an episode as a polars Series of the export's dtype."""
    import polars as pl

    if values is None or (isinstance(values, tuple) and values[0] == "const"):
        value = None if values is None else values[1]
        return pl.Series(name, [value], dtype=dtype, strict=False).new_from_index(0, n) if n else pl.Series(name, [], dtype)
    return pl.Series(name, values, dtype=dtype, strict=False)


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
        # check_same_thread=False: the Parquet export reads the segments from polars' source thread
        # while this one waits on it (never two threads at once)
        self._db = sqlite3.connect(self.directory / DB_FILE, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable against process crashes
        # one row per episode holding its decision rows as one compressed columnar segment
        # (harness._segments): a single insert per episode keeps the store off the hot path, and
        # per-episode values, constants and repeated messages are stored once (about 6-45 bytes
        # per baseline decision instead of ~390). Runs written before segments keep their JSON
        # blocks in `decision_blocks`, which stay readable (and are read alongside).
        self._db.execute("CREATE TABLE IF NOT EXISTS decision_segments (agent TEXT, task_id TEXT, rollout INTEGER, "
                         "n INTEGER, data BLOB, PRIMARY KEY (agent, task_id, rollout))")
        self._legacy_blocks = bool(self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'decision_blocks'").fetchone())
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
        one segment of named columns (harness._segments), so a run keeps reading when a column is added later.
        """
        rows = DecisionRows.of(decisions)
        block = rows.segment() if rows.n else None  # encoded where the episode ran, for other executors
        db = self._db
        db.execute("BEGIN")
        try:
            if block is not None:
                db.execute("INSERT OR REPLACE INTO decision_segments VALUES (?, ?, ?, ?, ?)",
                           (*episode.key, rows.n, block))
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
    def _segment_rows(self, where: str = "", parameters: tuple = ()) -> Iterator[tuple[int, Any, Any]]:
        """(n, segment, legacy JSON block) of each episode's decisions, sorted by agent, task, rollout."""
        query = f"SELECT agent, task_id, rollout, n, data, NULL FROM decision_segments {where}"
        if self._legacy_blocks:
            query += f" UNION ALL SELECT agent, task_id, rollout, n, NULL, columns FROM decision_blocks {where}"
            parameters = parameters * 2
        for _, _, _, n, data, block in self._db.execute(query + " ORDER BY 1, 2, 3", parameters):
            yield n, data, block

    @staticmethod
    def _decoded(data: bytes | None, block: bytes | None) -> dict[str, Any]:
        if data is not None:
            return segments.decode(data)[1]
        columns = orjson.loads(block)
        if isinstance(columns, list):  # a run written before blocks named their columns
            columns = dict(zip(_UNNAMED_BLOCK_COLUMNS, columns))
        return columns

    def iter_segments(self, where: str = "", parameters: tuple = ()) -> Iterator[tuple[int, dict[str, Any]]]:
        """(n, name -> values) per episode (see harness._segments.decode; a missing name: all null)."""
        for n, data, block in self._segment_rows(where, parameters):
            yield n, self._decoded(data, block)

    def iter_decision_blocks(self) -> Iterator[list[list[Any]]]:
        """Each episode's decision columns (DECISION_COLUMNS order, as lists), sorted by agent, task, rollout."""
        for n, columns in self.iter_segments():
            yield [_as_list(columns.get(name), n) for name in DECISION_NAMES]

    def iter_decisions(self) -> Iterator[DecisionRecord]:
        """Every decision as a record, sorted by agent, task, rollout, t."""
        for columns in self.iter_decision_blocks():
            for values in zip(*columns):
                yield DecisionRecord(*values)

    def episode_messages(self, agent: str, task_id: str, rollout: int) -> list[list[dict] | None]:
        """The exact messages each decision of one episode sent (None where a decision sent none),
        rebuilt from the stored message pool and deltas."""
        for n, columns in self.iter_segments("WHERE agent = ? AND task_id = ? AND rollout = ?",
                                             (agent, task_id, rollout)):
            return [None if text is None else orjson.loads(text) for text in _as_list(columns.get("messages"), n)]
        raise RunStoreError(f"{self.directory}: no decisions stored for {agent} {task_id} #{rollout}")

    # --- export -------------------------------------------------------------------------
    def decision_batches(self, batch_rows: int = 200_000):
        """The decisions as polars DataFrames of about `batch_rows` rows (whole episodes, sorted by
        agent, task_id, rollout, t): what the export streams, one Parquet row group each."""
        import polars as pl

        schema = {name: getattr(pl, dtype) for name, _, dtype in DECISION_COLUMNS}
        parts: list[pl.DataFrame] = []
        rows = 0
        for n, columns in self.iter_segments():
            parts.append(pl.DataFrame([_series(name, columns.get(name), n, dtype) for name, dtype in schema.items()]))
            rows += n
            if rows >= batch_rows:
                yield pl.concat(parts, rechunk=True)
                parts, rows = [], 0
        if parts or rows == 0:
            yield pl.concat(parts, rechunk=True) if parts else pl.DataFrame(schema=schema)

    def export(self, batch_rows: int = 200_000) -> tuple[Path, Path]:
        """Write decisions.parquet and episodes.parquet (sorted, so identical runs give identical files).

        The decisions stream through in batches of whole episodes (one row group each), so the
        export's memory does not grow with the run."""
        import polars as pl
        from polars.io.plugins import register_io_source

        schema = pl.Schema({name: getattr(pl, dtype) for name, _, dtype in DECISION_COLUMNS})

        def source(with_columns, predicate, n_rows, batch_size):
            for batch in self.decision_batches(batch_rows):
                yield batch if with_columns is None else batch.select(with_columns)

        decisions = register_io_source(source, schema=schema)
        rows = self._db.execute(f"SELECT {', '.join(EPISODE_NAMES)} FROM episodes ORDER BY agent, task_id, rollout").fetchall()
        episodes = pl.DataFrame({name: list(values) for (name, _, _), values
                                 in zip(EPISODE_COLUMNS, zip(*rows) if rows else [[] for _ in EPISODE_COLUMNS])},
                                schema={name: getattr(pl, dtype) for name, _, dtype in EPISODE_COLUMNS})
        paths = [
            atomic_write(self.directory / "decisions.parquet",
                         lambda tmp: decisions.sink_parquet(tmp, row_group_size=batch_rows, **PARQUET_OPTIONS)),
            atomic_write(self.directory / "episodes.parquet",
                         lambda tmp: episodes.write_parquet(tmp, **PARQUET_OPTIONS)),
        ]
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
