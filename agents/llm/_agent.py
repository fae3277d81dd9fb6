"""LLMAgent: asks a model through litellm for each decision, re-asks on an invalid answer,
falls back to a recorded uniform-random action, and keeps everything needed to audit it."""

from __future__ import annotations

import random

from agents._base import PARSE_FALLBACK, PARSE_OK, PARSE_REPAIRED, Agent, AgentFactory, AgentSpec, Decision, EpisodeInfo
from agents.llm._client import LLMClient
from agents.llm._parse import parse_answer, split_reasoning
from agents.llm._prompts import EpisodePrompts
from agents.llm._settings import LLMSettings
from scenarios import Observation, Step
from scenarios.self_correction import ANSWER_KIND

DEFAULT_FRAMING = "buttons"


class LLMAgent(Agent):
    is_async = True
    kinds = frozenset({"bandit", "contextual", "experts", ANSWER_KIND})

    def __init__(self, settings: LLMSettings, client: LLMClient) -> None:
        self.settings = settings
        self.client = client

    def reset(self, episode: EpisodeInfo) -> None:
        from scenarios.framing import get_framing

        self.episode = episode
        self.framing = get_framing(episode.framing or self.settings.framing or DEFAULT_FRAMING)
        s = self.settings
        self._rng = random.Random(episode.seed)  # the fallback's randomness, reproducible per episode
        self._asked: list[dict] | None = None
        if episode.kind == ANSWER_KIND:  # the scenario writes the conversation (observation.messages)
            self.prompts = None
            return
        self.prompts = EpisodePrompts(episode, self.framing, history=s.history, reasoning=s.reasoning,
                                      multi_turn=s.multi_turn, system_prompt=s.system_prompt)

    async def adecide(self, observation: Observation) -> Decision:
        if observation.messages is not None:
            return await self._reply(observation)
        if self.prompts is None:
            raise ValueError(f"{self.episode.family}: this answer scenario gives no conversation "
                             "(observation.messages) for a language model to reply to")
        episode, settings = self.episode, self.settings
        messages = self.prompts.messages(observation.t, observation.context)
        self._asked = messages
        prompt_tokens = completion_tokens = calls = cached = 0
        cost = latency = 0.0
        errors: list[str] = []
        for attempt in range(settings.max_invalid_retries + 1):
            completion = await self.client.complete(messages, episode.rollout)
            prompt_tokens += completion.prompt_tokens
            completion_tokens += completion.completion_tokens
            cost += completion.cost
            latency += completion.latency_s
            calls += completion.calls
            cached += completion.cached
            parsed = parse_answer(completion.content, self.framing, episode.n_actions, episode.accepts_policy,
                                  completion.reasoning)
            if parsed.ok:
                status = PARSE_OK if attempt == 0 else PARSE_REPAIRED
                action, policy = parsed.action, parsed.policy
                break
            errors.append(parsed.error)
            if attempt < settings.max_invalid_retries:
                messages = [*messages, {"role": "assistant", "content": completion.content},
                            {"role": "user", "content": self.prompts.correction(parsed.error)}]
        else:
            status, action, policy = PARSE_FALLBACK, self._rng.randrange(episode.n_actions), None
        info = {"answers": attempt + 1}
        if errors:
            info["errors"] = errors
        if cached:
            info["cached"] = cached
        if completion.model:
            info["model"] = completion.model
        return Decision(action=action, policy=policy, reasoning=parsed.reasoning, raw_output=completion.content,
                        parse_status=status, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                        cost=cost, latency_s=latency, attempts=calls, messages=messages, info=info)

    async def _reply(self, observation: Observation) -> Decision:
        """An answer scenario's turn: send its conversation as it is; the reply is the action it checks."""
        system = [{"role": "system", "content": self.settings.system_prompt}] if self.settings.system_prompt else []
        messages = [*system, *({"role": m["role"], "content": m["content"]} for m in observation.messages)]
        completion = await self.client.complete(messages, self.episode.rollout)
        reasoning, visible = split_reasoning(completion.content, completion.reasoning)
        info = {"cached": completion.cached} if completion.cached else {}
        if completion.model:
            info["model"] = completion.model
        return Decision(reasoning=reasoning, raw_output=completion.content, answer=visible,
                        prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                        cost=completion.cost, latency_s=completion.latency_s, attempts=completion.calls,
                        messages=messages, info=info or None)

    def update(self, observation: Observation, decision: Decision, step: Step) -> None:
        if self.prompts is None:
            return
        self.prompts.record(observation.t, decision.action, decision.policy, dict(step.feedback), self._asked,
                            decision.raw_output)


def llm_factory(spec: AgentSpec) -> AgentFactory:
    """An AgentFactory for a litellm model string; its settings come from `spec.params`."""
    settings = LLMSettings.from_params(spec.agent, spec.params)
    client = LLMClient(settings)
    return AgentFactory(spec, lambda: LLMAgent(settings, client), LLMAgent.kinds, close=client.aclose)
