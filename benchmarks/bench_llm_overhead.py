"""Decisions per second of LLM agents through the harness, beside bare litellm calls.

A scripted OpenAI-compatible server (`harness.testing.openai_server`, in its own process so its
CPU does not share our GIL) answers every request after a fixed 50 ms. At concurrency C:

- bare: `asyncio.gather` of C workers, each awaiting `litellm.acompletion` in a loop (no prompt
  building, parsing, cache, scenario or store);
- harness: `run_plan` with one LLM agent, C episodes in flight (`concurrency=C`), response cache
  on (a fresh directory, so every call reaches the server and is written to the cache).

Both make the same number of calls; the ratio bare_time / harness_time is the harness's speed
relative to bare litellm. Target: overhead at most 15%, i.e. ratio >= 1 / 1.15 = 0.87.

    .venv/bin/python -m pytest benchmarks/bench_llm_overhead.py --benchmark-only -s
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time

import pytest

from harness import parse_suite, run_plan

LATENCY_S = 0.05
DECISIONS = 1024  # per measurement, at every concurrency
TARGET_OVERHEAD = 0.15
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


def plan(api_base: str, concurrency: int, cache_dir: str):
    horizon = DECISIONS // concurrency
    return parse_suite({
        "seed": 0, "rollouts": concurrency,
        "agents": [{"agent": MODEL, "api_base": api_base, "cache_dir": cache_dir}],
        "scenarios": [{"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": horizon},
                       "seeds": [1]}],
    })


def first_prompt(api_base: str) -> list[dict]:
    """The harness's own round-1 messages, so both paths send requests of the same shape."""
    from agents import EpisodeInfo
    from agents.llm import EpisodePrompts
    from scenarios import make
    from scenarios.framing import get_framing

    env = make("bandit/bernoulli", {"n_arms": 3, "horizon": 8}, 1)
    framing = get_framing("buttons")
    info = EpisodeInfo(env.family, env.kind, env.feedback, env.n_actions, env.horizon, False, "b#1", "b", 0, 0,
                       framing="buttons", description=framing.describe(env))
    return EpisodePrompts(info, framing).messages(0)


def bare(api_base: str, concurrency: int, messages: list[dict]) -> float:
    import litellm

    calls = DECISIONS // concurrency

    async def worker():
        for _ in range(calls):
            response = await litellm.acompletion(model=MODEL, api_base=api_base, api_key="no-key", messages=messages,
                                                 timeout=60, max_retries=0)
            assert "ANSWER:" in response.choices[0].message.content

    async def everything():
        await asyncio.gather(*(worker() for _ in range(concurrency)))

    started = time.perf_counter()
    asyncio.run(everything())
    return time.perf_counter() - started


def through_harness(api_base: str, concurrency: int, directory) -> float:
    started = time.perf_counter()
    result = run_plan(plan(api_base, concurrency, str(directory / "cache")), directory / "run", concurrency=concurrency)
    elapsed = time.perf_counter() - started
    assert result.finished == concurrency and result.failed == 0
    return elapsed


@pytest.mark.parametrize("concurrency", [64, 256])
def test_llm_overhead(benchmark, api_base, tmp_path, concurrency):
    messages = first_prompt(api_base)
    counter = itertools.count()
    bare(api_base, 4, messages)  # warm-up: litellm's lazy imports and clients
    through_harness(api_base, 4, tmp_path / "warm")
    bare_times, harness_times = [], []
    for _ in range(2):  # interleaved, best of two: both paths see the same machine load
        bare_times.append(bare(api_base, concurrency, messages))
        harness_times.append(through_harness(api_base, concurrency, tmp_path / f"h{next(counter)}"))
    best_bare, best_harness = min(bare_times), min(harness_times)
    ratio = best_bare / best_harness
    benchmark.group = f"LLM decisions, concurrency {concurrency}, {LATENCY_S * 1000:.0f} ms server latency"
    benchmark.extra_info.update({
        "decisions": DECISIONS, "bare_decisions_per_s": DECISIONS / best_bare,
        "harness_decisions_per_s": DECISIONS / best_harness, "harness_speed_over_bare": ratio,
    })
    benchmark.pedantic(lambda: through_harness(api_base, concurrency, tmp_path / f"h{next(counter)}"),
                       rounds=1, iterations=1)
    print(f"\nconcurrency {concurrency}: bare litellm {DECISIONS / best_bare:,.0f} decisions/s, "
          f"harness {DECISIONS / best_harness:,.0f} decisions/s, harness/bare speed = {ratio:.3f} "
          f"(overhead {1 / ratio - 1:+.1%}; target <= {TARGET_OVERHEAD:.0%})")
    assert 1 / ratio - 1 <= TARGET_OVERHEAD, f"harness overhead {1 / ratio - 1:.1%} > {TARGET_OVERHEAD:.0%}"
