"""answer_format (text / json / tool), streaming, exact raw output and shuffle_options, through litellm
against the scripted OpenAI-compatible server on 127.0.0.1 (which enforces schemas and streams as
real servers do)."""

import asyncio
import json

import polars as pl
import pytest

from agents import resolve
from agents.llm import LLMClient, LLMSettings, ProviderError
from harness import load_run, parse_suite, run_plan
from harness.metrics import leaderboard
from harness.testing.openai_server import ScriptedServer, fixed_policy, round_robin_policy, uniform_vector_policy
from scenarios.framing import format_number, get_framing

ROUND_ROBIN, FIRST, UNIFORM = round_robin_policy(), fixed_policy(0), uniform_vector_policy()


def dispatch(messages, request):
    name = request["model"]
    if name.endswith("first"):
        return FIRST(messages, request)
    if name.endswith("thinker"):
        return {"content": "<thinking>Red was never tried.</thinking>\n\n  ANSWER: red  \n"}
    if name.endswith("uniform"):
        return UNIFORM(messages, request)
    return ROUND_ROBIN(messages, request)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REGRET_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def server():
    with ScriptedServer(dispatch) as running:
        yield running


def llm(model, server, **settings):
    return {"agent": model if "/" in model else f"openai/{model}", "api_base": server.api_base,
            "backoff_base": 0.01, **settings}


def suite(agents, horizon=5, rollouts=2, instances=2, experts=True, bandit=True):
    scenarios = []
    if bandit:
        scenarios.append({"id": "bern", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": horizon},
                          "instances": instances})
    if experts:
        scenarios.append({"id": "exp", "family": "experts/full-info", "params": {"n_experts": 3, "horizon": horizon},
                          "framing": "slot-machines"})
    return parse_suite({"seed": 5, "rollouts": rollouts, "agents": agents, "scenarios": scenarios})


def frames(directory):
    decisions, episodes = load_run(directory)
    return decisions.sort("agent", "task_id", "rollout", "t").collect(), episodes.collect()


@pytest.mark.parametrize("answer_format", ["json", "tool"])
@pytest.mark.parametrize("prefix", ["openai", "hosted_vllm"])
def test_structured_answers_reach_the_server_and_are_read(tmp_path, server, answer_format, prefix):
    result = run_plan(suite([llm(f"{prefix}/rr", server, answer_format=answer_format)]), tmp_path / "run")
    assert result.failed == 0
    decisions, _ = frames(tmp_path / "run")
    rr = decisions.filter(pl.col("agent") == f"{prefix}/rr")
    bandit_rr = rr.filter(pl.col("family") == "bandit/bernoulli")
    assert set(rr["parse_status"]) == {"ok"}
    assert bandit_rr["action"].to_list() == [t % 3 for t in bandit_rr["t"].to_list()]
    # experts: round robin as a one-hot distribution; uniform as the uniform distribution
    rr_experts = rr.filter(pl.col("family") == "experts/full-info")
    assert [json.loads(p).index(1.0) for p in rr_experts["policy"]] == [t % 3 for t in rr_experts["t"]]
    uniform_agent = {**llm(f"{prefix}/uniform", server, answer_format=answer_format), "label": "u"}
    assert run_plan(suite([uniform_agent], bandit=False), tmp_path / "u").failed == 0
    uniform, _ = frames(tmp_path / "u")
    assert set(uniform["parse_status"]) == {"ok"}
    assert all(json.loads(p) == pytest.approx([1 / 3] * 3) for p in uniform["policy"])
    assert set(rr["reasoning"]) == {"I will try every option in turn."}
    assert {json.loads(i)["answer_format"] for i in rr["info"]} == {answer_format}
    # what the server saw: the enum is the option names as listed; the prompt shows the same object
    requests = [r for r in server.requests if r["model"] == "rr"]
    assert len(requests) == rr.height
    for request in requests:
        prompt = request["messages"][-1]["content"]
        if answer_format == "json":
            schema = request["response_format"]["json_schema"]["schema"]
            assert request["response_format"]["json_schema"]["strict"] is True and "tools" not in request
            assert "Reply with one JSON object only" in prompt
        else:
            (tool,) = request["tools"]
            schema = tool["function"]["parameters"]
            assert request["tool_choice"] == {"type": "function", "function": {"name": "choose"}}
            assert "calling the function choose" in prompt
        assert "ANSWER:" not in prompt
        props = schema["properties"]
        assert list(props) == ["reasoning", "answer"] or list(props) == ["reasoning", "probabilities"]
        if "answer" in props:
            assert props["answer"]["enum"] == ["blue", "green", "red"]
            assert '{"reasoning": "<brief reasoning>", "answer": "<one of the names>"}' in prompt
        else:
            assert list(props["probabilities"]["properties"]) == ["A", "B", "C"]
            assert '"probabilities": {"A": <p>, "B": <p>, "C": <p>}' in prompt


