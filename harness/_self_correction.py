"""The RISE self-correction metrics (Qu et al., arXiv 2407.18219) as pure functions.

An episode is a sequence of attempts at one problem; each attempt has a normalised answer
(None: nothing parseable) and whether it was correct. With T the number of turns (5 in the
paper):

- **m1@t1**: first-turn accuracy, per episode.
- **m5@t1**: majority vote over N = 5 *parallel* first-turn samples of a task: the first
  attempts of N independent episodes (rollouts) of the task. A task with R rollouts gives
  R // N disjoint votes (rollouts 0..N-1, N..2N-1, ...).
- **m1@t5**: majority vote over the T *sequential* answers of one episode played *without an
  oracle* (the retry prompt follows every answer, so no correctness leaks into the chat).
- **p1@t5**: whether any of the first T turns is correct: the oracle stops at the first
  correct answer. Up to that answer an oracle episode and a no-oracle episode with the same
  seeds see the same conversation (the retry prompt is the same text in both modes), so
  p1@t5 is computed from either kind of episode.
- **accuracy by turn**: the fraction of episodes correct at turn t (no-oracle episodes) and
  the fraction solved by turn t (any episode).

Majority vote: the most frequent non-empty answer wins; a tie goes to the tied answer that
appeared first (the earliest sample, the earliest turn); the vote is correct when the winning
answer is. Replies with no parseable answer do not vote; when none has an answer the vote is
wrong. Answers are compared after normalisation (`scenarios._answers`), so "1,000" and
"1000" are one answer.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scenarios.self_correction import ANSWER_KIND

METRICS = ("m1@t1", "m5@t1", "m1@t5", "p1@t5")


@dataclass(frozen=True)
class AnswerEpisode:
    """One self-correction episode: its task, rollout index and per-turn answers and correctness."""

    task_id: str
    rollout: int
    answers: tuple[str | None, ...]
    correct: tuple[bool, ...]
    oracle: bool = False  # played with an oracle (stops at the first correct answer)

    def __post_init__(self) -> None:
        if len(self.answers) != len(self.correct):
            raise ValueError(f"episode {self.task_id}#{self.rollout}: {len(self.answers)} answers but "
                             f"{len(self.correct)} correctness flags")
        if not self.answers:
            raise ValueError(f"episode {self.task_id}#{self.rollout} has no attempt")


def majority_vote(answers: Sequence[str | None], correct: Sequence[bool]) -> bool:
    """Whether the majority answer (ties: the earliest of the tied) is correct; see the module docstring."""
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return False
    top = max(votes.values())
    winner = next(a for a in answers if a is not None and votes[a] == top)
    return bool(correct[answers.index(winner)])


# --- per-unit values: (task_id, value) pairs, clustered by task --------------------------------
def first_turn_values(episodes: Iterable[AnswerEpisode]) -> list[tuple[str, float]]:
    """m1@t1 per episode."""
    return [(e.task_id, float(e.correct[0])) for e in episodes]


def parallel_majority_values(episodes: Iterable[AnswerEpisode], samples: int = 5) -> list[tuple[str, float]]:
    """m5@t1 per vote: the first attempts of `samples` rollouts of a task (disjoint groups by rollout)."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    by_task: dict[str, list[AnswerEpisode]] = {}
    for episode in episodes:
        by_task.setdefault(episode.task_id, []).append(episode)
    values = []
    for task_id, group in by_task.items():
        group.sort(key=lambda e: e.rollout)
        for start in range(0, len(group) - samples + 1, samples):
            chunk = group[start:start + samples]
            values.append((task_id, float(majority_vote([e.answers[0] for e in chunk], [e.correct[0] for e in chunk]))))
    return values


def sequential_majority_values(episodes: Iterable[AnswerEpisode], turns: int = 5) -> list[tuple[str, float]]:
    """m1@t5 per no-oracle episode that played at least `turns` turns (majority over its first `turns`)."""
    return [(e.task_id, float(majority_vote(e.answers[:turns], e.correct[:turns])))
            for e in episodes if not e.oracle and len(e.answers) >= turns]


