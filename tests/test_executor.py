"""The executor seam: the driver hands episodes to an executor and writes what comes back."""

from __future__ import annotations

import asyncio
import pickle

import polars as pl
import pytest

from harness import EXECUTORS, load_run, parse_suite, run_plan
from harness.cli import main
from process_executor import ProcessExecutor


def _plan(agents=("ucb1", "exp3"), rollouts=2):
    return parse_suite({"seed": 5, "rollouts": rollouts, "agents": list(agents), "scenarios": [
        {"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 30}, "instances": 2},
        {"id": "e", "family": "experts/full-info", "params": {"n_experts": 3, "horizon": 20}, "instances": 1},
    ]})


def _tables(directory):
    decisions, episodes = load_run(directory)
    keys = ["agent", "task_id", "rollout"]
    return (decisions.drop("run", "latency_s").sort(*keys, "t").collect(),
            episodes.drop("run", "latency_s").sort(keys).collect())


def test_episodes_and_outcomes_cross_process_boundaries():
    plan = _plan()
    episode = next(plan.episodes())
    assert pickle.loads(pickle.dumps(episode)) == episode


def test_an_executor_in_other_processes_gives_identical_results(tmp_path):
    EXECUTORS.add("processes", ProcessExecutor, help="episodes in spawned worker processes")
    try:
        local = run_plan(_plan(), tmp_path / "local")
        elsewhere = run_plan(_plan(), tmp_path / "processes", executor="processes")
    finally:
        EXECUTORS.remove("processes")
    assert local.finished == elsewhere.finished == 10 and elsewhere.failed == 0
    for mine, theirs in zip(_tables(tmp_path / "local"), _tables(tmp_path / "processes")):
        assert mine.equals(theirs)


def test_the_cost_cap_stays_with_the_driver(tmp_path):
    """An executor pulls episodes lazily; once the cap is reached the driver gives it no more."""
    seen = []

    class Counting:
        async def run(self, episodes, deliver, *, factories, concurrency):
            from harness import play_outcome

            for episode in episodes:
                seen.append(episode.key)
                outcome = await play_outcome(episode, factories[episode.agent.name])
                outcome.record.cost = 1.0  # pretend each episode cost a dollar
                deliver(outcome)

    result = run_plan(_plan(agents=("ucb1",)), tmp_path / "run", executor=Counting(), max_cost=2.5)
    assert len(seen) == 3 and result.finished == 3 and "cost limit $2.5 reached" in result.stopped


def test_run_plan_works_inside_a_running_event_loop(tmp_path):
    async def notebook_cell():
        return run_plan(_plan(agents=("ucb1",), rollouts=1), tmp_path / "run")

    assert asyncio.run(notebook_cell()).finished == 2


def test_regret_run_resolves_each_agent_once(tmp_path, monkeypatch):
    import harness._runner

    calls = []
    resolve = harness._runner.resolve
    monkeypatch.setattr(harness._runner, "resolve", lambda spec: calls.append(spec.name) or resolve(spec))
    assert main(["run", "--agent", "ucb1", "--agent", "greedy", "--scenario", "bandit/bernoulli-k5", "--rollouts", "1",
                 "--out", str(tmp_path / "run"), "--no-progress", "--no-report"]) == 0
    assert sorted(calls) == ["greedy", "ucb1"]


def test_an_unknown_executor_is_a_usage_error(tmp_path):
    with pytest.raises(KeyError, match="unknown executor 'locl'; did you mean 'local'"):
        run_plan(_plan(), tmp_path / "run", executor="locl")
    assert not (tmp_path / "run").exists()  # nothing written
