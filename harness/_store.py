"""The run store: a run directory that survives crashes and can be resumed.

Layout of a run directory::

    plan.json          the frozen plan plus package versions (written once)
    store.sqlite       one row per decision and one per episode, one transaction per episode
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
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

PLAN_FILE = "plan.json"
DB_FILE = "store.sqlite"
EXPORT_MARKER = "export.json"

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
        columns = ", ".join(f"{name} {sql}" for name, sql, _ in DECISION_COLUMNS)
        self._db.execute(f"CREATE TABLE IF NOT EXISTS decisions ({columns})")
        columns = ", ".join(f"{name} {sql}" for name, sql, _ in EPISODE_COLUMNS)
        self._db.execute(f"CREATE TABLE IF NOT EXISTS episodes ({columns}, PRIMARY KEY (agent, task_id, rollout))")
        # a commit counter tells whether the Parquet exports are stale
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)")
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('commits', 0)")
        self._insert_decision = f"INSERT INTO decisions VALUES ({', '.join('?' * len(DECISION_COLUMNS))})"
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
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany(self._insert_decision, decision_rows)
            db.execute(self._insert_episode, episode_row)
            db.execute("UPDATE meta SET value = value + 1 WHERE key = 'commits'")
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
        return float(self._db.execute("SELECT coalesce(sum(cost), 0) FROM episodes").fetchone()[0])

    # --- export -------------------------------------------------------------------------
    def export(self) -> tuple[Path, Path]:
        """Write decisions.parquet and episodes.parquet (sorted, so identical runs give identical files)."""
        import polars as pl

        paths = []
        for table, columns, order in (
            ("decisions", DECISION_COLUMNS, "agent, task_id, rollout, t"),
            ("episodes", EPISODE_COLUMNS, "agent, task_id, rollout"),
        ):
            schema = {name: getattr(pl, dtype) for name, _, dtype in columns}
            cursor = self._db.execute(f"SELECT * FROM {table} ORDER BY {order}")
            frames = []
            while batch := cursor.fetchmany(200_000):
                frames.append(pl.DataFrame(batch, schema=schema, orient="row"))
            frame = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
            path = self.directory / f"{table}.parquet"
            tmp = path.with_suffix(".tmp")
            frame.write_parquet(tmp)
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
