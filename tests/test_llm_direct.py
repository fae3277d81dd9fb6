"""The direct client (agents.llm._transport.DirectTransport) against litellm, on one scripted server.

The same plan run through `client = "litellm"` and `client = "direct"` must store the same
decisions and episodes (every column but the measured latency), for free-text, JSON-schema,
tool-call and streamed answers, re-asks after invalid answers, multi-turn chats and priced calls.
"""

import polars as pl
import pytest

from agents.llm import LLMSettings
from agents.llm._transport import DirectTransport, uses_direct
from harness import load_run, parse_suite, run_plan
from harness.testing.openai_server import Faults, ScriptedServer, erring_policy, round_robin_policy
from scenarios import ConfigError

ROUND_ROBIN = round_robin_policy()
ERRING = erring_policy(ROUND_ROBIN, rate=0.4, seed=5)


def dispatch(messages, request):
    return (ERRING if request["model"].endswith("erring") else ROUND_ROBIN)(messages, request)


def agents(api_base, client):
    base = {"api_base": api_base, "client": client, "cache": False, "backoff_base": 0.001}
    return [
        {"agent": "openai/rr", "label": "text", "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6, **base},
        {"agent": "hosted_vllm/rr", "label": "json", "answer_format": "json", "temperature": 0.5, "seed": 3, **base},
        {"agent": "openai/rr", "label": "tool", "answer_format": "tool", "max_tokens": 64, **base},
        {"agent": "openai/rr", "label": "stream", "stream": True, "answer_format": "json", **base},
        {"agent": "openai/erring", "label": "erring", "multi_turn": True, "shuffle_options": True, **base},
    ]


def plan(api_base, client):
    return parse_suite({
        "seed": 4, "rollouts": 2, "agents": agents(api_base, client),
        "scenarios": [
            {"id": "bern", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 5}, "instances": 2},
            {"id": "exp", "family": "experts/full-info", "params": {"n_experts": 3, "horizon": 4}},
        ],
    })


def tables(directory):
    decisions, episodes = load_run(directory)
    return (decisions.drop("run", "latency_s").sort("agent", "task_id", "rollout", "t").collect(),
            episodes.drop("run", "latency_s").sort("agent", "task_id", "rollout").collect())


def test_both_clients_store_identical_records(tmp_path):
    with ScriptedServer(dispatch) as server:
        runs = {}
        for client in ("litellm", "direct"):
            result = run_plan(plan(server.api_base, client), tmp_path / client, concurrency=4)
            assert result.failed == 0 and result.finished == result.total
            runs[client] = tables(tmp_path / client)
        bodies = server.requests
    (decisions, episodes), (direct_decisions, direct_episodes) = runs["litellm"], runs["direct"]
    assert decisions.equals(direct_decisions, null_equal=True)
    assert episodes.equals(direct_episodes, null_equal=True)
    # the comparison covers what it claims: every answer format, re-asks, fallbacks, prices
    assert set(decisions["parse_status"]) >= {"ok", "repaired"} and decisions["cost"].sum() > 0
    assert {"json_schema"} <= {(b.get("response_format") or {}).get("type") for b in bodies}
    assert any(b.get("tools") for b in bodies) and any(b.get("stream") for b in bodies)
    # the same request bodies reached the server (key order aside), in the same number
    half = len(bodies) // 2
    assert len(bodies) == 2 * half
    assert sorted(map(repr, map(sorted_items, bodies[:half]))) == sorted(map(repr, map(sorted_items, bodies[half:])))


def sorted_items(body):
    return sorted(body.items())


def test_auto_picks_direct_only_for_openai_compatible_models_at_a_loopback_address():
    assert uses_direct("openai/x", "http://127.0.0.1:8000/v1", "auto")
    assert uses_direct("hosted_vllm/org/x", "http://localhost:8000/v1", "auto")
    assert not uses_direct("openai/gpt-4o-mini", None, "auto")  # the provider itself: litellm
    assert not uses_direct("openai/x", "http://10.1.2.3:8000/v1", "auto")  # not loopback: litellm unless asked
    assert uses_direct("openai/x", "http://10.1.2.3:8000/v1", "direct")
    assert not uses_direct("ollama/x", "http://127.0.0.1:11434", "auto")
    assert not uses_direct("openai/x", "http://127.0.0.1:8000/v1", "litellm")
    with pytest.raises(ConfigError, match="client 'direct' speaks the OpenAI chat API"):
        LLMSettings(model="anthropic/claude-x", client="direct")
    with pytest.raises(ConfigError, match="client 'direct' needs an api_base"):
        LLMSettings(model="openai/x", client="direct")
    with pytest.raises(ConfigError, match="client must be one of auto, litellm, direct"):
        LLMSettings(model="openai/x", client="fast")


def test_the_direct_body_is_what_litellm_sends():
    call = {"model": "hosted_vllm/org/m", "api_base": "http://127.0.0.1:1/v1", "api_key": "no-key", "timeout": 5,
            "max_retries": 0, "num_retries": 0, "drop_params": True, "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.2, "top_p": 0.9, "extra_body": {"min_p": 0.1}, "extra_headers": {"X-Trace": "1"}}
    assert DirectTransport.body_of(call) == {"model": "org/m", "messages": [{"role": "user", "content": "hi"}],
                                             "temperature": 0.2, "top_p": 0.9, "min_p": 0.1}


def test_faults_are_retried_through_the_direct_client_and_the_run_completes(tmp_path):
    faults = Faults(rate_limit=0.2, server_error=0.1, malformed=0.1, retry_after=0.01)
    with ScriptedServer(ROUND_ROBIN, faults=faults, seed=2) as server:
        suite = {"seed": 1, "rollouts": 2,
                 "agents": [{"agent": "openai/rr", "api_base": server.api_base, "client": "direct", "cache": False,
                             "backoff_base": 0.001, "max_retries": 10}],
                 "scenarios": [{"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 2, "horizon": 6}}]}
        result = run_plan(parse_suite(suite), tmp_path / "run")
        stats = server.stats
    assert result.failed == 0 and result.finished == 2
    assert stats["rate_limit"] + stats["server_error"] + stats["malformed"] > 0  # faults really happened
    decisions, _ = tables(tmp_path / "run")
    assert decisions["attempts"].sum() == stats["requests"]  # every call, retries included, recorded
    assert (decisions["parse_status"] == "ok").all() and decisions.filter(pl.col("attempts") > 1).height > 0