def pass_values(episodes: Iterable[AnswerEpisode], turns: int = 5) -> list[tuple[str, float]]:
    """p1@t5 per episode: any of the first `turns` attempts correct."""
    return [(e.task_id, float(any(e.correct[:turns]))) for e in episodes]


def accuracy_by_turn(episodes: Sequence[AnswerEpisode], turns: int) -> list[dict[str, float]]:
    """Per turn t = 1..turns: accuracy at t over no-oracle episodes reaching t, and the share solved by t."""
    rows = []
    for t in range(1, turns + 1):
        at_t = [e.correct[t - 1] for e in episodes if not e.oracle and len(e.correct) >= t]
        solved = [any(e.correct[:t]) for e in episodes]
        rows.append({"turn": t, "accuracy": sum(at_t) / len(at_t) if at_t else math.nan,
                     "episodes": len(at_t), "solved": sum(solved) / len(solved) if solved else math.nan})
    return rows


def metric_values(episodes: Sequence[AnswerEpisode], turns: int = 5, samples: int = 5) -> dict[str, list[tuple[str, float]]]:
    """The four RISE metrics' per-unit values, keyed by metric name (see METRICS)."""
    return {"m1@t1": first_turn_values(episodes), "m5@t1": parallel_majority_values(episodes, samples),
            "m1@t5": sequential_majority_values(episodes, turns), "p1@t5": pass_values(episodes, turns)}


# --- from a run's tables ------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricEstimate:
    """One metric of one (agent, scenario): the mean with its task-clustered interval."""

    metric: str
    estimate: float
    ci_low: float
    ci_high: float
    n_tasks: int
    n_units: int  # episodes (m1@t1, m1@t5, p1@t5) or votes (m5@t1)
    method: str


def estimate(metric: str, values: Sequence[tuple[str, float]], level: float = 0.95) -> MetricEstimate:
    """Mean of per-unit values with an interval clustered by task (harness._stats.clustered_mean)."""
    from harness._stats import clustered_mean

    if not values:
        return MetricEstimate(metric, math.nan, math.nan, math.nan, 0, 0, "none")
    result = clustered_mean([v for _, v in values], [t for t, _ in values], level=level)
    return MetricEstimate(metric, result.estimate, result.ci_low, result.ci_high, result.n_tasks,
                          result.n_episodes, result.method)


def answer_episodes(decisions, episodes) -> dict[tuple[str, str], list[AnswerEpisode]]:
    """The finished episodes of answer scenarios, per (agent, scenario_id), from a run's tables.

    Each decision's feedback holds the scenario's verdict ({"reward", "answer", "correct"}); an
    answer scenario that reports no `correct` verdict is left out. The episode's scenario
    summary says whether it was played with an oracle.
    """
    import json

    import polars as pl

    from harness.metrics import ENGINE, EPISODE_KEYS, collect_by_episodes

    lazy = lambda f: f.lazy() if isinstance(f, pl.DataFrame) else f  # noqa: E731
    finished = (lazy(episodes).filter((pl.col("status") == "finished") & (pl.col("kind") == ANSWER_KIND))
                .select(*EPISODE_KEYS, "scenario_summary").collect(engine=ENGINE))
    if finished.is_empty():  # no answer scenario: the decisions need not be read at all
        return {}
    rows = collect_by_episodes(decisions, lambda part: (
        part.select(*EPISODE_KEYS, "t", "feedback").join(finished.lazy(), on=list(EPISODE_KEYS), how="inner")
        .filter(pl.col("feedback").str.json_path_match("$.correct").is_not_null()))).sort(*EPISODE_KEYS, "t")
    grouped: dict[tuple, list] = {}
    for row in rows.iter_rows(named=True):
        grouped.setdefault((row["agent"], row["scenario_id"], row["task_id"], row["rollout"]), []).append(row)
    out: dict[tuple[str, str], list[AnswerEpisode]] = {}
    for (agent, scenario_id, task_id, rollout), turns in grouped.items():
        verdicts = [json.loads(r["feedback"] or "{}") for r in turns]
        oracle = bool(json.loads(turns[0]["scenario_summary"] or "{}").get("oracle", False))
        out.setdefault((agent, scenario_id), []).append(AnswerEpisode(
            task_id, rollout, tuple(v.get("answer") for v in verdicts), tuple(bool(v.get("correct")) for v in verdicts),
            oracle))
    return out


