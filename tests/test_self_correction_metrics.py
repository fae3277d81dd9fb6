"""The RISE metrics as pure functions, on episodes whose answers are written out by hand."""

from __future__ import annotations

import math

import pytest

from harness._self_correction import (
    AnswerEpisode,
    accuracy_by_turn,
    majority_vote,
    metric_values,
    parallel_majority_values,
    sequential_majority_values,
)

GOLD = "7"


def episode(task: str, rollout: int, answers, oracle: bool = False) -> AnswerEpisode:
    answers = tuple(answers)
    return AnswerEpisode(task, rollout, answers, tuple(a == GOLD for a in answers), oracle)


def test_majority_vote_ties_go_to_the_earliest_and_blanks_do_not_vote():
    assert majority_vote(["7", "3", "3"], [True, False, False]) is False
    assert majority_vote(["3", "7", "7", "3"], [False, True, True, False]) is False  # 2-2: "3" came first
    assert majority_vote([None, None, "7"], [False, False, True]) is True
    assert majority_vote([None, None], [False, False]) is False


def test_m5_at_t1_and_m1_at_t5_differ():
    # task a: first turns 7,3,3,7,3 (majority 3: wrong); each episode then fixes itself (7 from turn 2)
    a = [episode("a", r, [first, "7", "7", "7", "7"]) for r, first in enumerate(["7", "3", "3", "7", "3"])]
    # task b: first turns are all 7 (right); sequentially it wavers but 7 keeps the majority (3-2)
    b = [episode("b", r, ["7", "5", "7", "5", "7"]) for r in range(5)]
    values = metric_values(a + b, turns=5, samples=5)
    mean = {name: sum(v for _, v in vs) / len(vs) for name, vs in values.items()}
    assert mean["m1@t1"] == pytest.approx(7 / 10)  # a: 2 of 5, b: 5 of 5
    assert mean["m5@t1"] == pytest.approx(1 / 2)  # a: wrong vote, b: right vote
    assert mean["m1@t5"] == 1.0  # a: 7 wins 4-1 or 5-0, b: 7 wins 3-2
    assert mean["p1@t5"] == 1.0
    assert [v for _, v in values["m1@t5"]] == [1.0] * 10
    assert [v for _, v in values["m5@t1"]] == [0.0, 1.0]
    # and the other direction: right at first every time, then talked out of it
    c = [episode("c", r, ["7", "3", "3", "3", "7"]) for r in range(5)]
    c_values = metric_values(c)
    assert sum(v for _, v in c_values["m5@t1"]) == 1.0 and sum(v for _, v in c_values["m1@t5"]) == 0.0


def test_parallel_votes_use_disjoint_groups_of_rollouts():
    firsts = ["7", "7", "3", "3", "3", "7", "7", "7", "3", "3", "3"]  # 11 rollouts: two votes, one left over
    episodes = [episode("t", r, [a]) for r, a in reversed(list(enumerate(firsts)))]  # order must not matter
    assert parallel_majority_values(episodes, samples=5) == [("t", 0.0), ("t", 1.0)]
    assert parallel_majority_values(episodes[:4], samples=5) == []


def test_oracle_episodes_count_for_p1_not_m1_at_t5():
    solved = episode("t", 0, ["3", "7"], oracle=True)  # stopped at the first correct answer
    failed = episode("t", 1, ["3", "3", "3", "3", "3"], oracle=True)
    assert sequential_majority_values([solved, failed]) == []
    values = metric_values([solved, failed])
    assert [v for _, v in values["p1@t5"]] == [1.0, 0.0]
    rows = accuracy_by_turn([solved, failed], turns=3)
    assert [r["solved"] for r in rows] == [0.0, 0.5, 0.5]
    assert all(math.isnan(r["accuracy"]) for r in rows)


def test_accuracy_by_turn_no_oracle():
    episodes = [episode("a", 0, ["3", "7", "7"]), episode("b", 0, ["7", "3", "3"])]
    rows = accuracy_by_turn(episodes, turns=3)
    assert [r["accuracy"] for r in rows] == [0.5, 0.5, 0.5]
    assert [r["solved"] for r in rows] == [0.5, 1.0, 1.0]


def test_episode_checks_its_shape():
    with pytest.raises(ValueError, match="2 answers but 1"):
        AnswerEpisode("t", 0, ("1", "2"), (True,))
    with pytest.raises(ValueError, match="no attempt"):
        AnswerEpisode("t", 0, (), ())
