"""LLMAgent: asks a model through litellm for each decision, re-asks on an invalid answer,
falls back to a recorded uniform-random action, and keeps everything needed to audit it."""

from __future__ import annotations

import dataclasses
import random
import zlib

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
from agents.llm._cache import ResponseCaches
from agents.llm._client import EndpointLimits, LLMClient
from agents.llm._parse import parse_answer, parse_structured, split_reasoning
from agents.llm._prompts import EpisodePrompts, OptionOrders
from agents.llm._settings import LLMSettings
from scenarios import Observation, ScenarioError, Step
from scenarios.framing import DEFAULT_FRAMING
from scenarios.self_correction import ANSWER_KIND


class LLMAgent(Agent):
    is_async = True
    kinds = frozenset({"bandit", "contextual", "experts", ANSWER_KIND})

    def __init__(self, settings: LLMSettings, client: LLMClient, teacher: LLMClient | None = None) -> None:
        self.settings = settings
        self.client = client
        self.teacher = teacher
        # best-of-N picks replies with the scenario's own checker, so it must be handed the scenario
        self.privileged = settings.best_of > 1

    def reset(self, episode: EpisodeInfo) -> None:
        from scenarios.framing import get_framing

        self.episode = episode
        self.framing = get_framing(episode.framing or self.settings.framing or DEFAULT_FRAMING)
        s = self.settings
        n = episode.n_actions
        self._rng = random.Random(episode.seed)  # the fallback's randomness, reproducible per episode
        self._asked: list[dict] | None = None
        self._spend = Spend()  # every call of the episode, those of a decision that then fails included
        self.orders = OptionOrders(n, episode.seed, s.shuffle_mode)
        if episode.kind == ANSWER_KIND:  # a conversation the scenario writes (observation.messages), not a framing's
            self.prompts = None
            return
        self.prompts = EpisodePrompts(episode, self.framing, history=s.history, reasoning=s.reasoning,
                                      multi_turn=s.multi_turn, system_prompt=s.system_prompt,
                                      answer_format=s.answer_format, orders=self.orders)
        self._answer_request = self.prompts.request()

    def spent(self) -> Spend:
        return self._spend

    async def adecide(self, observation: Observation) -> Decision:
        if observation.messages is not None:
            return await self._reply(observation)
        if self.prompts is None:
            raise ScenarioError(f"{self.episode.family}: this answer scenario gives no conversation "
                                "(observation.messages) for a language model to reply to")
        episode, settings = self.episode, self.settings
        order = self.orders.at(observation.t)
        messages = self.prompts.messages(observation.t, observation.context)
        self._asked = messages
        prompt_tokens = completion_tokens = calls = cached = 0
        cost = latency = 0.0
        errors: list[str] = []
        for attempt in range(settings.max_invalid_retries + 1):
            completion = await self.client.complete(messages, self._sample(observation.t, attempt), task=episode.task_id,
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
        if settings.shuffle_mode:  # recorded even when the draw left the order as it was
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

    def _sample(self, t: int, attempt: int) -> int:
        """The sample index (added to the sampling seed) of round t's attempt: its own per task,
        rollout, round and attempt. One seed for a whole episode makes a seeded sampler draw the
        same uniform number every round, so it keeps picking the same quantile of the answer
        distribution (SmolLM2 at temperature 1 then chose the first-listed option 95-99% of the
        time although it gives it 46%)."""
        episode, attempts = self.episode, self.settings.max_invalid_retries + 1
        task = zlib.crc32(episode.task_id.encode()) % 1000
        return task * 1_000_000 + ((episode.rollout * episode.horizon + t) * attempts + attempt) % 1_000_000

    async def _reply(self, observation: Observation) -> Decision:
        """An answer scenario's turn: send its conversation as it is; the reply is the action it checks.

        Every turn samples with its own seed: turn t of rollout r is requested as sample
        (r * T + t) * N + k (T turns, N = `best_of`, k the sample), so turns, rollouts and samples
        never share a seed or a cache key; otherwise near-identical retry prompts would be answered
        with the same draw every turn. With `best_of` N > 1 the reply the scenario scores best is
        played (the first of the best); with a `teacher`, turns after the first are the teacher's.
        Usage sums over every sample.
        """
        settings, episode = self.settings, self.episode
        system = [{"role": "system", "content": settings.system_prompt}] if settings.system_prompt else []
        messages = [*system, *({"role": m["role"], "content": m["content"]} for m in observation.messages)]
        client = self.teacher if self.teacher is not None and observation.t > 0 else self.client
        n = settings.best_of
        first = (episode.rollout * episode.horizon + observation.t) * n
        completions = [await client.complete(messages, first + k, task=episode.task_id, budget=RUN_BUDGET.get(),
                                             spend=self._spend) for k in range(n)]
        redact = client.redact  # a provider may echo a key into the reply itself
        visible = [split_reasoning(redact(c.content), c.reasoning) for c in completions]
        info: dict = {}
        best = 0
        if n > 1:
            rewards = [float(episode.scenario.check(text).reward) for _, text in visible]
            best = rewards.index(max(rewards))
            info["samples"] = {"rewards": rewards, "chosen": best}
        chosen = completions[best]
        if client is self.teacher:
            info["teacher"] = settings.teacher
        if any(c.cached for c in completions):
            info["cached"] = sum(c.cached for c in completions)
        if chosen.model:
            info["model"] = chosen.model
        return Decision(reasoning=visible[best][0], raw_output=redact(chosen.content), answer=visible[best][1],
                        prompt_tokens=sum(c.prompt_tokens for c in completions),
                        completion_tokens=sum(c.completion_tokens for c in completions),
                        cost=sum(c.cost for c in completions), latency_s=sum(c.latency_s for c in completions),
                        attempts=sum(c.calls for c in completions), messages=messages, info=info or None)

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
        if self.prompts is None:
            return
        self.prompts.record(observation.t, decision.action, decision.policy, dict(step.feedback), self._asked,
                            decision.raw_output)


def _run_caches(resources: RunResources) -> ResponseCaches:
    """The run's response caches; registered before any client's close, so closed after them all."""
    caches = ResponseCaches()
    resources.on_close(caches.close)
    return caches


def llm_factory(spec: AgentSpec) -> AgentFactory:
    """An AgentFactory for a litellm model string; its settings come from `spec.params`.

    Resolving only validates the settings; the client (HTTP session, cache handle, endpoint
    limits shared with the run's other LLM agents) is created when a run opens the factory,
    once per run, and closed with the run's resources.
    """
    settings = LLMSettings.from_params(spec.agent, spec.params)
    LLMClient.check(settings)

    def open_client(resources: RunResources) -> tuple[LLMClient, LLMClient | None]:
        limits = resources.shared("llm/endpoint-limits", EndpointLimits)
        caches = resources.shared("llm/response-caches", lambda: _run_caches(resources))
        client = LLMClient(settings, limits, caches)
        resources.on_close(client.aclose)
        teacher = None
        if settings.teacher:  # RISE distillation: another model writes the later turns
            teacher = LLMClient(dataclasses.replace(settings, model=settings.teacher), limits, caches)
            resources.on_close(teacher.aclose)
        return client, teacher

    return AgentFactory(spec, lambda clients: LLMAgent(settings, *clients), LLMAgent.kinds, open=open_client)
