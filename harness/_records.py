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
from operator import attrgetter
from typing import Any

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


class DecisionColumns(Sequence):
    """An episode's decision records held column by column (DECISION_NAMES order).

    What an episode's decisions travel as between processes (tuples of plain values pickle
    several times faster than records) and what the store encodes without rebuilding records;
    it still reads as a sequence of DecisionRecords."""

    __slots__ = ("columns",)

    def __init__(self, columns: tuple[tuple[Any, ...], ...]) -> None:
        self.columns = columns

    def __reduce__(self):
        return DecisionColumns, (self.columns,)

    @classmethod
    def of(cls, decisions: Iterable[DecisionRecord]) -> DecisionColumns:
        return decisions if isinstance(decisions, DecisionColumns) else cls(tuple(zip(*map(decision_values, decisions))))

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [DecisionRecord(*row) for row in zip(*(column[index] for column in self.columns))]
        return DecisionRecord(*(column[index] for column in self.columns))

    def __iter__(self) -> Iterator[DecisionRecord]:
        return (DecisionRecord(*row) for row in zip(*self.columns))


def decision_columns(decisions: Iterable[DecisionRecord]) -> tuple[tuple[Any, ...], ...]:
    """The decisions' values column by column (DECISION_NAMES order; empty for no decisions)."""
    return DecisionColumns.of(decisions).columns