def self_correction_table(decisions, episodes, turns: int | None = None, samples: int = 5, level: float = 0.95):
    """Per (agent, scenario_id) of the answer scenarios in a run: the four RISE metrics with
    task-clustered intervals (`<metric>`, `<metric>_low`, `<metric>_high`), the numbers of tasks
    and episodes, and accuracy / solved share by turn (lists over turns 1..`turns`).

    `turns` (the "t5" of m1@t5 and p1@t5) defaults to the longest episode of each scenario,
    i.e. its `turns` parameter (5 in the paper); `samples` is the "5" of m5@t1. Empty (no
    rows) when the run has no answer scenario."""
    import polars as pl

    records = []
    for (agent, scenario_id), group in sorted(answer_episodes(decisions, episodes).items()):
        record: dict[str, object] = {"agent": agent, "scenario_id": scenario_id,
                                     "tasks": len({e.task_id for e in group}), "episodes": len(group),
                                     "oracle": any(e.oracle for e in group)}
        horizon = turns or max(len(e.answers) for e in group)
        for name, values in metric_values(group, horizon, samples).items():
            result = estimate(name, values, level)
            record.update({name: result.estimate, f"{name}_low": result.ci_low, f"{name}_high": result.ci_high})
        by_turn = accuracy_by_turn(group, horizon)
        record["accuracy_by_turn"] = [r["accuracy"] for r in by_turn]
        record["solved_by_turn"] = [r["solved"] for r in by_turn]
        records.append(record)
    columns = ["agent", "scenario_id", "tasks", "episodes", "oracle"]
    for name in METRICS:
        columns += [name, f"{name}_low", f"{name}_high"]
    schema = {c: (pl.String if c in ("agent", "scenario_id") else pl.Int64 if c in ("tasks", "episodes")
                  else pl.Boolean if c == "oracle" else pl.Float64) for c in columns}
    schema |= {"accuracy_by_turn": pl.List(pl.Float64), "solved_by_turn": pl.List(pl.Float64)}
    if not records:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame(records, schema=schema).fill_nan(None)


def _cell(row: dict, name: str) -> str:
    value, low, high = row[name], row[f"{name}_low"], row[f"{name}_high"]
    if value is None:
        return "-"
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def self_correction_markdown(table) -> str:
    """The RISE metrics table in Markdown: each metric with its 95% task-clustered interval."""
    headers = ["agent", "scenario", "tasks", "episodes", *METRICS, "accuracy by turn", "solved by turn"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in table.iter_rows(named=True):
        turns = lambda values: " ".join("-" if v is None else f"{v:.2f}" for v in values)  # noqa: E731
        cells = [row["agent"], row["scenario_id"], str(row["tasks"]), str(row["episodes"]),
                 *(_cell(row, name) for name in METRICS), turns(row["accuracy_by_turn"]),
                 turns(row["solved_by_turn"])]
        lines.append("| " + " | ".join(cells) + " |")
    note = ("m1@t1: first-turn accuracy; m5@t1: majority of 5 parallel first turns; m1@t5: majority of the 5 "
            "sequential answers without an oracle; p1@t5: any of the first 5 turns correct (with an oracle). "
            "Intervals: 95%, clustered by task.")
    return "\n".join(lines) + "\n\n" + note + "\n"
