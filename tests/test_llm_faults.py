"""Fault injection: 429 with Retry-After, 500, hangs past the timeout, malformed JSON, empty
messages and unparseable answers, each at a set rate. The run completes with every episode
accounted for (finished, or failed with a reason), nothing lost, and --resume finishes it."""

import asyncio
import time

import polars as pl
import pytest

from agents.llm import EndpointLimits, LLMClient, LLMSettings, ProviderError
from harness import load_run, parse_suite, run_plan
from harness.testing.openai_server import Faults, ScriptedServer, round_robin_policy

MESSAGES = [{"role": "user", "content": "There are 2 buttons: blue, green. The game lasts 3 rounds. Round 1 of 3."}]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REGRET_CACHE_DIR", str(tmp_path / "cache"))


def complete(server, **settings):
    client = LLMClient(LLMSettings(model="openai/rr", api_base=server.api_base, cache=False, **settings))

    async def go():
        try:
            return await client.complete(MESSAGES)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_429_waits_for_retry_after_then_gives_up_with_the_reason():
    with ScriptedServer(faults=Faults(rate_limit=1.0, retry_after=0.25)) as server:
        started = time.perf_counter()
        with pytest.raises(ProviderError, match=r"gave up after 3 call\(s\): RateLimitError"):
            complete(server, max_retries=2, backoff_base=0.001)
        elapsed = time.perf_counter() - started
    assert server.stats["rate_limit"] == 3
    assert elapsed >= 2 * 0.25  # two waits of Retry-After, not the 1 ms backoff


def test_a_hung_call_times_out_and_is_retried():
    with ScriptedServer(faults=Faults(hang=1.0, hang_s=5)) as server:
        started = time.perf_counter()
        with pytest.raises(ProviderError, match="Timeout"):
            complete(server, max_retries=1, timeout=0.3, backoff_base=0.001)
        assert time.perf_counter() - started < 3
    assert server.stats["hang"] == 2


@pytest.mark.parametrize("fault", ["server_error", "malformed"])
def test_server_errors_and_malformed_json_are_retried_until_they_pass(fault):
    # the fault draw is keyed by the request and how often it was seen: a rate of 0.5 passes eventually
    with ScriptedServer(round_robin_policy(), faults=Faults(**{fault: 0.5}), seed=1) as server:
        result = complete(server, max_retries=10, backoff_base=0.001)
    assert result.content.endswith("ANSWER: blue") and result.calls == server.stats["requests"]


def test_a_run_under_every_fault_accounts_for_every_episode(tmp_path):
    faults = Faults(rate_limit=0.08, server_error=0.08, hang=0.04, malformed=0.05, empty=0.05, garbage=0.05,
                    retry_after=0.05, hang_s=3)
    with ScriptedServer(round_robin_policy(), faults=faults, seed=4) as server:
        agent = {"agent": "openai/rr", "api_base": server.api_base, "max_retries": 1, "timeout": 0.4,
                 "backoff_base": 0.01, "cache": False}
        plan = parse_suite({
            "seed": 2, "rollouts": 4, "agents": [agent],
            "scenarios": [
                {"id": "bern", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 5}, "instances": 2},
                {"id": "exp", "family": "experts/full-info", "params": {"n_experts": 3, "horizon": 5}},
            ],
        })
        first = run_plan(plan, tmp_path / "run", concurrency=8)
        stats = dict(server.stats)
        for name in ("rate_limit", "server_error", "hang", "malformed", "empty", "garbage"):
            assert stats.get(name, 0) > 0, (name, stats)
        assert first.finished + first.failed == first.total == 12
        assert first.failed > 0, "the fault rates should make some episodes fail"
        decisions, episodes = load_run(tmp_path / "run")
        decisions, episodes = decisions.collect(), episodes.collect()
        # every planned episode has exactly one row: finished with all its decisions, or failed with a reason
        assert episodes.height == 12 and episodes.select("task_id", "rollout").n_unique() == 12
        finished = episodes.filter(pl.col("status") == "finished")
        failed = episodes.filter(pl.col("status") == "failed")
        assert finished.height == first.finished and failed.height == first.failed
        assert failed["error"].str.contains("gave up after 2 call").all()
        counts = decisions.group_by("task_id", "rollout").len()
        assert set(counts.join(finished, on=["task_id", "rollout"])["len"]) <= {5}
        assert counts.height == finished.height  # no decision rows from failed episodes
        # empty and garbage answers were re-asked: some decisions were repaired
        assert "repaired" in set(decisions["parse_status"])
        assert (decisions["attempts"] >= 1).all()
        # --resume retries the failed episodes until none is left
        for _ in range(5):
            if episodes.filter(pl.col("status") == "failed").height == 0:
                break
            run_plan(plan, tmp_path / "run", resume=True)
            episodes = load_run(tmp_path / "run")[1].collect()
    assert episodes.height == 12 and set(episodes["status"]) == {"finished"}
    decisions = load_run(tmp_path / "run")[0].collect()
    assert decisions.height == 12 * 5
    # faults never change what the model meant: every valid decision is round robin
    valid = decisions.filter(pl.col("parse_status") != "fallback")
    assert valid["action"].to_list() == [t % 3 for t in valid["t"].to_list()]


