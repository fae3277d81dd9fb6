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

import json
import platform
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

PLAN_FILE = "plan.json"
DB_FILE = "store.sqlite"
EXPORT_MARKER = "export.json"
# the exports are a read cache of store.sqlite: lz4 decodes several times faster than zstd
PARQUET_OPTIONS = {"compression": "lz4"}

# (name, SQL type, polars dtype name) of every decision column, in row order
DECISION_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("agent", "TEXT", "String"),
    ("scenario_id", "TEXT", "String"),
    ("task_id", "TEXT", "String"),
    ("family", "TEXT", "String"),
    ("instance_seed", "INTEGER", "Int64"),
    ("rollout", "INTEGER", "Int64"),
    ("t", "INTEGER", "Int64"),
    ("action", "INTEGER", "Int64"),  # null when the agent answered with a policy vector
    ("policy", "TEXT", "String"),  # JSON list, or null
    ("context", "TEXT", "String"),  # JSON list (contextual scenarios), or null
    ("feedback", "TEXT", "String"),  # JSON of the step feedback beyond `reward` (e.g. experts' losses)
    ("reward", "REAL", "Float64"),
    ("regret", "REAL", "Float64"),  # instantaneous expected regret (increment of R_t)
    ("cumulative_regret", "REAL", "Float64"),
    ("optimal_action", "INTEGER", "Int64"),
    ("reasoning", "TEXT", "String"),
    ("raw_output", "TEXT", "String"),
    ("parse_status", "TEXT", "String"),
    ("prompt_tokens", "INTEGER", "Int64"),
    ("completion_tokens", "INTEGER", "Int64"),
    ("cost", "REAL", "Float64"),
    ("latency_s", "REAL", "Float64"),
    ("attempts", "INTEGER", "Int64"),
    ("messages", "TEXT", "String"),  # JSON: the exact messages the model saw, or null
    ("info", "TEXT", "String"),  # JSON: algorithm internals (e.g. UCB indices), or null
)

EPISODE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("agent", "TEXT", "String"),
    ("scenario_id", "TEXT", "String"),
    ("task_id", "TEXT", "String"),
    ("family", "TEXT", "String"),
    ("kind", "TEXT", "String"),
    ("framing", "TEXT", "String"),
    ("instance_seed", "INTEGER", "Int64"),
    ("rollout", "INTEGER", "Int64"),
    ("env_seed", "INTEGER", "Int64"),
    ("agent_seed", "INTEGER", "Int64"),
    ("status", "TEXT", "String"),  # "finished" or "failed"
    ("error", "TEXT", "String"),
    ("horizon", "INTEGER", "Int64"),
    ("n_actions", "INTEGER", "Int64"),
    ("n_decisions", "INTEGER", "Int64"),
    ("final_regret", "REAL", "Float64"),
    ("total_reward", "REAL", "Float64"),
    ("n_invalid", "INTEGER", "Int64"),
    ("prompt_tokens", "INTEGER", "Int64"),
    ("completion_tokens", "INTEGER", "Int64"),
    ("cost", "REAL", "Float64"),
    ("latency_s", "REAL", "Float64"),
    ("attempts", "INTEGER", "Int64"),
    ("scenario_summary", "TEXT", "String"),  # JSON of the instance's hidden facts
)

DECISION_NAMES = tuple(c[0] for c in DECISION_COLUMNS)
EPISODE_NAMES = tuple(c[0] for c in EPISODE_COLUMNS)
FINISHED, FAILED = "finished", "failed"


class RunStoreError(ValueError):
    """A run directory that cannot be used as asked (missing, or a different plan)."""


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("regret-harness", "numpy", "polars", "litellm", "torch", "transformers", "peft", "trl"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


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
        # a commit counter tells whether the Parquet exports are stale
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)")
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('commits', 0)")
        # the spend ledger: every committed attempt's cost, also of failed attempts a resume replaced
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('spent', (SELECT coalesce(sum(cost), 0) FROM episodes))")
        self._insert_episode = f"INSERT OR REPLACE INTO episodes VALUES ({', '.join('?' * len(EPISODE_COLUMNS))})"

    # --- plan ---------------------------------------------------------------------------
    @property
    def plan_path(self) -> Path:
        return self.directory / PLAN_FILE

    def write_plan(self, plan: dict[str, Any]) -> None:
        frozen = {"plan": plan, "versions": package_versions()}
        tmp = self.plan_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(frozen, indent=2, sort_keys=True))
        tmp.replace(self.plan_path)

    def read_plan(self) -> dict[str, Any]:
        try:
            return json.loads(self.plan_path.read_text())["plan"]
        except FileNotFoundError:
            raise RunStoreError(f"{self.directory} is not a run directory (no {PLAN_FILE})") from None

    # --- episodes -----------------------------------------------------------------------
    def finished_keys(self) -> set[tuple[str, str, int]]:
        rows = self._db.execute("SELECT agent, task_id, rollout FROM episodes WHERE status = ?", (FINISHED,))
        return {tuple(r) for r in rows}

    def commit_episode(self, episode_row: Sequence[Any], decision_rows: Iterable[Sequence[Any]]) -> None:
        """Write one episode and its decisions atomically, replacing any earlier failed attempt.

        Failed attempts are stored without decision rows, and finished episodes are never run
        again, so a key's decision rows are written exactly once.
        """
        rows = list(decision_rows)
        for row in rows[:1]:
            if len(row) != len(DECISION_COLUMNS):
                raise ValueError(f"a decision row has {len(row)} values, expected {len(DECISION_COLUMNS)}")
        block = orjson.dumps(list(zip(*rows))) if rows else None
        db = self._db
        db.execute("BEGIN")
        try:
            if block is not None:
                key = (episode_row[0], episode_row[2], episode_row[7])  # agent, task_id, rollout
                db.execute("INSERT OR REPLACE INTO decision_blocks VALUES (?, ?, ?, ?, ?)", (*key, len(rows), block))
            db.execute(self._insert_episode, episode_row)
            db.execute("UPDATE meta SET value = value + 1 WHERE key = 'commits'")
            db.execute("UPDATE meta SET value = value + ? WHERE key = 'spent'", (float(episode_row[20] or 0.0),))
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
        cursor = self._db.execute("SELECT columns FROM decision_blocks ORDER BY agent, task_id, rollout")
        for (block,) in cursor:
            yield orjson.loads(block)

    def iter_decision_rows(self) -> Iterator[tuple[Any, ...]]:
        """Every decision row as a tuple in DECISION_COLUMNS order, sorted by agent, task, rollout, t."""
        for columns in self.iter_decision_blocks():
            yield from zip(*columns)

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
        rows = self._db.execute("SELECT * FROM episodes ORDER BY agent, task_id, rollout").fetchall()
        episodes = frame_of([list(c) for c in zip(*rows)] if rows else [[] for _ in EPISODE_COLUMNS], EPISODE_COLUMNS)
        paths = []
        for name, frame in (("decisions", decisions), ("episodes", episodes)):
            path = self.directory / f"{name}.parquet"
            tmp = path.with_suffix(".tmp")
            frame.write_parquet(tmp, **PARQUET_OPTIONS)
            tmp.replace(path)
            paths.append(path)
        (self.directory / EXPORT_MARKER).write_text(json.dumps({"commits": self.commits()}))
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
