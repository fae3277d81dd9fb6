"""Curriculum schedules, level ordering by difficulty(), and the acceptance-rate accounting."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("torch")

import polars as pl  # noqa: E402

from finetune._curriculum import (  # noqa: E402
    LevelHistory,
    adaptive_level,
    allocate,
    get_schedule,
    order_levels,
    outside_band,
)
from finetune.iterate import IterateConfig, iterate, select_trajectories, training_entries  # noqa: E402
from harness._plan import parse_suite  # noqa: E402
from harness._runner import run_plan  # noqa: E402

LEVELS = ("L1", "L2", "L3")


def _graph_suite(levels=(3, 1, 2), instances=3):
    return parse_suite({"name": "graphs", "agents": [], "scenarios": [
        {"id": f"L{d}", "family": "graph/shortest-path", "params": {"level": d}, "instances": instances}
        for d in levels]})


def test_levels_are_ordered_by_difficulty_for_every_family():
    assert [e.id for e in order_levels(_graph_suite().scenarios)] == ["L1", "L2", "L3"]
    arms = parse_suite({"agents": [], "scenarios": [
        {"id": f"k{k}", "family": "bandit/bernoulli", "params": {"n_arms": k, "horizon": 20}} for k in (10, 2, 5)]})
    assert [e.id for e in order_levels(arms.scenarios)] == ["k2", "k5", "k10"]
    gaps = parse_suite({"agents": [], "scenarios": [
        {"id": f"g{g}", "family": "bandit/bernoulli", "params": {"n_arms": 3, "gap": g}} for g in (0.1, 0.4, 0.2)]})
    assert [e.id for e in order_levels(gaps.scenarios)] == ["g0.4", "g0.2", "g0.1"]
    horizons = parse_suite({"agents": [], "scenarios": [
        {"id": f"t{h}", "family": "experts/full-info", "params": {"horizon": h}} for h in (50, 10)]})
    assert [e.id for e in order_levels(horizons.scenarios)] == ["t10", "t50"]
    mixed = parse_suite({"agents": [], "scenarios": [
        {"id": "g", "family": "graph/shortest-path"}, {"id": "b", "family": "bandit/bernoulli"}]})
    assert [e.id for e in order_levels(mixed.scenarios)] == ["g", "b"]  # different keys: suite order


def test_allocate_splits_the_whole_budget():
    assert allocate(9, {"a": 1, "b": 1, "c": 1}) == {"a": 3, "b": 3, "c": 3}
    assert allocate(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert allocate(7, {"a": 0, "b": 1, "c": 0}) == {"a": 0, "b": 7, "c": 0}
    assert sum(allocate(11, {"a": 0.2, "b": 0.5, "c": 0.3}).values()) == 11
    with pytest.raises(ValueError):
        allocate(3, {"a": 0})


def test_schedules():
    empty = LevelHistory()
    assert get_schedule("mixture").weights(LEVELS, 0, 5, empty, 0.8) == {"L1": 1.0, "L2": 1.0, "L3": 1.0}
    e2h = get_schedule("easy-to-hard")
    stages = [max(e2h.weights(LEVELS, i, 6, empty, 0.8).items(), key=lambda kv: kv[1])[0] for i in range(6)]
    assert stages == ["L1", "L1", "L2", "L2", "L3", "L3"]
    # adaptive: moves on only after an iteration whose acceptance at the current level reached the threshold
    history = LevelHistory(({"L1": 0.5}, {"L1": 0.85}, {"L2": 0.79}, {"L2": 0.8}, {"L3": 0.99}, {"L3": 1.0}))
    levels = [adaptive_level(LEVELS, LevelHistory(history.acceptance[:i]), 0.8) for i in range(7)]
    assert levels == [0, 0, 1, 1, 2, 2, 2]  # and stays on the last level
    assert adaptive_level(LEVELS, LevelHistory(({"L2": 1.0}, {"L1": math.nan})), 0.8) == 0  # only the current level counts
    with pytest.raises(KeyError, match="did you mean 'adaptive'"):
        get_schedule("adaptiv")


def test_outside_band():
    assert outside_band(0.5) is None
    assert "too hard" in outside_band(0.1) and "too easy" in outside_band(0.9)
    assert outside_band(math.nan) is None


@pytest.mark.parametrize("selector,expected", [("threshold", None), ("k-lowest", 2)])
def test_acceptance_rate_accounting_per_level(tmp_path, selector, expected):
    """Samples, accepted counts and rates per level against an independent count on the run's files."""
    plan = _graph_suite(levels=(1, 3), instances=4).replace(agents=(__import__("agents").AgentSpec("random-walk"),),
                                                             rollouts=5)
    folder = tmp_path / "iter"
    run_plan(plan, folder / "rollouts")
    config = IterateConfig(out=str(tmp_path), suite=plan, selector=selector, k=2, rollouts=5)
    record = select_trajectories(folder, config)
    episodes = pl.read_parquet(folder / "rollouts" / "episodes.parquet")
    for level in ("L1", "L3"):
        rows = episodes.filter(pl.col("scenario_id") == level)
        assert record.level_samples[level] == rows.height == 20
        want = _recheck_correct(folder / "rollouts", level) if expected is None else expected * 4
        assert record.level_accepted[level] == want
        assert record.level_acceptance[level] == pytest.approx(want / 20)
    assert record.dataset_size == sum(record.level_accepted.values())
    assert record.acceptance_rate == pytest.approx(record.dataset_size / 40)
    kept = pl.read_parquet(folder / "dataset" / "episodes.parquet")
    if expected is None:
        assert (kept["final_regret"] == 0).all()  # reward-filtered: only correct answers


