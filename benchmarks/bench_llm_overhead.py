"""Decisions per second of LLM agents through the harness, beside bare litellm calls.

A scripted OpenAI-compatible server (`harness.testing.openai_server`, in its own process so its
CPU does not share our GIL) answers every request after a fixed 50 ms. Episodes have 16 rounds,
so per-episode and per-run costs (building the scenario, the Parquet export) are spread over
their decisions as in a real run. At concurrency C:

- harness: `run_plan` with one LLM agent, C episodes in flight (`concurrency=C`), response cache
  on (a fresh directory, so every call reaches the server and is written to the cache);
- bare: `asyncio.gather` of C workers, each awaiting `litellm.acompletion` in a loop over the
  exact messages one harness episode sent (read back from its decisions table), with no prompt
  building, parsing, cache, scenario or store.

Both send the same requests, in paired rounds (`BENCH_PAIRS`, order alternated); the overhead is
the mean over rounds of log(harness_time / bare_time) (wall clock), with its 95% interval, and
the CPU seconds per decision of this process are reported beside it. Target: overhead at most 5%.

The direct client (`client = "direct"`, agents.llm._transport) runs the same plan beside the
harness on litellm (`client = "litellm"`), interleaved: target at least 5x the decisions per second.

    .venv/bin/python -m pytest benchmarks/bench_llm_overhead.py --benchmark-only -s
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time

import pytest
from _paired import paired_ratio, round_order

from harness import parse_suite, run_plan

LATENCY_S = 0.05
HORIZON = 16  # rounds per episode; C episodes per measurement, so C * HORIZON decisions
ROUNDS = 3
PAIRS = int(os.environ.get("BENCH_PAIRS", "8"))  # paired rounds of the overhead test
TARGET_OVERHEAD = 0.05
TARGET_DIRECT_SPEEDUP = 5.0
MODEL = "openai/bench"


@pytest.fixture(scope="module")
def api_base():
    proc = subprocess.Popen([sys.executable, "-m", "harness.testing.openai_server", "--latency", str(LATENCY_S)],
                            stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()


def plan(api_base: str, concurrency: int, cache_dir: str, client: str = "litellm"):
    horizon = HORIZON
    return parse_suite({
        "seed": 0, "rollouts": concurrency,
        "agents": [{"agent": MODEL, "api_base": api_base, "cache_dir": cache_dir, "client": client}],
        "scenarios": [{"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": horizon},
                       "seeds": [1]}],
    })


def sent_messages(run_dir) -> list[list[list[dict]]]:
    """Per episode, the messages of each decision, in order: what the bare loop replays."""
    import json

    from harness import load_run

    decisions = load_run(run_dir)[0].sort("task_id", "rollout", "t").collect()
    return [[json.loads(m) for m in part["messages"]]
            for _, part in decisions.group_by("task_id", "rollout", maintain_order=True)]


def bare(api_base: str, episodes: list[list[list[dict]]]) -> tuple[float, float]:
    import litellm

    async def worker(episode):
        for messages in episode:
            response = await litellm.acompletion(model=MODEL, api_base=api_base, api_key="no-key", messages=messages,
                                                 timeout=60, max_retries=0)
            assert "ANSWER:" in response.choices[0].message.content

    async def everything():
        await asyncio.gather(*(worker(e) for e in episodes))

    started, cpu = time.perf_counter(), time.process_time()
    asyncio.run(everything())
    return time.perf_counter() - started, time.process_time() - cpu


def through_harness(api_base: str, concurrency: int, directory, client: str = "litellm") -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    result = run_plan(plan(api_base, concurrency, str(directory / "cache"), client), directory / "run",
                      concurrency=concurrency)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert result.finished == concurrency and result.failed == 0
    return elapsed, cpu


@pytest.mark.parametrize("concurrency", [64, 256])
def test_llm_overhead(benchmark, api_base, tmp_path, concurrency):
    """PAIRS paired rounds, the order alternated (harness first, then bare first; benchmarks/_paired.py):
    a best-of-3 of each path mistook the machine's drift for overhead (+3.6% to +10.3% for the same
    code). The target is on the geometric mean of the rounds' time ratios."""
    counter = itertools.count()
    through_harness(api_base, 4, tmp_path / "warm")  # warm-up: litellm's lazy imports and clients
    first = tmp_path / f"h{next(counter)}"
    through_harness(api_base, concurrency, first)
    sent = sent_messages(first / "run")  # the same requests every run: the server's replies are scripted
    bare(api_base, sent)
    paths = {"harness": lambda: through_harness(api_base, concurrency, tmp_path / f"h{next(counter)}"),
             "bare": lambda: bare(api_base, sent)}
    bare_runs, harness_runs = [], []
    for round_ in range(PAIRS):
        pair = {name: paths[name]() for name in round_order(list(paths), round_)}
        harness_runs.append(pair["harness"])
        bare_runs.append(pair["bare"])
    ratios = paired_ratio([wall for wall, _ in harness_runs], [wall for wall, _ in bare_runs])
    overhead, low, high = (ratio - 1 for ratio in ratios)
    cpu_overhead = sum(c for _, c in harness_runs) / sum(c for _, c in bare_runs) - 1
    (bare_s, bare_cpu), (harness_s, harness_cpu) = min(bare_runs), min(harness_runs)
    decisions = concurrency * HORIZON
    benchmark.group = f"LLM decisions, concurrency {concurrency}, {LATENCY_S * 1000:.0f} ms server latency"
    benchmark.extra_info.update(rates(decisions, bare=(bare_s, bare_cpu), harness=(harness_s, harness_cpu)),
                                overhead=overhead, overhead_low=low, overhead_high=high, pairs=PAIRS)
    benchmark.pedantic(lambda: through_harness(api_base, concurrency, tmp_path / f"h{next(counter)}"),
                       rounds=1, iterations=1)
    print(f"\nconcurrency {concurrency}, {decisions} decisions, {PAIRS} paired rounds: bare litellm "
          f"{decisions / bare_s:,.0f} decisions/s ({1000 * bare_cpu / decisions:.2f} ms CPU each), harness "
          f"{decisions / harness_s:,.0f} decisions/s ({1000 * harness_cpu / decisions:.2f} ms CPU each); overhead "
          f"{overhead:+.1%} wall [95% CI {low:+.1%}, {high:+.1%}], {cpu_overhead:+.1%} CPU; per round "
          f"{', '.join(f'{h / b - 1:+.1%}' for (h, _), (b, _) in zip(harness_runs, bare_runs))} "
          f"(target <= {TARGET_OVERHEAD:.0%}; {load()})")
    assert overhead <= TARGET_OVERHEAD, f"harness overhead {overhead:.1%} > {TARGET_OVERHEAD:.0%}"


