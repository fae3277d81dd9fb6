import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from agents import AgentSpec
from harness import Plan, PlanError, RunStore, RunStoreError, ScenarioEntry, load_run, parse_suite, run_plan

ROOT = Path(__file__).resolve().parents[1]


def small_plan(agents=("ucb1", "uniform", "oracle"), horizon=50, rollouts=3, seed=7) -> Plan:
    return parse_suite({
        "seed": seed, "rollouts": rollouts, "agents": list(agents),
        "scenarios": [
            {"id": "bern", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": horizon}, "instances": 2},
            {"id": "exp", "family": "experts/full-info", "params": {"n_experts": 3, "horizon": horizon}, "seeds": [4]},
        ],
    })


def frames(directory):
    decisions, episodes = load_run(directory)
    decisions = decisions.drop("run").sort("agent", "task_id", "rollout", "t").collect()
    episodes = episodes.drop("run").sort("agent", "task_id", "rollout").collect()
    return decisions, episodes


def test_plan_counts_only_supported_pairs(tmp_path):
    result = run_plan(small_plan(), tmp_path / "run")
    # ucb1 plays bandits only; uniform and oracle play both: (2 tasks * 3) * 3 + (1 task * 3) * 2
    assert result.total == 2 * 3 * 3 + 1 * 3 * 2
    assert result.finished == result.total and result.failed == 0
    decisions, episodes = frames(tmp_path / "run")
    assert decisions.height == result.total * 50
    assert set(episodes["status"]) == {"finished"}


def test_cumulative_regret_and_final_regret_agree(tmp_path):
    run_plan(small_plan(), tmp_path / "run")
    decisions, episodes = frames(tmp_path / "run")
    recomputed = decisions.group_by("agent", "task_id", "rollout").agg(
        pl.col("regret").sum().alias("sum_regret"), pl.col("cumulative_regret").last().alias("last_cum"))
    joined = episodes.join(recomputed, on=["agent", "task_id", "rollout"])
    assert (joined["final_regret"] - joined["sum_regret"]).abs().max() < 1e-9
    assert (joined["final_regret"] - joined["last_cum"]).abs().max() < 1e-9
    oracle = episodes.filter(pl.col("agent") == "oracle")
    assert oracle["final_regret"].abs().max() < 1e-9


def test_same_plan_twice_is_identical(tmp_path):
    run_plan(small_plan(), tmp_path / "a")
    run_plan(small_plan(), tmp_path / "b")
    for left, right in zip(frames(tmp_path / "a"), frames(tmp_path / "b")):
        assert left.equals(right)


def test_common_random_numbers_across_agents(tmp_path):
    run_plan(small_plan(agents=("uniform", "oracle")), tmp_path / "run")
    decisions, _ = frames(tmp_path / "run")
    bandit = decisions.filter(pl.col("scenario_id") == "bern")
    # wherever both agents pulled the same arm in the same round of the same episode, they saw the same reward
    pairs = bandit.filter(pl.col("agent") == "uniform").join(
        bandit.filter(pl.col("agent") == "oracle"), on=["task_id", "rollout", "t", "action"])
    assert pairs.height > 10
    assert (pairs["reward"] == pairs["reward_right"]).all()


def test_different_master_seed_changes_outcomes(tmp_path):
    run_plan(small_plan(seed=1), tmp_path / "a")
    run_plan(small_plan(seed=2), tmp_path / "b")
    assert not frames(tmp_path / "a")[0]["reward"].equals(frames(tmp_path / "b")[0]["reward"])


def test_rerun_into_existing_directory_is_refused(tmp_path):
    run_plan(small_plan(), tmp_path / "run")
    with pytest.raises(RunStoreError, match="--resume"):
        run_plan(small_plan(), tmp_path / "run")


def test_resume_of_complete_run_adds_nothing(tmp_path):
    run_plan(small_plan(), tmp_path / "run")
    before = frames(tmp_path / "run")
    result = run_plan(small_plan(), tmp_path / "run", resume=True)
    assert result.finished == 0 and result.skipped == result.total
    for left, right in zip(before, frames(tmp_path / "run")):
        assert left.equals(right)


def test_failed_episode_is_recorded_and_retried_on_resume(tmp_path, monkeypatch):
    import agents.baselines as baselines

    original = baselines.UCB1.decide
    calls = {"n": 0}

    def flaky(self, observation):
        calls["n"] += 1
        if self.episode.rollout == 1 and observation.t == 10:
            raise RuntimeError("provider exploded")
        return original(self, observation)

    monkeypatch.setattr(baselines.UCB1, "decide", flaky)
    result = run_plan(small_plan(agents=("ucb1",)), tmp_path / "run")
    assert result.failed == 2 and "provider exploded" in result.errors[0]
    _, episodes = frames(tmp_path / "run")
    failed = episodes.filter(pl.col("status") == "failed")
    assert failed.height == 2 and failed["error"].str.contains("RuntimeError: provider exploded").all()
    monkeypatch.setattr(baselines.UCB1, "decide", original)
    resumed = run_plan(small_plan(agents=("ucb1",)), tmp_path / "run", resume=True)
    assert resumed.finished == 2 and resumed.failed == 0
    decisions, episodes = frames(tmp_path / "run")
    assert set(episodes["status"]) == {"finished"}
    assert decisions.group_by("agent", "task_id", "rollout", "t").len()["len"].max() == 1  # no duplicates
    fresh = tmp_path / "fresh"
    run_plan(small_plan(agents=("ucb1",)), fresh)
    assert frames(fresh)[0].equals(decisions)


def test_kill_9_then_resume_gives_the_same_tables(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(
        'seed = 3\nrollouts = 20\nagents = ["ucb1", "thompson", "uniform"]\n'
        '[[scenarios]]\nid = "b"\nfamily = "bandit/bernoulli"\nparams = {n_arms = 5, horizon = 1000}\ninstances = 3\n'
    )
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--suite", str(suite), "--out", str(killed), "--no-progress", "--no-report"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.time() + 60
    finished = 0
    while time.time() < deadline and finished < 20:
        time.sleep(0.05)
        try:
            with sqlite3.connect(killed / "store.sqlite", timeout=1) as db:
                finished = db.execute("SELECT count(*) FROM episodes").fetchone()[0]
        except sqlite3.Error:
            pass
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with RunStore(killed) as store:
        partial = len(store.finished_keys())
    assert 20 <= partial < 180
    plan = Plan.from_dict(json.loads((killed / "plan.json").read_text())["plan"])
    resumed = run_plan(plan, killed, resume=True)
    assert resumed.skipped == partial and resumed.finished == 180 - partial
    reference = tmp_path / "reference"
    run_plan(plan, reference)
    for left, right in zip(frames(killed), frames(reference)):
        assert left.equals(right)


@pytest.mark.parametrize(
    "suite, message",
    [
        ({"agents": ["ucb1"]}, "needs at least one"),
        ({"agents": ["ucb1"], "scenarios": [{"family": "bandit/bernouli"}]}, "did you mean 'bandit/bernoulli'"),
        ({"agents": ["ucb1"], "scenarios": [{"family": "bandit/bernoulli", "params": {"horizon": -5}}]}, "horizon must be >= 1"),
        ({"agents": ["ucb1"], "scenarios": [{"family": "bandit/bernoulli", "params": {"n_arm": 5}}]}, "did you mean 'n_arms'"),
        ({"agents": ["ucb1"], "rollouts": 0, "scenarios": [{"family": "bandit/bernoulli"}]}, "rollouts: must be >= 1"),
        ({"agents": ["ucb1"], "scenarios": [{"family": "bandit/bernoulli", "instance": 2}]}, "unknown key"),
        ({"agents": ["ucb1", "ucb1"], "scenarios": [{"family": "bandit/bernoulli"}]}, "unique"),
        ({"agents": [{"label": "x"}], "scenarios": [{"family": "bandit/bernoulli"}]}, "needs a string 'agent'"),
    ],
)
def test_malformed_suites_name_the_problem(suite, message):
    with pytest.raises(PlanError, match=message):
        parse_suite(suite)


def test_plan_round_trips_through_json():
    plan = small_plan()
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again == plan
    assert [e.key for e in again.episodes()] == [e.key for e in plan.episodes()]


def test_runner_memory_does_not_grow_with_episodes(tmp_path):
    import tracemalloc

    def peak(rollouts: int, name: str = "") -> int:
        plan = parse_suite({"seed": 0, "rollouts": rollouts, "agents": ["ucb1"], "scenarios": [
            {"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 20}, "seeds": [1]}]})
        tracemalloc.start()
        run_plan(plan, tmp_path / f"run{rollouts}{name}", concurrency=4)
        _, high = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return high

    # warm caches and imports, and CPython's free lists (up to 2000 freed tuples of each length up to 20 kept
    # for reuse, emptied only by a full collection): filled once per process, not growing with the run
    peak(1000, "-warm")
    small, large = peak(50), peak(1000)
    assert large < 1.5 * small, f"peak traced memory grew from {small} to {large} bytes with 20x the episodes"


def test_master_seed_redraws_instances_and_sweeps_expand_in_written_order():
    from harness import parse_suite
    from harness._plan import derive_seed, natural_key

    suite = {"seed": 0, "agents": ["ucb1"], "scenarios": [
        {"id": "k", "family": "bandit/bernoulli", "params": {"n_arms": [2, 5, 10, 20], "horizon": 20}, "instances": 2},
        {"id": "fixed", "family": "bandit/gaussian", "params": {"n_arms": 2, "means": [0.1, 0.2]}, "seeds": [7]},
        {"id": "a-last", "family": "bandit/gaussian", "params": {"n_arms": 2, "means": [[0.1, 0.2], [0.0, 0.5]]}},
    ]}
    plan = parse_suite(suite)
    ids = [e.id for e in plan.scenarios]
    assert ids == ["k/n_arms=2", "k/n_arms=5", "k/n_arms=10", "k/n_arms=20", "fixed",
                   "a-last/means=0.1,0.2", "a-last/means=0.0,0.5"]  # written order, not alphabetical
    assert sorted(ids[:4], key=natural_key) == ids[:4]
    assert plan.scenarios[4].params["means"] == [0.1, 0.2]  # a list-valued parameter is not a sweep
    assert plan.sweeps()["k"][1] == ("k/n_arms=5", {"n_arms": 5})
    # --seed S is the same plan as `seed = S` in the file: instances, env and agent seeds all change
    reseeded, in_file = plan.replace(seed=3), parse_suite({**suite, "seed": 3})
    assert reseeded == in_file
    assert reseeded.scenarios[0].instance_seeds == (derive_seed(3, "instance", "k/n_arms=2", 0) % 2**31,
                                                    derive_seed(3, "instance", "k/n_arms=2", 1) % 2**31)
    assert reseeded.scenarios[0].instance_seeds != plan.scenarios[0].instance_seeds
    assert reseeded.scenarios[4].instance_seeds == (7,)  # explicit seeds stay
    assert [e.env_seed for e in reseeded.episodes()] == [e.env_seed for e in in_file.episodes()]
    # a frozen plan round-trips and still redraws under another seed
    frozen = parse_suite(plan.to_dict())
    assert frozen == plan and frozen.replace(seed=3) == in_file


def test_the_run_tunes_the_collector_only_while_it_runs(tmp_path):
    """While the run runs, the collector skips the heap from before it (full collections walked it
    again and again) and lets a young generation hold an episode's rows; after it, also when the
    run raises, the caller's thresholds and heap are as they were."""
    import gc

    from harness._executor import YOUNG_THRESHOLD

    seen = []

    class Recording:
        async def run(self, episodes, deliver, *, factories, concurrency):
            seen.append((gc.get_freeze_count(), gc.get_threshold()))
            raise RuntimeError("executor failed")

    before = gc.get_threshold()
    gc.set_threshold(500, 7, 9)
    try:
        run_plan(small_plan(horizon=5, rollouts=1), tmp_path / "ok")
        assert gc.get_freeze_count() == 0 and gc.get_threshold() == (500, 7, 9)
        with pytest.raises(RuntimeError, match="executor failed"):
            run_plan(small_plan(horizon=5, rollouts=1), tmp_path / "raised", executor=Recording())
        assert gc.get_freeze_count() == 0 and gc.get_threshold() == (500, 7, 9)
    finally:
        gc.set_threshold(*before)
    (frozen, during), = seen
    assert frozen > 0 and during == (YOUNG_THRESHOLD, 7, 9)