def test_structured_reasoning_off_drops_the_reasoning_field(tmp_path, server):
    run_plan(suite([llm("rr", server, answer_format="json", reasoning=False)], experts=False, rollouts=1),
             tmp_path / "run")
    schema = server.requests[0]["response_format"]["json_schema"]["schema"]
    assert list(schema["properties"]) == ["answer"] and schema["required"] == ["answer"]
    decisions, _ = frames(tmp_path / "run")
    assert set(decisions["parse_status"]) == {"ok"}
    assert json.loads(decisions["raw_output"][0]) == {"answer": "blue"}


def test_a_model_litellm_says_cannot_do_it_is_refused_with_a_clear_message():
    old = {"agent": "openai/gpt-3.5-turbo-0301", "answer_format": "json"}
    with pytest.raises(ValueError, match=r"answer_format = 'json' needs structured output.*supports_response_schema"
                                         r".*assume_capable = true"):
        resolve(parse_suite({"agents": [old], "scenarios": [{"family": "bandit/bernoulli"}]}).agents[0])
    with pytest.raises(ValueError, match="function calling"):
        LLMClient(LLMSettings(model="openai/gpt-3.5-turbo-0301", answer_format="tool"))
    LLMClient(LLMSettings(model="openai/gpt-3.5-turbo-0301", answer_format="json", assume_capable=True))
    LLMClient(LLMSettings(model="openai/gpt-4o-mini", answer_format="json"))  # listed as capable
    LLMClient(LLMSettings(model="openai/gpt-4o-mini", answer_format="tool"))
    # self-hosted: litellm cannot know what the local server was started with, so it is assumed capable
    LLMClient(LLMSettings(model="openai/smollm2", api_base="http://127.0.0.1:9/v1", answer_format="json"))
    LLMClient(LLMSettings(model="hosted_vllm/anything", answer_format="tool"))


def test_a_server_without_structured_output_fails_clearly_and_is_not_retried():
    with ScriptedServer(round_robin_policy(), structured=False) as server:
        client = LLMClient(LLMSettings(model="openai/x", api_base=server.api_base, answer_format="json", cache=False))
        schema = {"response_format": {"type": "json_schema", "json_schema": {"name": "d", "schema": {"type": "object"}}}}

        async def go():
            try:
                await client.complete([{"role": "user", "content": "hi"}], answer=schema)
            finally:
                await client.aclose()

        with pytest.raises(ProviderError, match=r"not retryable, after 1 call\(s\).*json_schema is not supported"):
            asyncio.run(go())
    assert server.stats["requests"] == 1


@pytest.mark.parametrize("answer_format", ["text", "tool"])
def test_streaming_assembles_chunks_and_takes_usage_from_the_final_chunk(tmp_path, answer_format):
    with ScriptedServer(dispatch, stream_only=True) as server:
        run_plan(suite([llm("rr", server, stream=True, answer_format=answer_format)], rollouts=1), tmp_path / "s")
        streamed, episodes = frames(tmp_path / "s")
        assert set(streamed["parse_status"]) == {"ok"} and (episodes["status"] == "finished").all()
        assert all(r["stream"] is True and r["stream_options"] == {"include_usage": True} for r in server.requests)
    with ScriptedServer(dispatch) as server:  # the same run, not streamed: identical answers and usage
        run_plan(suite([llm("rr", server, answer_format=answer_format, cache=False)], rollouts=1), tmp_path / "p")
        plain, _ = frames(tmp_path / "p")
    columns = ["action", "policy", "raw_output", "reasoning", "prompt_tokens", "completion_tokens"]
    assert streamed.select(columns).equals(plain.select(columns))
    assert (streamed["completion_tokens"] > 0).all()


def test_a_stream_only_server_without_stream_fails_once_with_a_hint(tmp_path):
    with ScriptedServer(dispatch, stream_only=True) as server:
        result = run_plan(suite([llm("rr", server)], rollouts=1, instances=1, experts=False), tmp_path / "run")
    assert result.failed == 1 and server.stats["requests"] == 1  # a 400 is not retried
    assert "set stream = true" in result.errors[0]


def test_extra_stream_and_schema_are_pointed_at_their_settings():
    with pytest.raises(ValueError, match=r"extra.stream: set it with stream = true"):
        LLMSettings(model="openai/x", extra={"stream": True})
    with pytest.raises(ValueError, match=r"extra.tools: set it with answer_format = 'tool'"):
        LLMSettings(model="openai/x", extra={"tools": []})
    with pytest.raises(ValueError, match="answer_format must be one of text, json, tool"):
        LLMSettings(model="openai/x", answer_format="xml")