def _recheck_correct(run, level) -> int:
    """Correct answers counted from the logged graphs and paths with the checker, not the regret column."""
    from scenarios.graph import Graph, PathProblem, check_path

    decisions = pl.read_parquet(run / "decisions.parquet").filter(pl.col("scenario_id") == level)
    episodes = pl.read_parquet(run / "episodes.parquet").filter(pl.col("scenario_id") == level)
    joined = decisions.join(episodes, on=["agent", "task_id", "rollout"])
    count = 0
    for summary, feedback in zip(joined["scenario_summary"], joined["feedback"]):
        facts = json.loads(summary)
        problem = PathProblem(Graph(facts["n_nodes"], tuple(map(tuple, facts["edges"]))), facts["source"], facts["target"])
        count += check_path(problem, json.loads(feedback)["answer"]).correct
    return count


def test_equal_budget_across_schedules(tmp_path):
    plan = _graph_suite(instances=2)
    sizes = {}
    for name in ("mixture", "easy-to-hard", "adaptive"):
        config = IterateConfig(out=str(tmp_path), suite=plan, schedule=name, train_instances=4, iterations=3)
        for i in range(3):
            entries = training_entries(plan, config, i)
            sizes[name, i] = {e.id: len(e.instance_seeds) for e in entries}
            assert sum(sizes[name, i].values()) == 12
    assert sizes["mixture", 0] == {"L3": 4, "L1": 4, "L2": 4}
    assert [sizes["easy-to-hard", i] for i in range(3)] == [{"L1": 12}, {"L2": 12}, {"L3": 12}]
    assert sizes["adaptive", 2] == {"L1": 12}  # no history: stays on the easiest level
    with pytest.raises(ValueError, match="resample_tasks"):
        IterateConfig(out=str(tmp_path), suite=plan, schedule="adaptive", resample_tasks=False)