@pytest.mark.parametrize("concurrency", [64, 256])
def test_direct_client_against_litellm(benchmark, api_base, tmp_path, concurrency):
    """The same plan through the harness with each client, interleaved, best of ROUNDS."""
    counter = itertools.count()
    for client in ("litellm", "direct"):  # warm-up: lazy imports, connection pools
        through_harness(api_base, 4, tmp_path / f"warm-{client}", client)
    runs: dict[str, list[tuple[float, float]]] = {"litellm": [], "direct": []}
    for _ in range(ROUNDS):
        for client in runs:
            runs[client].append(through_harness(api_base, concurrency, tmp_path / f"h{next(counter)}", client))
    (litellm_s, litellm_cpu), (direct_s, direct_cpu) = min(runs["litellm"]), min(runs["direct"])
    decisions = concurrency * HORIZON
    speedup = litellm_s / direct_s
    benchmark.group = f"LLM decisions by client, concurrency {concurrency}, {LATENCY_S * 1000:.0f} ms server latency"
    benchmark.extra_info.update(rates(decisions, litellm=(litellm_s, litellm_cpu), direct=(direct_s, direct_cpu)),
                                direct_speed_over_litellm=speedup)
    benchmark.pedantic(lambda: through_harness(api_base, concurrency, tmp_path / f"h{next(counter)}", "direct"),
                       rounds=1, iterations=1)
    print(f"\nconcurrency {concurrency}, {decisions} decisions: harness on litellm {decisions / litellm_s:,.0f} "
          f"decisions/s ({1000 * litellm_cpu / decisions:.2f} ms CPU each), on the direct client "
          f"{decisions / direct_s:,.0f} decisions/s ({1000 * direct_cpu / decisions:.2f} ms CPU each): "
          f"{speedup:.1f}x (target >= {TARGET_DIRECT_SPEEDUP:g}x; {load()})")
    assert speedup >= TARGET_DIRECT_SPEEDUP, f"direct client {speedup:.1f}x litellm < {TARGET_DIRECT_SPEEDUP:g}x"


def rates(decisions: int, **paths: tuple[float, float]) -> dict[str, float]:
    """Decisions per second and CPU ms per decision of each path's (wall s, CPU s)."""
    info: dict[str, float] = {"decisions": decisions}
    for name, (seconds, cpu) in paths.items():
        info[f"{name}_decisions_per_s"] = decisions / seconds
        info[f"{name}_cpu_ms_per_decision"] = 1000 * cpu / decisions
    return info


def load() -> str:
    """The machine's load while measuring: ratios are side by side, absolute figures shift with it."""
    import os

    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
