"""The agent contract: given an observation (and its own memory of the episode), return a Decision."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from scenarios import (
    ActionSpace,
    ConfigError,
    Observation,
    Registry,
    Scenario,
    Step,
    UnknownNameError,
    unknown_key_message,
)

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
    action_space: ActionSpace | None = None  # what a decision is and how a reply is read (scenarios._spaces)


class Agent:
    """Base class. Subclasses override `reset`, `decide` (or `adecide`) and `update`.

    Synchronous agents (algorithms) implement `decide`; the runner then plays a whole episode
    without yielding to the event loop, which keeps the harness's overhead small. Agents that
    wait on I/O (LLMs) set `is_async = True` and implement `adecide`.
    """

    name: str = "agent"
    kinds: ClassVar[frozenset[str]] = frozenset()  # scenario kinds this agent can play
    explainer: ClassVar[str | None] = None  # the agents.EXPLAINERS entry that explains its decisions in datasets
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

    def spent(self):
        """What this episode has cost so far (an agents.Spend), decisions in progress included;
        None for agents that spend nothing. Read for failed and partial episodes."""
        return None


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


class RunResources:
    """What the agents of one run share and release together: clients, limits, caches.

    Created by the executor for a run and closed in its `finally` (`aclose`), so nothing an
    agent opens outlives the run and nothing of one run leaks into the next. `shared(key,
    create)` gives every factory of the run the same object (e.g. the per-endpoint limits of
    all LLM agents calling one endpoint); `on_close` registers a release, run in reverse order.
    """

    def __init__(self) -> None:
        self._shared: dict[str, Any] = {}
        self._closers: list[Callable[[], Awaitable[None] | None]] = []
        self.closed = False

    def shared(self, key: str, create: Callable[[], Any]) -> Any:
        if key not in self._shared:
            self._shared[key] = create()
        return self._shared[key]

    def on_close(self, release: Callable[[], Awaitable[None] | None]) -> None:
        self._closers.append(release)

    async def aclose(self) -> None:
        errors = []
        while self._closers:
            try:
                result = self._closers.pop()()
                if result is not None:
                    await result
            except Exception as exc:  # release the rest; report the first failure after
                errors.append(exc)
        self.closed = True
        if errors:
            raise errors[0]


class AgentFactory:
    """Builds fresh agents (one per episode) and says which scenarios they can play.

    `open(resources)` is called once per run before the first agent is built: a factory whose
    agents share something costly (an LLM client) creates it there, in the run's resources,
    so it is made once per agent spec per run and released when the run ends. Building an
    agent without a run (`factory()` alone) opens private resources that `aclose` releases.
    """

    def __init__(
        self,
        spec: AgentSpec,
        build: Callable[..., Agent],
        kinds: frozenset[str],
        close: Callable[[], Awaitable[None]] | None = None,
        open: Callable[[RunResources], Any] | None = None,
    ) -> None:
        self.spec = spec
        self._build = build
        self.kinds = kinds
        self._close = close
        self._open = open
        self._state: Any = None  # what `open` returned, handed to `build`
        self._opened: RunResources | None = None
        self._private: RunResources | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def supports(self, scenario: Scenario) -> bool:
        return scenario.kind in self.kinds

    def open(self, resources: RunResources) -> None:
        """Create what this spec's agents share for the run in `resources` (once per run)."""
        if self._opened is resources:
            return
        self._opened = resources
        if self._open is not None:
            self._state = self._open(resources)

    def __call__(self) -> Agent:
        if self._open is not None:
            if self._opened is None or self._opened.closed:
                self._private = RunResources()
                self.open(self._private)
            agent = self._build(self._state)
        else:
            agent = self._build()
        agent.name = self.spec.name
        return agent

    async def aclose(self) -> None:
        """Release what this factory opened outside a run, and its own `close`."""
        try:
            if self._private is not None:
                await self._private.aclose()
                self._private = None
        finally:
            if self._close is not None:
                await self._close()


BASELINES: Registry[type[Agent]] = Registry(
    "agent", "regret_harness.agents", builtin_modules=("agents.baselines", "agents.graph_policy"),
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
        explain = cls.__dict__.get("explain")
        if explain is not None:  # the class explains its own decisions (agents._explain)
            from agents._explain import EXPLAINERS

            cls.explainer = name
            EXPLAINERS.add(name, explain.__func__ if isinstance(explain, staticmethod) else explain,
                           help=f"the {name} baseline's reasons (from its logged info)")
        return BASELINES.register(name, help=help)(cls)

    return decorator


def _baseline_factory(spec: AgentSpec) -> AgentFactory:
    cls = BASELINES.get(spec.agent)
    known = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for key in spec.params:
        if key not in known:
            raise ConfigError(unknown_key_message(f"agent {spec.agent!r}", key, known))
    params = dict(spec.params)
    _check_values(spec.agent, cls, params)
    return AgentFactory(spec, lambda: cls(**params), cls.kinds)


def _check_values(name: str, cls: type, params: Mapping[str, Any]) -> None:
    """Setting values checked when the plan is built, not in every episode: the type of each
    default (a number must be a finite number, a flag true or false), then the class's own checks."""
    import math

    for f in dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ():
        if f.name not in params:
            continue
        value, default = params[f.name], f.default
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"agent {name!r}: {f.name} must be true or false, got {value!r}")
        elif isinstance(default, (int, float)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"agent {name!r}: {f.name} must be a finite number, got {value!r}")
            if isinstance(default, int) and not isinstance(value, int):
                raise ConfigError(f"agent {name!r}: {f.name} must be an integer, got {value!r}")
    try:
        cls(**params)  # the range checks of its __post_init__
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc) if str(exc).startswith("agent ") else f"agent {name!r}: {exc}") from None


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
