"""The typed rows of a run: one decision, one episode. The store's columns derive from them.

Each field carries its SQL and polars types in its metadata (`column(...)`), so the schema is
written once: `DECISION_COLUMNS`/`EPISODE_COLUMNS` (name, SQL type, polars dtype name) and
the Parquet exports follow the field order. Code reads rows by name (`record.final_regret`,
`frame["parse_status"]`), never by position.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, overload

_TYPES = {"TEXT": "String", "INTEGER": "Int64", "REAL": "Float64"}


def column(sql: str, help: str = "", default: Any = None) -> Any:
    """A record field stored as an SQL `sql` column (TEXT, INTEGER or REAL)."""
    return dataclasses.field(default=default, metadata={"sql": sql, "dtype": _TYPES[sql], "help": help})


@dataclass(slots=True)
class DecisionRecord:
    """One decision of one episode, with everything needed to recompute regret and audit it."""

    agent: str = column("TEXT", "the agent's name in the plan (its label)")
    scenario_id: str = column("TEXT")
    task_id: str = column("TEXT", "the scenario instance: scenario_id#instance_seed")
    family: str = column("TEXT")
    instance_seed: int = column("INTEGER")
    rollout: int = column("INTEGER")
    t: int = column("INTEGER", "0-based round")
    action: int | None = column("INTEGER", "the chosen option; null for a probability vector or an answer")
    policy: str | None = column("TEXT", "JSON list: the probability vector played, or null")
    answer: str | None = column("TEXT", "a free-form answer the scenario checks (number, string, path), or null")
    context: str | None = column("TEXT", "JSON list (contextual scenarios), or null")
    feedback: str | None = column("TEXT", "JSON of the step feedback beyond `reward` (e.g. experts' losses)")
    reward: float = column("REAL")
    regret: float = column("REAL", "instantaneous expected regret (increment of R_t)")
    cumulative_regret: float = column("REAL")
    optimal_action: int | None = column("INTEGER", "the best action this round; null where there is none")
    reasoning: str = column("TEXT", default="")
    raw_output: str = column("TEXT", default="")
    parse_status: str = column("TEXT", default="ok")
    prompt_tokens: int = column("INTEGER", default=0)
    completion_tokens: int = column("INTEGER", default=0)
    cost: float = column("REAL", default=0.0)
    latency_s: float = column("REAL", default=0.0)
    attempts: int = column("INTEGER", default=0)
    messages: str | None = column("TEXT", "JSON: the exact messages the model saw, or null")
    info: str | None = column("TEXT", "JSON: algorithm internals (e.g. UCB indices), or null")


@dataclass(slots=True)
class EpisodeRecord:
    """One episode: finished (with its totals) or failed (with its error)."""

    agent: str = column("TEXT")
    scenario_id: str = column("TEXT")
    task_id: str = column("TEXT")
    family: str = column("TEXT")
    kind: str | None = column("TEXT", "the scenario kind (bandit, contextual, experts, answer, ...)")
    framing: str | None = column("TEXT")
    instance_seed: int = column("INTEGER")
    rollout: int = column("INTEGER")
    env_seed: int = column("INTEGER")
    agent_seed: int = column("INTEGER")
    status: str = column("TEXT", '"finished" or "failed"')
    error: str | None = column("TEXT")
    horizon: int | None = column("INTEGER")
    n_actions: int | None = column("INTEGER")
    n_decisions: int = column("INTEGER", default=0)
    final_regret: float | None = column("REAL")
    total_reward: float | None = column("REAL")
    n_invalid: int = column("INTEGER", default=0)
    prompt_tokens: int = column("INTEGER", default=0)
    completion_tokens: int = column("INTEGER", default=0)
    cost: float = column("REAL", default=0.0)
    latency_s: float = column("REAL", default=0.0)
    attempts: int = column("INTEGER", default=0)
    scenario_summary: str | None = column("TEXT", "JSON of the instance's hidden facts")
    explainer: str | None = column("TEXT", "who explains the agent's decisions in datasets (agents.EXPLAINERS)")

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.agent, self.task_id, self.rollout)


def columns_of(record_type: type) -> tuple[tuple[str, str, str], ...]:
    """(name, SQL type, polars dtype name) of every field, in order."""
    return tuple((f.name, f.metadata["sql"], f.metadata["dtype"]) for f in dataclasses.fields(record_type))


DECISION_COLUMNS = columns_of(DecisionRecord)
EPISODE_COLUMNS = columns_of(EpisodeRecord)
DECISION_NAMES = tuple(name for name, _, _ in DECISION_COLUMNS)
EPISODE_NAMES = tuple(name for name, _, _ in EPISODE_COLUMNS)
# a record's values in column order (for SQLite and the columnar blocks); attrgetter is C-fast
decision_values = attrgetter(*DECISION_NAMES)
episode_values = attrgetter(*EPISODE_NAMES)


class DecisionRows(Sequence[DecisionRecord]):
    """One episode's decisions: a sequence of DecisionRecord, held as value tuples (DECISION_NAMES order).

    Why tuples: a tuple of plain values (str, int, float, None) is one small object that the
    garbage collector stops tracking at its first pass, where a record object stays tracked, is
    promoted while its episode runs and soon triggers full collections of the whole heap (measured
    on benchmarks/bench_runner.py: a 50 ms full pass per 20,000 decisions and 3x the young ones,
    up to 40% of the harness's cost per decision). Records are built on access.
    """

    __slots__ = ("rows",)

    def __init__(self, rows: Iterable[tuple] = ()) -> None:
        self.rows: list[tuple] = rows if isinstance(rows, list) else list(rows)

    @classmethod
    def of(cls, records: Iterable[DecisionRecord]) -> DecisionRows:
        return records if isinstance(records, DecisionRows) else cls([decision_values(r) for r in records])

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> DecisionRecord: ...

    @overload
    def __getitem__(self, index: slice) -> DecisionRows: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return DecisionRows(self.rows[index])
        return DecisionRecord(*self.rows[index])

    def __iter__(self) -> Iterator[DecisionRecord]:
        for values in self.rows:
            yield DecisionRecord(*values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DecisionRows):
            return self.rows == other.rows
        return NotImplemented

    def column(self, name: str) -> list[Any]:
        return list(map(itemgetter(DECISION_NAMES.index(name)), self.rows))

    def total(self, name: str) -> Any:
        return sum(map(itemgetter(DECISION_NAMES.index(name)), self.rows))
