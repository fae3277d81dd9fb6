"""The agent contract: given an observation (and its own memory of the episode), return a Decision."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from scenarios import ConfigError, Observation, Registry, Scenario, Step, UnknownNameError, unknown_key_message

# parse_status values a Decision may carry
PARSE_OK = "ok"  # valid on the first attempt
PARSE_REPAIRED = "repaired"  # valid after one or more correction prompts
PARSE_FALLBACK = "fallback"  # never valid: a recorded uniform-random fallback action was played
VALID_PARSE_STATUSES = (PARSE_OK, PARSE_REPAIRED)


@dataclass(slots=True)
class Decision:
    """One decision: the action (or probability vector) plus everything needed to audit it."""

    action: int | None = None
    policy: tuple[float, ...] | None = None
    reasoning: str = ""
    raw_output: str = ""
    parse_status: str = PARSE_OK
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_s: float = 0.0
    attempts: int = 0  # provider calls made for this decision (0 for algorithms)
    messages: list[dict] | None = None  # the exact messages sent on the final attempt
    info: dict | None = None  # algorithm internals worth logging (e.g. UCB indices)
    answer: Any = None  # a free-form answer the scenario itself checks (a number, a string, a path)

    @property
    def played(self) -> Any:
        if self.answer is not None:
            return self.answer
        return self.action if self.policy is None else self.policy


@dataclass(frozen=True)
class EpisodeInfo:
    """What an agent is told when an episode starts. `scenario` is set for privileged agents only."""

    family: str
    kind: str  # "bandit", "contextual" or "experts"
    feedback: str  # "bandit" or "full"
    n_actions: int
    horizon: int
    accepts_policy: bool
    task_id: str
    scenario_id: str
    rollout: int
    seed: int  # the agent's own randomness for this episode
    framing: str | None = None
    context_dim: int = 0
    description: str = ""  # the framing's natural-language task description, when a framing is set
    scenario: Scenario | None = None


class Agent:
    """Base class. Subclasses override `reset`, `decide` (or `adecide`) and `update`.

    Synchronous agents (algorithms) implement `decide`; the runner then plays a whole episode
    without yielding to the event loop, which keeps the harness's overhead small. Agents that
    wait on I/O (LLMs) set `is_async = True` and implement `adecide`.
    """

    name: str = "agent"
    kinds: ClassVar[frozenset[str]] = frozenset()  # scenario kinds this agent can play
    privileged: ClassVar[bool] = False  # receives the scenario object (the oracle)
    is_async: ClassVar[bool] = False

    def reset(self, episode: EpisodeInfo) -> None:
        self.episode = episode

    def decide(self, observation: Observation) -> Decision:
        raise NotImplementedError

    async def adecide(self, observation: Observation) -> Decision:
        return self.decide(observation)

    def update(self, observation: Observation, decision: Decision, step: Step) -> None:
        """Learn from the step's feedback (`step.feedback`); never from its regret."""


@dataclass(frozen=True)
class AgentSpec:
    """How to build an agent: `agent` is a baseline name, a litellm model string or `torch:PATH`.

    `label` names it in tables (defaults to `agent`); `params` are its settings
    (hyper-parameters for algorithms; temperature, api_base, ... for LLMs).
    """

    agent: str
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or self.agent

    def to_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "params": dict(self.params), "label": self.label}


class AgentFactory:
    """Builds fresh agents (one per episode) and says which scenarios they can play."""

    def __init__(
        self,
        spec: AgentSpec,
        build: Callable[[], Agent],
        kinds: frozenset[str],
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.spec = spec
        self._build = build
        self.kinds = kinds
        self._close = close

    @property
    def name(self) -> str:
        return self.spec.name

    def supports(self, scenario: Scenario) -> bool:
        return scenario.kind in self.kinds

    def __call__(self) -> Agent:
        agent = self._build()
        agent.name = self.spec.name
        return agent

    async def aclose(self) -> None:
        """Release what the agents share (clients, servers) once the run is over."""
        if self._close is not None:
            await self._close()


BASELINES: Registry[type[Agent]] = Registry(
    "agent", "regret_harness.agents", builtin_modules=("agents.baselines",),
    hint="; an LLM is named by a litellm model string such as 'openai/gpt-4o-mini'",
)
# what builds an agent that is not a baseline: a source takes the AgentSpec, returns an AgentFactory
AGENT_SOURCES: Registry[Callable[[AgentSpec], AgentFactory]] = Registry("agent source", "regret_harness.agent_sources")
AGENT_SOURCES.lazy("torch", "agents.torch_policy:torch_policy_factory", help="torch:PATH, a numeric policy checkpoint")
AGENT_SOURCES.lazy("llm", "agents.llm:llm_factory", help="a litellm model string (provider/model) through litellm")


def baseline(name: str, kinds: tuple[str, ...], *, help: str | None = None):
    """Class decorator registering an algorithm baseline that plays the given scenario kinds."""

    def decorator(cls: type[Agent]) -> type[Agent]:
        cls.kinds = frozenset(kinds)
        cls.name = name
        return BASELINES.register(name, help=help)(cls)

    return decorator


def _baseline_factory(spec: AgentSpec) -> AgentFactory:
    cls = BASELINES.get(spec.agent)
    known = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for key in spec.params:
        if key not in known:
            raise ConfigError(unknown_key_message(f"agent {spec.agent!r}", key, known))
    params = dict(spec.params)
    return AgentFactory(spec, lambda: cls(**params), cls.kinds)


def source_of(name: str) -> str | None:
    """Which agent source builds `name`: "torch" for torch:PATH, "llm" for provider/model, else None."""
    if name.startswith("torch:"):
        return "torch"
    if "/" in name:
        return "llm"
    return None


def resolve(spec: AgentSpec | str) -> AgentFactory:
    """Turn an agent spec into a factory.

    - a registered baseline name (`ucb1`, `thompson`, ...);
    - `torch:PATH`: a numeric policy checkpoint (finetune's torch backend);
    - anything with a `/` (`openai/gpt-4o-mini`, `hosted_vllm/NAME`, ...): an LLM through litellm.
    """
    if isinstance(spec, str):
        spec = AgentSpec(spec)
    if spec.agent in BASELINES:
        return _baseline_factory(spec)
    source = source_of(spec.agent)
    if source is None:
        raise UnknownNameError(BASELINES.unknown_message(spec.agent))
    return AGENT_SOURCES.get(source)(spec)


def list_agents() -> list[str]:
    return BASELINES.names()