def test_graph_loop_adaptive_table_and_warnings(tmp_path):
    config = IterateConfig(out=str(tmp_path / "loop"), suite=_graph_suite(levels=(1, 2), instances=3),
                           selector="threshold", schedule="adaptive", advance_at=0.05, iterations=2, rollouts=6,
                           eval_instances=4, backend_config={"epochs": 1}, baselines=("bfs",))
    logged = []
    result = iterate(config, log=logged.append)
    rows = pl.read_csv(tmp_path / "loop" / "iterations.csv").sort("iteration", "scenario_id")
    state = json.loads((tmp_path / "loop" / "state.json").read_text())
    history = [state["done"][f"{i}/select"] for i in range(2)]
    # iteration 0 trains on L1 only; iteration 1 on L2 iff L1's acceptance reached advance_at
    assert set(history[0]["level_samples"]) == {"L1"} and history[0]["level_samples"]["L1"] == 36
    moved = history[0]["level_acceptance"]["L1"] >= 0.05
    assert set(history[1]["level_samples"]) == {"L2" if moved else "L1"}
    first = rows.filter(pl.col("iteration") == 1)
    l1 = first.filter(pl.col("scenario_id") == "L1").row(0, named=True)
    assert l1["samples"] == 36 and l1["accepted"] == history[0]["level_accepted"]["L1"]
    assert l1["level_acceptance"] == pytest.approx(l1["accepted"] / 36)
    assert first.filter(pl.col("scenario_id") == "L2")["samples"].to_list() == [None]  # not trained then
    last = rows.filter(pl.col("iteration") == 2)["accepted_total"].to_list()
    assert last[0] == pytest.approx(history[0]["dataset_size"] + history[1]["dataset_size"])
    assert rows["mean_reward"].null_count() == 0 and (rows["tasks"] == 4).all()
    # a random-walk start is outside the learnable band: warned, in the log and state.json
    start = pl.read_parquet(tmp_path / "loop" / "iter-000" / "eval" / "episodes.parquet")
    for level in ("L1", "L2"):
        rate = (start.filter(pl.col("scenario_id") == level)["final_regret"] == 0).mean()
        warned = [w for w in state.get("warnings", []) if w.startswith(f"level {level}:")]
        assert len(warned) == (not 0.3 <= rate <= 0.7), (level, rate, warned)
        assert all(f"warning: {w}" in logged for w in warned)
    assert result.baselines.filter(pl.col("agent") == "bfs")["mean_regret"].to_list() == [0.0, 0.0]
    assert (tmp_path / "loop" / "iterations.png").stat().st_size > 1000


def test_bandit_curriculum_through_difficulty(tmp_path):
    suite = parse_suite({"agents": [], "scenarios": [
        {"id": f"k{k}", "family": "bandit/bernoulli", "params": {"n_arms": k, "horizon": 10}, "instances": 2}
        for k in (3, 2)]})
    config = IterateConfig(out=str(tmp_path), suite=suite, schedule="easy-to-hard", iterations=2)
    assert [[e.id for e in training_entries(suite, config, i)] for i in range(2)] == [["k2"], ["k3"]]


def test_cli_graph_curriculum(tmp_path, capsys):
    from harness.cli import main

    out = tmp_path / "cli"
    code = main(["iterate", "--suite", "iterate-graph", "--selector", "correct", "--schedule", "adaptive",
                 "--advance-at", "0.5", "--iterations", "1", "--rollouts", "2", "--train-instances", "2",
                 "--eval-instances", "2", "--set", "epochs=1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "warning: level graph/L" in printed and "iterations.csv" in printed
    rows = pl.read_csv(out / "iterations.csv")
    assert rows.height == 8 and set(rows["scenario_id"]) == {"graph/L1", "graph/L3", "graph/L5", "graph/L7"}
    # adaptive starts on the easiest level with the whole budget (2 tasks x 4 levels x 2 rollouts)
    assert rows.filter(pl.col("iteration") == 1).filter(pl.col("samples").is_not_null())["scenario_id"].to_list() \
        == ["graph/L1"]
    assert main(["iterate", "--suite", "iterate-graph", "--curriculum", "--schedule", "adaptive",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "--curriculum means --schedule easy-to-hard" in capsys.readouterr().err