@pytest.mark.parametrize("stream", [False, True])
def test_raw_output_is_the_reply_exactly_as_returned(tmp_path, server, stream):
    """litellm moves a leading <think> block into reasoning_content; the store keeps the exact reply."""
    run_plan(suite([llm("thinker", server, stream=stream)], rollouts=1, instances=1, experts=False), tmp_path / "run")
    decisions, _ = frames(tmp_path / "run")
    assert set(decisions["raw_output"]) == {"<thinking>Red was never tried.</thinking>\n\n  ANSWER: red  \n"}
    assert set(decisions["reasoning"]) == {"Red was never tried."}
    assert set(decisions["action"]) == {2}


def test_shuffled_options_are_seeded_recorded_and_mapped_back(tmp_path, server):
    """A model that always takes the first listed option: with shuffling, its action follows the
    recorded order; the feedback it reads names the option it picked; the leaderboard shows the bias."""
    agents = [{**llm("first", server, shuffle_options=True), "label": "shuffled"},
              {**llm("first", server), "label": "plain"}]
    plan = suite(agents, horizon=4, rollouts=4, instances=2)
    run_plan(plan, tmp_path / "a")
    decisions, _ = frames(tmp_path / "a")
    shuffled = decisions.filter(pl.col("agent") == "shuffled")
    infos = [json.loads(i) for i in shuffled["info"]]
    orders = {(row["task_id"], row["rollout"]): tuple(info["option_order"]) for row, info in
              zip(shuffled.iter_rows(named=True), infos)}
    assert len(set(orders.values())) > 1  # different episodes, different orders
    for row, info in zip(shuffled.iter_rows(named=True), infos):
        order = info["option_order"]
        assert sorted(order) == [0, 1, 2] and order == list(orders[(row["task_id"], row["rollout"])])
        assert info["position"] == 0
        if row["policy"] is None:
            assert row["action"] == order[0]  # listed first, in the scenario's numbering
        else:
            assert json.loads(row["policy"])[order[0]] == 1.0
    # the model read its own pick back under the name it chose (round 2 shows round 1's feedback)
    bandit = shuffled.filter((pl.col("family") == "bandit/bernoulli") & (pl.col("t") == 1))
    for row in bandit.iter_rows(named=True):
        prompt = json.loads(row["messages"])[-1]["content"]
        assert "Round 1: you pressed the blue button and received reward" in prompt
    plain = decisions.filter((pl.col("agent") == "plain") & (pl.col("family") == "bandit/bernoulli"))
    assert set(plain["action"]) == {0} and all("option_order" not in json.loads(i) for i in plain["info"])
    # seeded: the same plan gives the same orders
    run_plan(plan, tmp_path / "b")
    again, _ = frames(tmp_path / "b")
    assert [json.loads(i)["option_order"] for i in again.filter(pl.col("agent") == "shuffled")["info"]] == \
        [info["option_order"] for info in infos]
    board = leaderboard(*load_run(tmp_path / "a"))
    bias = {(r["agent"], r["scenario_id"]): (r["position_bias"], r["position_shares"]) for r in board.iter_rows(named=True)}
    assert bias[("shuffled", "bern")] == (3.0, "100/0/0") and bias[("plain", "bern")] == (3.0, "100/0/0")
    from harness.report import leaderboard_markdown

    assert "| position bias | picks by position % |" in leaderboard_markdown(board)


def test_shuffled_experts_feedback_lists_losses_in_the_shown_order(tmp_path, server):
    plan = suite([llm("uniform", server, shuffle_options=True)], horizon=3, rollouts=3, bandit=False)
    run_plan(plan, tmp_path / "run")
    decisions, _ = frames(tmp_path / "run")
    experts = decisions.filter(pl.col("family") == "experts/full-info")
    slots = get_framing("slot-machines")
    for row in experts.filter(pl.col("t") == 1).iter_rows(named=True):
        order = json.loads(row["info"])["option_order"]
        first_round = experts.filter((pl.col("rollout") == row["rollout"]) & (pl.col("t") == 0)).row(0, named=True)
        losses = json.loads(first_round["feedback"])["losses"]
        listed = ", ".join(f"{slots.option_name(j)}: {format_number(losses[order[j]])}" for j in range(3))
        assert f"Loss of each slot machine: {listed}." in json.loads(row["messages"])[-1]["content"]


