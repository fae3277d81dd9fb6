"""Playing one episode: the scenario's loop with one agent, into typed records."""

from __future__ import annotations

import json
from typing import Any

import orjson

from agents import VALID_PARSE_STATUSES, AgentFactory, EpisodeInfo, Spend
from agents._redact import redact  # noqa: F401  (harness.redact)
from harness._plan import Episode, scenario_kind
from harness._records import DecisionRows, EpisodeRecord
from harness._store import FAILED, FINISHED
from scenarios import RegretError, make
from scenarios.framing import DEFAULT_FRAMING


def _json(value) -> str | None:
    # orjson: the decision rows' JSON columns are on the hot path
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _answer_text(answer: Any) -> str | None:
    # a free-form answer is stored as the text the scenario checked; a structured one (a numeric
    # agent's path) as JSON
    return answer if answer is None or isinstance(answer, str) else _json(answer)


class EpisodeFailed(RegretError):
    """An episode stopped by an error; `spent` is what it had cost by then (an agents.Spend, or None)."""

    def __init__(self, cause: BaseException, spent: Spend | None) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause, self.spent = cause, spent


async def play_episode(episode: Episode, factory: AgentFactory,
                       framing: str | None = None) -> tuple[EpisodeRecord, DecisionRows]:
    """Play one episode; return its record and its decisions' records. An error raises
    EpisodeFailed with what the episode had spent (tokens, cost), kept for the failed record."""
    task = episode.task
    env = make(task.spec)
    agent = factory()
    framing = framing or task.framing or DEFAULT_FRAMING
    description = ""
    if agent.is_async:  # only language agents read the story; algorithms skip the rendering cost
        from scenarios.framing import get_framing

        description = get_framing(framing).describe(env)
    info = EpisodeInfo(
        family=task.family, kind=env.kind, feedback=env.feedback, n_actions=env.n_actions, horizon=env.horizon,
        accepts_policy=env.accepts_policy, task_id=task.task_id, scenario_id=task.scenario_id,
        rollout=episode.rollout, seed=episode.agent_seed, framing=framing,
        context_dim=getattr(env, "context_dim", 0), description=description,
        scenario=env if agent.privileged else None, action_space=env.action_space,
    )
    try:
        return await _play(episode, factory, agent, env, info, framing)
    except Exception as exc:
        raise EpisodeFailed(exc, agent.spent()) from exc


async def _play(episode: Episode, factory: AgentFactory, agent, env, info: EpisodeInfo,
                framing: str) -> tuple[EpisodeRecord, DecisionRows]:
    task = episode.task
    agent.reset(info)
    observation = env.reset(episode.env_seed)
    name, scenario_id, task_id, family = factory.name, task.scenario_id, task.task_id, task.family
    instance_seed, rollout = task.instance_seed, episode.rollout
    rows: list[tuple] = []  # ROUND_FIELDS order: see DecisionRows for why tuples, not records
    append = rows.append
    cumulative = total_reward = 0.0
    is_async = agent.is_async
    decide, update, env_step = agent.decide, agent.update, env.step
    # the JSON columns inline (no helper call per value): this loop is the runner's hot path
    dumps, numpy_option = orjson.dumps, orjson.OPT_SERIALIZE_NUMPY
    while True:
        decision = await agent.adecide(observation) if is_async else decide(observation)
        policy, answer, details = decision.policy, decision.answer, decision.info
        # Decision.played, inlined
        step = env_step(answer if answer is not None else decision.action if policy is None else policy)
        reward, regret, feedback = step.reward, step.regret, step.feedback
        cumulative += regret
        total_reward += reward
        context, messages = observation.context, decision.messages
        append((
            step.t, decision.action,
            None if policy is None else dumps(policy, option=numpy_option).decode(),
            None if answer is None else _answer_text(answer),
            None if context is None else dumps(context, option=numpy_option).decode(),
            dumps(feedback, option=numpy_option).decode() if len(feedback) > 1 or "reward" not in feedback else None,
            reward, regret, cumulative, step.optimal_action,
            decision.reasoning, decision.raw_output, decision.parse_status,
            decision.prompt_tokens, decision.completion_tokens, decision.cost, decision.latency_s, decision.attempts,
            None if messages is None else dumps(messages, option=numpy_option).decode(),
            None if details is None else dumps(details, option=numpy_option).decode(),
        ))
        update(observation, decision, step)
        if step.done:
            break
        observation = step.observation
    decisions = DecisionRows.for_episode((name, scenario_id, task_id, family, instance_seed, rollout), rows)
    statuses = decisions.column("parse_status")
    record = EpisodeRecord(
        name, scenario_id, task_id, family, env.kind, framing, instance_seed, rollout, episode.env_seed,
        episode.agent_seed, FINISHED, None, env.horizon, env.n_actions, len(rows), cumulative, total_reward,
        n_invalid=len(statuses) - sum(map(statuses.count, VALID_PARSE_STATUSES)),
        prompt_tokens=decisions.total("prompt_tokens"), completion_tokens=decisions.total("completion_tokens"),
        cost=decisions.total("cost"), latency_s=decisions.total("latency_s"), attempts=decisions.total("attempts"),
        scenario_summary=json.dumps(env.summary(), sort_keys=True), explainer=getattr(agent, "explainer", None),
    )
    return record, decisions


def failed_record(episode: Episode, error: str, spent: Spend | None = None) -> EpisodeRecord:
    """A failed episode keeps what it cost: its tokens and cost count against the run's cap."""
    task = episode.task
    spent = spent or Spend()
    return EpisodeRecord(
        episode.agent.name, task.scenario_id, task.task_id, task.family, scenario_kind(task.family), task.framing,
        task.instance_seed, episode.rollout, episode.env_seed, episode.agent_seed, FAILED, error,
        prompt_tokens=spent.prompt_tokens, completion_tokens=spent.completion_tokens, cost=spent.cost,
        latency_s=spent.latency_s, attempts=spent.attempts,
    )
