"""The LLM agent's prompts: the compiled templates render exactly what langchain-core renders."""

from __future__ import annotations

import pytest

from agents import EpisodeInfo
from agents.llm import _prompts
from agents.llm._prompts import EpisodePrompts, OptionOrders, compile_template, render
from scenarios import make
from scenarios.framing import get_framing

TRICKY = "braces {stay} {{literal}}, a %s, \\n and é 🙂"


def _langchain(template, values):
    return [{"role": _prompts._ROLES[m.type], "content": m.content} for m in template.format_messages(**values)]


def _episode_values(monkeypatch, family, params, *, multi_turn, history, orders, system=None, rounds=6):
    """Every set of values one episode's prompts are rendered from, with the messages they gave."""
    seen = []

    def recording(template, **values):
        messages = render(template, **values)
        seen.append((template, values, messages))
        return messages

    monkeypatch.setattr(_prompts, "render", recording)
    env = make(family, params, 3)
    framing = get_framing("buttons")
    info = EpisodeInfo(env.family, env.kind, env.feedback, env.n_actions, env.horizon, env.accepts_policy, "x#3",
                       "x", 0, 7, description=framing.describe(env) + "\n" + TRICKY,
                       context_dim=getattr(env, "context_dim", 0))
    prompts = EpisodePrompts(info, framing, history=history, multi_turn=multi_turn, system_prompt=system,
                             orders=OptionOrders(env.n_actions, 11, orders))
    observation = env.reset(5)
    for t in range(rounds):
        sent = prompts.messages(t, observation.context)
        action = t % env.n_actions
        step = env.step([1.0 / env.n_actions] * env.n_actions if env.kind == "experts" and t % 2 else action)
        policy = tuple([1.0 / env.n_actions] * env.n_actions) if env.kind == "experts" and t % 2 else None
        prompts.record(t, None if policy else action, policy, dict(step.feedback), sent,
                       f"<thinking>{TRICKY}</thinking> ANSWER: {{x}} {t}")
        observation = step.observation
    return seen


@pytest.mark.parametrize("family, params", [
    ("bandit/bernoulli", {"n_arms": 3, "horizon": 8}),
    ("contextual/linear", {"n_arms": 3, "horizon": 8, "dim": 2}),
    ("experts/full-info", {"n_experts": 3, "horizon": 8}),
])
@pytest.mark.parametrize("multi_turn, history, orders", [
    (False, "full", None), (False, "summary", "round"), (True, "full", "episode"), (True, "summary", None),
])
def test_compiled_templates_render_what_langchain_renders(monkeypatch, family, params, multi_turn, history, orders):
    seen = _episode_values(monkeypatch, family, params, multi_turn=multi_turn, history=history, orders=orders,
                           system=None if history == "full" else "System {with} braces " + TRICKY)
    single, multi = _prompts._templates()
    assert len(seen) == 6
    for template, values, messages in seen:
        langchain = single if template == _prompts._compiled()[0] else multi
        assert messages == _langchain(langchain, values)
    assert any("{stay}" in m["content"] for _, _, messages in seen for m in messages)  # braces were not formatted
    if multi_turn:
        assert [m["role"] for m in seen[-1][2]] == ["system"] + ["user", "assistant"] * 5 + ["user"]


def test_compile_template_refuses_what_it_cannot_render_exactly():
    from langchain_core.prompts import ChatPromptTemplate

    with pytest.raises(ValueError, match="f-string"):
        compile_template(ChatPromptTemplate.from_messages([("human", "{{ x }}")], template_format="mustache"))
    with pytest.raises(ValueError, match="partial"):
        compile_template(ChatPromptTemplate.from_messages([("human", "{a} {b}")]).partial(b="B"))
    # a value is substituted as it is, never formatted again
    assert render(compile_template(ChatPromptTemplate.from_messages([("human", "{a}!")])), a="{b}") == [
        {"role": "user", "content": "{b}!"}]


@pytest.mark.parametrize("family, params", [
    ("bandit/bernoulli", {"n_arms": 3, "horizon": 12}),
    ("experts/full-info", {"n_experts": 3, "horizon": 12}),
])
@pytest.mark.parametrize("orders", [None, "episode", "round"])
def test_the_history_renders_each_round_once_and_as_a_fresh_rendering_would(monkeypatch, family, params, orders):
    """The full history is kept rendered between rounds (re-rendering it every round cost time
    quadratic in the horizon); what the model sees is what rendering every past round anew gives,
    in the order of the round that shows it (a per-round shuffle renders them all again)."""
    env = make(family, params, 3)
    framing = get_framing("buttons")
    info = EpisodeInfo(env.family, env.kind, env.feedback, env.n_actions, env.horizon, env.accepts_policy, "x#3",
                       "x", 0, 7, description=framing.describe(env))
    prompts = EpisodePrompts(info, framing, history="full", orders=OptionOrders(env.n_actions, 11, orders))
    rendered = []
    line = prompts._line
    monkeypatch.setattr(prompts, "_line", lambda past, order: rendered.append(past) or line(past, order))
    env.reset(5)
    for t in range(12):
        order = prompts.orders.at(t)
        before = len(rendered)
        history = prompts.messages(t)[1]["content"]
        new_lines = len(rendered) - before
        if t:
            fresh = "\n".join(line(past, order) for past in prompts.rounds)
            assert "History of the rounds so far:\n" + fresh in history, f"round {t}"
            assert new_lines == (t if orders == "round" and order != prompts.orders.at(t - 1) else 1), f"round {t}"
        policy = tuple([1.0 / env.n_actions] * env.n_actions) if env.kind == "experts" and t % 2 else None
        step = env.step(list(policy) if policy else t % env.n_actions)
        prompts.record(t, None if policy else t % env.n_actions, policy, dict(step.feedback), None, "")