def test_options_shuffled_per_round_tell_the_history_under_each_rounds_names(tmp_path, server):
    """shuffle_options = 'round': a fresh seeded order every round, recorded per decision; the
    summary counts each option under the name it has in this round, so a first-listed picker's
    record follows its picks through the relabelling."""
    plan = suite([llm("first", server, shuffle_options="round", history="summary")], horizon=8, rollouts=2,
                 instances=1, experts=False)
    run_plan(plan, tmp_path / "run")
    decisions, _ = frames(tmp_path / "run")
    buttons = get_framing("buttons")
    for (_, rollout), episode in decisions.group_by("task_id", "rollout", maintain_order=True):
        orders = [json.loads(i)["option_order"] for i in episode["info"]]
        assert len({tuple(o) for o in orders}) > 1  # the order changes within the episode
        assert episode["action"].to_list() == [o[0] for o in orders]  # always the first listed, mapped back
        counts = [0, 0, 0]
        for row, order in zip(episode.iter_rows(named=True), orders):
            prompt = json.loads(row["messages"])[-1]["content"]
            for j in range(3 if row["t"] else 0):  # round 1 has no history yet
                times = counts[order[j]]
                assert f"- {buttons.option_name(j)}: chosen {times} time{'' if times == 1 else 's'}" in prompt
            counts[row["action"]] += 1
    again = tmp_path / "again"
    run_plan(plan, again)
    orders = [json.loads(i)["option_order"] for i in decisions["info"]]
    assert [json.loads(i)["option_order"] for i in frames(again)[0]["info"]] == orders  # seeded


def test_round_shuffling_with_a_multi_turn_chat_is_refused():
    from agents.llm import LLMSettings
    from scenarios import ConfigError

    with pytest.raises(ConfigError, match="multi_turn"):
        LLMSettings(model="openai/x", shuffle_options="round", multi_turn=True)
    with pytest.raises(ConfigError, match="shuffle_options must be"):
        LLMSettings(model="openai/x", shuffle_options="rounds")


def test_the_cache_key_includes_the_task(tmp_path, server):
    """Two tasks with identical round-1 prompts: each gets its own reply, not a replay of the other's."""
    plan = suite([llm("rr", server, temperature=1.0)], horizon=2, rollouts=1, instances=3, experts=False)
    run_plan(plan, tmp_path / "run", concurrency=1)
    first_round = [r for r in server.requests if "Round 1 of 2" in r["messages"][-1]["content"]]
    assert len({json.dumps(r["messages"]) for r in first_round}) == 1  # identical prompts ...
    assert len(first_round) == 3  # ... each sent: no task replays another task's sample
    run_plan(plan, tmp_path / "again", concurrency=1)
    assert server.stats["requests"] == 6  # a re-run of the same tasks is still free


def test_errors_are_classified_retryable_only_when_retrying_can_help():
    import httpx
    import litellm

    from agents.llm._client import MalformedResponse, is_retryable

    # the error a stream handed to code expecting a response raised: a bug, never worth a paid retry
    assert not is_retryable(AttributeError("'CustomStreamWrapper' object has no attribute 'choices'"))
    assert not is_retryable(KeyError("choices"))
    assert not is_retryable(litellm.BadRequestError("this server only streams", model="x", llm_provider="openai"))
    assert not is_retryable(litellm.AuthenticationError("bad key", model="x", llm_provider="openai"))
    assert is_retryable(litellm.RateLimitError("slow down", model="x", llm_provider="openai"))
    assert is_retryable(litellm.InternalServerError("oops", model="x", llm_provider="openai"))
    assert is_retryable(litellm.Timeout("late", model="x", llm_provider="openai"))
    assert is_retryable(httpx.RemoteProtocolError("peer closed the stream"))
    assert is_retryable(MalformedResponse("no choices"))


@pytest.mark.parametrize("client_kind", ["litellm", "direct"])
def test_a_bug_in_reading_a_reply_is_not_retried(monkeypatch, client_kind):
    import agents.llm._transport as transport_module

    def broken(response, message=None):
        raise AttributeError("'CustomStreamWrapper' object has no attribute 'choices'")

    monkeypatch.setattr(transport_module, "read_response", broken)
    with ScriptedServer(lambda messages, request: "ANSWER: blue") as server:
        client = LLMClient(LLMSettings(model="openai/x", api_base=server.api_base, cache=False, backoff_base=0.001,
                                       client=client_kind))

        async def go():
            try:
                await client.complete([{"role": "user", "content": "hi"}])
            finally:
                await client.aclose()

        with pytest.raises(ProviderError, match=r"not retryable, after 1 call\(s\): AttributeError"):
            asyncio.run(go())
    assert server.stats["requests"] == 1  # one billed reply, not max_retries + 1 of them
