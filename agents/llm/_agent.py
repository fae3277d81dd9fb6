"""LLMAgent: asks a model through litellm for each decision, re-asks on an invalid answer,
falls back to a recorded uniform-random action, and keeps everything needed to audit it."""

from __future__ import annotations

import random

from functools import partial

from agents._base import (
    PARSE_FALLBACK,
    PARSE_OK,
    PARSE_REPAIRED,
    Agent,
    AgentFactory,
    AgentSpec,
    Decision,
    EpisodeInfo,
    RunResources,
)
from agents._budget import RUN_BUDGET, Spend
from agents.llm._client import EndpointLimits, LLMClient
from agents.llm._parse import parse_answer, parse_structured
from agents.llm._prompts import EpisodePrompts, OptionOrder
from agents.llm._settings import LLMSettings
from scenarios import Observation, Step
from scenarios.framing import DEFAULT_FRAMING


class LLMAgent(Agent):
    is_async = True
    kinds = frozenset({"bandit", "contextual", "experts"})

    def __init__(self, settings: LLMSettings, client: LLMClient) -> None:
        self.settings = settings
        self.client = client

    def reset(self, episode: EpisodeInfo) -> None:
        from scenarios.framing import get_framing

        self.episode = episode
        self.framing = get_framing(episode.framing or self.settings.framing or DEFAULT_FRAMING)
        s = self.settings
        n = episode.n_actions
        self.order = OptionOrder.shuffled(n, episode.seed) if s.shuffle_options else OptionOrder.identity(n)
        self.prompts = EpisodePrompts(episode, self.framing, history=s.history, reasoning=s.reasoning,
                                      multi_turn=s.multi_turn, system_prompt=s.system_prompt,
                                      answer_format=s.answer_format, order=self.order)
        self._answer_request = self.prompts.request()
        self._rng = random.Random(episode.seed)  # the fallback's randomness, reproducible per episode
        self._asked: list[dict] | None = None
        self._spend = Spend()  # every call of the episode, those of a decision that then fails included

    def spent(self) -> Spend:
        return self._spend

    async def adecide(self, observation: Observation) -> Decision:
        episode, settings, order = self.episode, self.settings, self.order
        messages = self.prompts.messages(observation.t, observation.context)
        self._asked = messages
        prompt_tokens = completion_tokens = calls = cached = 0
        cost = latency = 0.0
        errors: list[str] = []
        for attempt in range(settings.max_invalid_retries + 1):
            completion = await self.client.complete(messages, episode.rollout, task=episode.task_id,
                                                    answer=self._answer_request,
                                                    budget=RUN_BUDGET.get(),
                                                    spend=self._spend)
            prompt_tokens += completion.prompt_tokens
            completion_tokens += completion.completion_tokens
            cost += completion.cost
            latency += completion.latency_s
            calls += completion.calls
            cached += completion.cached
            parsed = self._read(completion)
            if parsed.ok:
                status = PARSE_OK if attempt == 0 else PARSE_REPAIRED
                break
            errors.append(parsed.error)
            if attempt < settings.max_invalid_retries:
                messages = [*messages, {"role": "assistant", "content": completion.content},
                            {"role": "user", "content": self.prompts.correction(parsed.error)}]
        info: dict = {"answers": attempt + 1}
        answer = None
        if parsed.ok:
            # the parser reads listed positions; the scenario is told its own numbering
            answer = getattr(parsed, "answer", None)
            if parsed.policy is not None:
                action, policy = None, order.scenario_values(parsed.policy)
            elif parsed.action is not None:
                action, policy = order.to_scenario(parsed.action), None
                info["position"] = parsed.action  # 0-based listed position: the leaderboard's position bias
            else:
                action, policy = None, None
        else:
            status, action, policy = PARSE_FALLBACK, self._rng.randrange(episode.n_actions), None
        if settings.shuffle_options:  # recorded even when the draw left the order as it was
            info["option_order"] = list(order.order)
        if settings.answer_format != "text":
            info["answer_format"] = settings.answer_format
        if errors:
            info["errors"] = [self.client.redact(e) for e in errors]
        if cached:
            info["cached"] = cached
        if completion.model:
            info["model"] = completion.model
        redact = self.client.redact  # a provider may echo a key into the reply itself
        return Decision(action=action, policy=policy, answer=answer, reasoning=redact(parsed.reasoning),
                        raw_output=redact(completion.content),
                        parse_status=status, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                        cost=cost, latency_s=latency, attempts=calls, messages=messages, info=info)

    def _read(self, completion):
        """The episode's action space reads the reply, with this agent's reader of options: the
        free-text parser, or the structured one for answer_format json/tool."""
        episode, content, reasoning = self.episode, completion.content, completion.reasoning
        read = parse_answer
        if self.settings.answer_format != "text":
            read = partial(parse_structured, truncated=completion.finish_reason == "length")
        if episode.action_space is None:  # an EpisodeInfo built by hand, without the scenario's space
            return read(content, self.framing, episode.n_actions, episode.accepts_policy, reasoning)
        return episode.action_space.parse(content, self.framing, reasoning, choose=read)

    def update(self, observation: Observation, decision: Decision, step: Step) -> None:
        self.prompts.record(observation.t, decision.action, decision.policy, dict(step.feedback), self._asked,
                            decision.raw_output)


def llm_factory(spec: AgentSpec) -> AgentFactory:
    """An AgentFactory for a litellm model string; its settings come from `spec.params`.

    Resolving only validates the settings; the client (HTTP session, cache handle, endpoint
    limits shared with the run's other LLM agents) is created when a run opens the factory,
    once per run, and closed with the run's resources.
    """
    settings = LLMSettings.from_params(spec.agent, spec.params)
    LLMClient.check(settings)

    def open_client(resources: RunResources) -> LLMClient:
        client = LLMClient(settings, resources.shared("llm/endpoint-limits", EndpointLimits))
        resources.on_close(client.aclose)
        return client

    return AgentFactory(spec, lambda client: LLMAgent(settings, client), LLMAgent.kinds, open=open_client)