def test_errors_are_never_cached(tmp_path):
    with ScriptedServer(round_robin_policy(), faults=Faults(server_error=1.0)) as server:
        client = LLMClient(LLMSettings(model="openai/rr", api_base=server.api_base, max_retries=0,
                                       cache_dir=str(tmp_path / "c")))

        async def go():
            with pytest.raises(ProviderError):
                await client.complete(MESSAGES)
            server.faults = Faults()  # the provider recovers
            fresh = await client.complete(MESSAGES)
            again = await client.complete(MESSAGES)
            await client.aclose()
            return fresh, again

        fresh, again = asyncio.run(go())
    assert not fresh.cached and again.cached and again.content == fresh.content
    assert server.stats["requests"] == 2


def test_per_provider_concurrency_and_request_rate_limits():
    with ScriptedServer(round_robin_policy(), latency=0.05) as server:
        settings = dict(model="openai/rr", api_base=server.api_base, cache=False)
        limits = EndpointLimits()  # one run's: both agents call the same endpoint
        limited = LLMClient(LLMSettings(max_concurrency=2, **settings), limits)
        other = LLMClient(LLMSettings(**settings), limits)  # same endpoint: shares the limiter (strictest wins)

        async def go():
            await asyncio.gather(*(c.complete(MESSAGES, rollout=i) for i, c in enumerate([limited, other] * 5)))

        asyncio.run(go())
        assert server.stats["requests"] == 10 and server.stats["max_in_flight"] == 2
        paced = LLMClient(LLMSettings(rpm=600, **{**settings, "api_base": server.api_base.replace("127.0.0.1", "localhost")}))

        async def burst():
            started = time.perf_counter()
            await asyncio.gather(*(paced.complete(MESSAGES, rollout=i) for i in range(5)))
            return time.perf_counter() - started

        assert asyncio.run(burst()) >= 4 * 60 / 600 - 0.01  # 600 rpm: starts 0.1 s apart


def test_endpoint_limits_belong_to_one_run():
    """A strict limit in one run does not carry over to a later run in the same process."""
    from agents import AgentSpec, RunResources
    from agents.llm import llm_factory

    def limiter_of(max_concurrency):
        resources = RunResources()
        factory = llm_factory(AgentSpec("openai/rr", {"api_base": "http://127.0.0.1:9/v1", "cache": False,
                                                      "max_concurrency": max_concurrency}))
        factory.open(resources)
        agent = factory()
        limiter = agent.client.limits.limiter(agent.settings)
        asyncio.run(resources.aclose())
        return limiter.max_concurrency

    assert limiter_of(1) == 1 and limiter_of(64) == 64
