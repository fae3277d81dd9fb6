"""How far a run's spending goes past `--max-cost`, at concurrency 8 and 64.

A priced model (1e-6 USD per prompt and per completion token, max_tokens 40) served by the
scripted server with 50 ms latency plays 3-armed bandits of 10 rounds, 200 episodes, under a
cap of $0.02, about a fifth of what the plan would cost. Prints, per concurrency, what was spent
(the sum over every episode row, failed ones included) against the cap.

    .venv/bin/python benchmarks/cost_cap_overshoot.py            # this checkout
    PYTHONPATH=/path/to/other/checkout .venv/bin/python benchmarks/cost_cap_overshoot.py
"""

import os
import sys
import tempfile
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_MODE", "PRODUCTION")

import polars as pl  # noqa: E402

from harness import load_run, parse_suite, run_plan  # noqa: E402
from harness.testing.openai_server import ScriptedServer, round_robin_policy  # noqa: E402

CAP = 0.02


def measure(concurrency: int, directory: str) -> tuple[float, float, int, int]:
    with ScriptedServer(round_robin_policy(), latency=0.05) as server:
        agent = {"agent": "openai/priced", "api_base": server.api_base, "cache": False, "max_tokens": 40,
                 "input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6}
        plan = parse_suite({"seed": 1, "rollouts": 50, "agents": [agent], "scenarios": [
            {"family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 10}, "instances": 4}]})
        started = time.perf_counter()
        run_plan(plan, directory, concurrency=concurrency, max_cost=CAP)
        wall = time.perf_counter() - started
    _, episodes = load_run(directory)
    episodes = episodes.collect()
    spent = float(episodes["cost"].sum())
    return spent, wall, episodes.filter(pl.col("status") == "finished").height, server.stats["requests"]


if __name__ == "__main__":
    import harness

    print(f"harness from {os.path.dirname(harness.__file__)}; cap ${CAP}")
    for concurrency in (8, 64):
        with tempfile.TemporaryDirectory() as tmp:
            spent, wall, finished, requests = measure(concurrency, os.path.join(tmp, "run"))
        print(f"concurrency {concurrency:>2}: spent ${spent:.6f} = {spent / CAP:.1%} of the cap "
              f"(overshoot {max(0.0, spent / CAP - 1):+.1%}); {finished} episodes finished, {requests} calls, "
              f"{wall:.1f} s wall")
    sys.stdout.flush()
