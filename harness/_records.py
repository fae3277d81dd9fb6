"""The typed rows of a run: one decision, one episode. The store's columns derive from them.

Each field carries its SQL and polars types in its metadata (`column(...)`), so the schema is
written once: `DECISION_COLUMNS`/`EPISODE_COLUMNS` (name, SQL type, polars dtype name) and
the Parquet exports follow the field order. Code reads rows by name (`record.final_regret`,
`frame["parse_status"]`), never by position.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, overload

from harness._segments import decode as decode_segment
from harness._segments import encode as encode_segment

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
DECISION_TYPES = {name: sql for name, sql, _ in DECISION_COLUMNS}
EPISODE_NAMES = tuple(name for name, _, _ in EPISODE_COLUMNS)
# a record's values in column order (for SQLite and the columnar blocks); attrgetter is C-fast
decision_values = attrgetter(*DECISION_NAMES)
episode_values = attrgetter(*EPISODE_NAMES)


# the fields that are the same for every decision of one episode: held once by DecisionRows
EPISODE_FIELDS = ("agent", "scenario_id", "task_id", "family", "instance_seed", "rollout")
# the fields each decision has its own value of, in DECISION_NAMES order
ROUND_FIELDS = tuple(name for name in DECISION_NAMES if name not in EPISODE_FIELDS)


class DecisionRows(Sequence[DecisionRecord]):
    """One episode's decisions: a sequence of DecisionRecord, held as columns of plain values.

    Why not records: a tuple of plain values (str, int, float, None) is one small object that the
    garbage collector stops tracking at its first pass, where a record object stays tracked, is
    promoted while its episode runs and soon triggers full collections of the whole heap (measured
    on benchmarks/bench_runner.py: a 50 ms full pass per 20,000 decisions and 3x the young ones,
    up to 40% of the harness's cost per decision). Why columns: the store writes columns, and the
    episode's own fields (`EPISODE_FIELDS`) are then held once, never copied per decision. The
    runner collects one tuple of `ROUND_FIELDS` per decision and transposes them once
    (`for_episode`). Records are built on access.

    Between processes (the process and Ray executors) the decisions travel as the store's
    compressed segment (harness._segments), encoded where the episode ran: a few bytes per
    decision to pickle, and the driver commits the segment as it came, without re-encoding
    (`segment()`). Read back, the values are the ones the store would return (a NaN reads as null).
    """

    __slots__ = ("n", "_constants", "_columns", "_segment")

    def __init__(self, columns: Mapping[str, Sequence[Any]] | None = None, n: int = 0,
                 constants: Mapping[str, Any] | None = None) -> None:
        """`columns` (name -> n values) and `constants` (name -> the value of all n decisions) hold
        every name of DECISION_NAMES between them."""
        self.n = n
        self._constants: dict[str, Any] = dict(constants or {})
        self._columns: dict[str, Sequence[Any]] = dict(columns or {})
        self._segment: bytes | None = None
        if n and set(self._columns) | set(self._constants) != set(DECISION_NAMES):
            missing = set(DECISION_NAMES) - set(self._columns) - set(self._constants)
            raise ValueError(f"DecisionRows: no values for {sorted(missing)}")

    @classmethod
    def from_segment(cls, segment: bytes, n: int) -> DecisionRows:
        """Decisions received as a segment: decoded only when read, committed as they are."""
        rows = cls()
        rows.n, rows._segment = n, segment
        rows._columns = rows._constants = None  # type: ignore[assignment]
        return rows

    def _decode(self) -> None:
        _, decoded = decode_segment(self._segment)
        columns, constants = {}, {}
        for name in DECISION_NAMES:
            values = decoded.get(name, ("const", None))
            if isinstance(values, tuple) and len(values) == 2 and values[0] == "const":
                constants[name] = values[1]
            else:
                columns[name] = values.tolist() if hasattr(values, "tolist") else values
        self._columns, self._constants = columns, constants

    @property
    def columns(self) -> dict[str, Sequence[Any]]:
        """name -> the n values of each name not in `constants`."""
        if self._columns is None:
            self._decode()
        return self._columns

    @property
    def constants(self) -> dict[str, Any]:
        """name -> the one value all n decisions share (the episode's own fields, at least)."""
        if self._constants is None:
            self._decode()
        return self._constants

    def segment(self) -> bytes:
        """The decisions as the store's compressed segment (the one received, if they came as one)."""
        if self._segment is None:
            return encode_segment(self._columns, DECISION_TYPES, self._constants, self.n)
        return self._segment

    def __reduce__(self):
        if not self.n:
            return (DecisionRows, ())
        return (DecisionRows.from_segment, (self.segment(), self.n))

    @classmethod
    def for_episode(cls, episode_values: Sequence[Any], rounds: list[tuple]) -> DecisionRows:
        """The decisions of one episode: its EPISODE_FIELDS values and one ROUND_FIELDS tuple per decision."""
        n = len(rounds)
        if not n:
            return cls()
        return cls(dict(zip(ROUND_FIELDS, zip(*rounds))), n, dict(zip(EPISODE_FIELDS, episode_values)))

    @classmethod
    def of(cls, records: Iterable[DecisionRecord]) -> DecisionRows:
        if isinstance(records, DecisionRows):
            return records
        rows = [decision_values(r) for r in records]
        return cls(dict(zip(DECISION_NAMES, zip(*rows))), len(rows)) if rows else cls()

    def __len__(self) -> int:
        return self.n

    def _full(self, name: str) -> Sequence[Any]:
        if not self.n:
            return ()
        values = self.columns.get(name)
        return (self.constants[name],) * self.n if values is None else values

    def value_rows(self) -> Iterator[tuple]:
        """Each decision's values in DECISION_NAMES order."""
        return zip(*(self._full(name) for name in DECISION_NAMES)) if self.n else iter(())

    @overload
    def __getitem__(self, index: int) -> DecisionRecord: ...

    @overload
    def __getitem__(self, index: slice) -> DecisionRows: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            n = len(range(self.n)[index])
            return DecisionRows({name: tuple(values[index]) for name, values in self.columns.items()}, n,
                                self.constants) if n else DecisionRows()
        if not -self.n <= index < self.n:
            raise IndexError("decision index out of range")
        return DecisionRecord(*(self.constants[name] if name in self.constants else self.columns[name][index]
                                for name in DECISION_NAMES))

    def __iter__(self) -> Iterator[DecisionRecord]:
        for values in self.value_rows():
            yield DecisionRecord(*values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DecisionRows):
            return self.n == other.n and all(tuple(self._full(name)) == tuple(other._full(name))
                                             for name in DECISION_NAMES)
        return NotImplemented

    def column(self, name: str) -> list[Any]:
        return list(self._full(name))

    def total(self, name: str) -> Any:
        return sum(self._full(name))
