"""Decisions per second through the full runner and store, beside a bare loop of the same algorithm.

The bare loop plays the same agent class on the same scenario instance and episode seeds, with no
runner, no rows and no store; the ratio is the harness's share of the cost. Target: the harness
runs at no less than 0.8x the speed of the bare loop.

    .venv/bin/python -m pytest benchmarks/bench_runner.py --benchmark-only
"""

from __future__ import annotations

import itertools
import os
import time

import pytest
from _paired import paired_ratio, round_order

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


TARGET_RATIO = 0.8


PAIRS = int(os.environ.get("BENCH_PAIRS", "30"))


def test_ratio(tmp_path):
    """PAIRS paired rounds, the order alternated (benchmarks/_paired.py); the harness must keep
    >= 0.8x the bare loop's speed (wall clock)."""
    counter = itertools.count()
    paths = {"bare": bare_loop, "harness": lambda: run_plan(plan(), tmp_path / f"run{next(counter)}")}
    wall: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    for round_ in range(PAIRS):
        for name in round_order(list(paths), round_):
            start, start_cpu = time.perf_counter(), time.process_time()
            paths[name]()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    ratio, low, high = paired_ratio(wall["bare"], wall["harness"])
    decisions = HORIZON * EPISODES
    print(f"\nbare loop: {decisions / min(wall['bare']):,.0f} decisions/s; harness: "
          f"{decisions / min(wall['harness']):,.0f} decisions/s (best of {PAIRS}); harness speed / bare speed = "
          f"{ratio:.2f} wall [95% CI {low:.2f}, {high:.2f}] over {PAIRS} paired rounds, "
          f"{sum(cpu['bare']) / sum(cpu['harness']):.2f} CPU (target >= {TARGET_RATIO}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    assert ratio >= TARGET_RATIO, f"harness runs at {ratio:.2f}x the bare loop's speed (target >= {TARGET_RATIO})"
