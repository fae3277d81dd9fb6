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
