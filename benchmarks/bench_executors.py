"""The multi-process and Ray executors against the single-process runner on a CPU-bound suite.

The same plan (algorithms whose decisions cost real CPU: LinUCB's per-arm ridge regressions on
linear contextual bandits, Thompson sampling on a 20-armed bandit) runs on the local executor
(one process), the process executor (2 workers) and the Ray executor (2 actors on a local Ray
head with 2 CPUs, started before the clock), interleaved round by round (the order rotated).
The tables must be identical; the target is >= 1.6x the local executor's speed on 2 cores, as the
geometric mean over rounds of the paired speed-ups (with its 95% interval).
Each executor's time includes starting its workers (processes or actors) and the driver's
store writes; the Ray head itself is a cluster that outlives runs, so its start is not timed.

    .venv/bin/python -m pytest benchmarks/bench_executors.py -q -s   # BENCH_ROUNDS, BENCH_ROLLOUTS, BENCH_HORIZON

The machine this runs on may be shared: the load average before and after is printed with the
figures, and the CPU time of the driver (and of the process executor's workers) beside the wall time.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import resource
import time

import pytest
from _paired import paired_ratio, round_order

from harness.testing.ray_head import LOOPBACK_ENV

os.environ.update(LOOPBACK_ENV)  # before Ray is imported: the benchmark's Ray stays on 127.0.0.1

from harness import get_executor, load_run, parse_suite, run_plan

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
TARGET = 1.6
HORIZON = int(os.environ.get("BENCH_HORIZON", "1500"))
ROLLOUTS = int(os.environ.get("BENCH_ROLLOUTS", "24"))  # 240 episodes, 360k decisions: ~15 CPU s in one process


def plan():
    return parse_suite({"seed": 7, "rollouts": ROLLOUTS, "agents": ["linucb", "thompson"], "scenarios": [
        {"id": "ctx", "family": "contextual/linear", "params": {"n_arms": 10, "dim": 10, "horizon": HORIZON},
         "instances": 4},
        {"id": "k20", "family": "bandit/bernoulli", "params": {"n_arms": 20, "horizon": HORIZON}, "instances": 2},
    ]})


def tables(directory):
    decisions, episodes = load_run(directory)
    keys = ["agent", "task_id", "rollout"]
    return (decisions.drop("run", "latency_s").sort(*keys, "t").collect(),
            episodes.drop("run", "latency_s").sort(keys).collect())


def cpu_seconds() -> float:
    self, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self.ru_utime + self.ru_stime + children.ru_utime + children.ru_stime


def test_executors_side_by_side(benchmark, tmp_path):
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install 'regret-harness[ray]')")
    from harness.testing.ray_head import LocalRayHead

    load_before = os.getloadavg()
    counter = itertools.count()
    timings: dict[str, list[tuple[float, float]]] = {"local": [], "process": [], "ray": []}
    directories: dict[str, object] = {}
    with LocalRayHead(cpus=2) as head:
        executors = {"local": lambda: "local", "process": lambda: get_executor("process", workers=2),
                     "ray": lambda: get_executor("ray", address=head.address, workers=2)}
        rounds = itertools.count()

        def one_round():  # the three executors back to back, in an order rotated each round
            for name in round_order(list(executors), next(rounds)):
                directory = tmp_path / f"{name}{next(counter)}"
                cpu, wall = cpu_seconds(), time.perf_counter()
                result = run_plan(plan(), directory, executor=executors[name]())  # concurrency 8: 4 episodes queued per worker
                timings[name].append((time.perf_counter() - wall, cpu_seconds() - cpu))
                assert result.failed == 0 and result.finished == result.total, result.errors
                directories[name] = directory

        benchmark.group = "executors on a CPU-bound suite (one round: local, process x2, ray x2)"
        benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    load_after = os.getloadavg()
    reference = tables(directories["local"])
    for name in ("process", "ray"):
        for mine, theirs in zip(reference, tables(directories[name])):
            assert mine.equals(theirs), f"{name} executor: tables differ from the local executor's"
    decisions = reference[0].height
    local = [wall for wall, _ in timings["local"]]
    speedups = {name: paired_ratio(local, [wall for wall, _ in runs]) for name, runs in timings.items()}
    lines = [f"decisions: {decisions:,} ({plan().name}: linucb + thompson, horizon {HORIZON}); {ROUNDS} rounds; "
             f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min), {os.cpu_count()} CPUs"]
    for name, runs in timings.items():
        wall, cpu = min(runs)
        ratio, low, high = speedups[name]
        lines.append(f"{name:8s} wall {wall:6.2f} s (best)  cpu (driver + its child processes) {cpu:6.2f} s  "
                     f"{decisions / wall:9,.0f} decisions/s  speed-up {ratio:.2f}x [95% CI {low:.2f}, {high:.2f}]")
    print("\n" + "\n".join(lines))
    benchmark.extra_info.update({"decisions": decisions, "load_before": load_before[0], "load_after": load_after[0],
                                 **{f"{name}_wall_s": min(runs)[0] for name, runs in timings.items()},
                                 **{f"{name}_speedup": speedups[name][0] for name in timings}})
    for name in ("process", "ray"):
        ratio = speedups[name][0]
        assert ratio >= TARGET, f"{name} executor runs at {ratio:.2f}x the single process (target >= {TARGET})"

