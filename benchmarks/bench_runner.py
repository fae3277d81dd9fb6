"""Decisions per second through the full runner and store, beside a bare loop of the same algorithm.

The bare loop plays the same agent class on the same scenario instance and episode seeds, with no
runner, no rows and no store; the ratio is the harness's share of the cost. Target: the harness
runs at no less than half the speed of the bare loop.

    .venv/bin/python -m pytest benchmarks/bench_runner.py --benchmark-only
"""

from __future__ import annotations

import itertools

import pytest

from agents import EpisodeInfo, resolve
from harness import parse_suite, run_plan
from scenarios import make

AGENT = "ucb1"
HORIZON = 1000
EPISODES = 20
RATIOS: dict[str, float] = {}


def plan():
    return parse_suite({
        "seed": 0, "rollouts": EPISODES, "agents": [AGENT],
        "scenarios": [{"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 5, "horizon": HORIZON}, "seeds": [1]}],
    })


def bare_loop() -> float:
    """The same algorithm on the same instance and seeds, without the harness."""
    factory = resolve(AGENT)
    episodes = list(plan().episodes())
    total_regret = 0.0
    for episode in episodes:
        env = make(episode.task.spec)
        agent = factory()
        agent.reset(EpisodeInfo(env.family, env.kind, env.feedback, env.n_actions, env.horizon, env.accepts_policy,
                                episode.task.task_id, episode.task.scenario_id, episode.rollout, episode.agent_seed))
        observation = env.reset(episode.env_seed)
        while True:
            decision = agent.decide(observation)
            step = env.step(decision.action)
            total_regret += step.regret
            agent.update(observation, decision, step)
            if step.done:
                break
            observation = step.observation
    return total_regret


def test_bare_loop(benchmark):
    benchmark.group = "decisions per second (ucb1, K=5, T=1000, 20 episodes)"
    benchmark.extra_info["decisions"] = HORIZON * EPISODES
    benchmark.pedantic(bare_loop, rounds=5, warmup_rounds=1)


def test_harness(benchmark, tmp_path):
    benchmark.group = "decisions per second (ucb1, K=5, T=1000, 20 episodes)"
    counter = itertools.count()

    def through_harness():
        return run_plan(plan(), tmp_path / f"run{next(counter)}", concurrency=8)

    result = benchmark.pedantic(through_harness, rounds=5, warmup_rounds=1)
    assert result.finished == EPISODES
    benchmark.extra_info["decisions"] = HORIZON * EPISODES


def test_ratio(tmp_path):
    """Both paths timed back to back in this run (best of 5); the harness must keep >= 0.5x."""
    import time

    def best(fn, rounds=5):
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    counter = itertools.count()
    bare = best(bare_loop)
    harness = best(lambda: run_plan(plan(), tmp_path / f"run{next(counter)}"))
    decisions = HORIZON * EPISODES
    ratio = bare / harness
    print(f"\nbare loop: {decisions / bare:,.0f} decisions/s; harness: {decisions / harness:,.0f} decisions/s; "
          f"harness speed / bare speed = {ratio:.2f}")
    assert ratio >= 0.5, f"harness runs at {ratio:.2f}x the bare loop's speed (target >= 0.5)"
