"""Cost accounting through litellm against the scripted server: failed and partial episodes keep
what they spent, the cap counts every attempt (resumes included) and is hard at any concurrency."""

import polars as pl
import pytest

from agents.llm import LLMSettings
from harness import RunStore, load_run, parse_suite, run_plan
from harness.testing.openai_server import ScriptedServer, prompt_round, round_robin_policy

PRICE = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
ROUND_ROBIN = round_robin_policy()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REGRET_CACHE_DIR", str(tmp_path / "cache"))


def plan_for(server, rollouts=2, instances=1, horizon=8, **settings):
    agent = {"agent": "openai/priced", "api_base": server.api_base, "cache": False, "max_tokens": 30,
             "backoff_base": 0.01, **PRICE, **settings}
    return parse_suite({"seed": 3, "rollouts": rollouts, "agents": [agent], "scenarios": [
        {"family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": horizon}, "instances": instances}]})


def dies_after_five_rounds(messages, request):
    t, _ = prompt_round(messages)
    if t > 5:
        raise RuntimeError("context window exceeded")  # the server answers 400: not retryable
    return ROUND_ROBIN(messages, request)


def test_a_failed_episode_keeps_its_tokens_and_cost_and_each_resume_counts_again(tmp_path):
    with ScriptedServer(dies_after_five_rounds) as server:
        plan = plan_for(server, rollouts=1)
        result = run_plan(plan, tmp_path / "run")
        assert result.failed == 1 and server.stats["requests"] == 6
        _, episodes = load_run(tmp_path / "run")
        (row,) = episodes.collect().to_dicts()
        assert row["status"] == "failed" and "not retryable" in row["error"]
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0 and row["attempts"] == 6
        expected = row["prompt_tokens"] * 1e-6 + row["completion_tokens"] * 2e-6
        assert row["cost"] == pytest.approx(expected) and row["cost"] > 0
        assert result.spent == pytest.approx(expected)
        again = run_plan(plan, tmp_path / "run", resume=True)  # the failed attempt is replaced ...
        with RunStore(tmp_path / "run", create=False) as store:
            assert store.total_cost() == pytest.approx(expected)
            assert store.total_spent() == pytest.approx(2 * expected)  # ... but what it cost is not forgotten
        assert again.spent == pytest.approx(2 * expected)
        # a cap below what was already spent starts nothing
        capped = run_plan(plan, tmp_path / "run", resume=True, max_cost=1.5 * expected)
        assert capped.stopped and server.stats["requests"] == 12


@pytest.mark.parametrize("concurrency", [8, 64])
def test_the_cost_cap_is_hard_at_any_concurrency(tmp_path, concurrency):
    cap = 0.004
    with ScriptedServer(ROUND_ROBIN, latency=0.02) as server:
        plan = plan_for(server, rollouts=20, instances=4)
        result = run_plan(plan, tmp_path / "run", concurrency=concurrency, max_cost=cap)
    _, episodes = load_run(tmp_path / "run")
    episodes = episodes.collect()
    spent = episodes["cost"].sum()
    assert result.stopped and "cost limit" in result.stopped
    assert 0 < spent <= cap and result.spent == pytest.approx(spent)
    capped = episodes.filter(pl.col("error").str.contains("CostCapReached"))
    assert capped.height > 0 and (capped["status"] == "failed").all()
    # every episode is accounted for: finished, failed by the cap, or not started
    assert episodes.height == result.finished + result.failed and result.failed >= capped.height


def test_a_priced_model_without_a_completion_limit_cannot_be_capped(tmp_path):
    with ScriptedServer(ROUND_ROBIN) as server:
        plan = plan_for(server, rollouts=1, max_tokens=None)
        result = run_plan(plan, tmp_path / "run", max_cost=1.0)
    assert result.failed == 1 and "a cost cap needs max_tokens" in result.errors[0]
    assert LLMSettings(model="openai/x").max_tokens is None
