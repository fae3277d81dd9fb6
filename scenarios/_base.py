"""The scenario contract: an instance is (family, params, instance seed); reset(seed) pre-draws an episode.

Common random numbers: `reset(seed)` draws every random outcome of the episode up front from
`numpy.random.default_rng(seed)`, so two agents reset with the same seed face the same world,
whatever they do. The scenario, not the agent, computes each decision's exact expected regret.
"""

from __future__ import annotations

import dataclasses
import functools
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from scenarios._errors import ScenarioError, unknown_key_message
from scenarios._registry import Registry
from scenarios._spaces import ActionSpace, Discrete, Simplex

if TYPE_CHECKING:  # numpy is imported when a scenario is built, so `import scenarios` stays light
    import numpy as np


@dataclass(frozen=True, slots=True)
class Observation:
    """What the agent sees before deciding in round `t` (0-based)."""

    t: int
    context: tuple[float, ...] | None = None
    # answer scenarios: the conversation to reply to (role/content dicts), built by the scenario;
    # keyword-only, so subclasses' positional fields (graph's ProblemObservation) follow `context`
    messages: tuple[Mapping[str, str], ...] | None = dataclasses.field(default=None, kw_only=True)


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one decision.

    `regret` is the increment of the scenario's regret measure R_t, so the cumulative sum of
    `regret` over an episode is exactly the episode's regret (pseudo-regret for stochastic
    bandits, dynamic regret for non-stationary ones, external regret for experts).
    """

    t: int
    reward: float  # what the agent earned this round (experts: minus its expected loss)
    regret: float
    optimal_action: int | None  # the best action this round (experts: the best fixed expert; answers: None)
    feedback: Mapping[str, Any]  # what the agent is told: {"reward": r} or {"losses": [...]}
    done: bool
    observation: Observation | None  # the next round's observation, None when done


@dataclass(frozen=True)
class ScenarioSpec:
    """A scenario instance: family, its parameters and the seed that draws the world."""

    family: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    instance_seed: int = 0


def parse_params(params_cls: type, values: Mapping[str, Any], family: str) -> Any:
    """Build a family's params dataclass from a mapping, naming unknown keys clearly."""
    known = {f.name for f in dataclasses.fields(params_cls)}
    for key in values:
        if key not in known:
            raise ScenarioError(unknown_key_message(family, key, known, "parameter", "parameters"))
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    values = {key: _check_type(family, key, _annotation(fields[key].type), value) for key, value in values.items()}
    try:
        return params_cls(**values)
    except TypeError as exc:
        raise ScenarioError(f"{family}: {exc}") from None


def _annotation(tp: Any) -> str:
    return tp if isinstance(tp, str) else getattr(tp, "__name__", str(tp))


def _check_type(family: str, key: str, annotation: str, value: Any) -> Any:
    """Reject a wrongly typed parameter (e.g. horizon = "100") with a message naming it.

    Understands the annotations the families use: int, float, str, tuple[float, ...], each
    optionally "| None"; lists become tuples (so params stay hashable). Others pass unchecked.
    """
    import numpy as np

    base = annotation.replace(" ", "").removesuffix("|None")
    if value is None and base != annotation.replace(" ", ""):
        return value
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    is_real = is_int or (isinstance(value, (float, np.floating)))
    if base == "int" and not is_int:
        raise ScenarioError(f"{family}: parameter {key!r} must be an integer, got {value!r}")
    if base == "float" and not is_real:
        raise ScenarioError(f"{family}: parameter {key!r} must be a number, got {value!r}")
    if base in ("int", "float") and not np.isfinite(value):  # inf or nan would make every regret NaN
        raise ScenarioError(f"{family}: parameter {key!r} must be a finite number, got {value!r}")
    if base == "str" and not isinstance(value, str):
        raise ScenarioError(f"{family}: parameter {key!r} must be a string, got {value!r}")
    if base.startswith("tuple[float"):
        if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)) or not all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
            for v in value
        ):
            raise ScenarioError(f"{family}: parameter {key!r} must be a list of numbers, got {value!r}")
        if not all(np.isfinite(float(v)) for v in value):
            raise ScenarioError(f"{family}: parameter {key!r} must hold finite numbers, got {list(value)!r}")
        return tuple(float(v) for v in value)
    return int(value) if base == "int" else value


def require(condition: bool, family: str, message: str) -> None:
    if not condition:
        raise ScenarioError(f"{family}: {message}")


class Scenario(ABC):
    """Base class of every scenario family.

    Subclasses set `family`, `kind` ("bandit", "contextual" or "experts"), `feedback`
    ("bandit": only the chosen action's reward; "full": every action's loss) and a `Params`
    dataclass whose fields carry `metadata={"help": ...}`.
    """

    family: ClassVar[str]
    kind: ClassVar[str]
    feedback: ClassVar[str] = "bandit"
    accepts_policy: ClassVar[bool] = False  # may the agent answer with a probability vector?
    framed: ClassVar[bool] = True  # told to language agents through a framing (answer scenarios tell themselves)
    # capabilities that framings and metrics read (never the family's name): public facts of the
    # family, not hidden facts of an instance
    best_arm: ClassVar[bool] = False  # one arm is best regardless of context: SuffFailFreq/MinFrac apply
    reward_values: ClassVar[str | None] = None  # "binary" (0 or 1) or "real" (noisy, may be negative)
    stationary: ClassVar[bool] = True  # False: the arms' means change during an episode
    framed: ClassVar[bool] = True  # told through a framing; False: the scenario's describe() tells itself
    Params: ClassVar[type]

    def __init__(self, params: Mapping[str, Any] | None = None, instance_seed: int = 0) -> None:
        self.params = parse_params(self.Params, dict(params or {}), self.family)
        self.instance_seed = int(instance_seed)
        require(self.instance_seed >= 0, self.family, f"instance seed must be >= 0, got {instance_seed}")
        self._validate()
        import numpy as np

        self._build_world(np.random.default_rng([self.instance_seed, 0xC0FFEE]))
        self._t = 0
        self._episode_ready = False

    # --- what a subclass provides -------------------------------------------------------
    @property
    @abstractmethod
    def n_actions(self) -> int: ...

    @property
    def horizon(self) -> int:
        """Number of rounds T (every family has a `horizon` parameter)."""
        return self.params.horizon

    def _validate(self) -> None:
        """Check parameter ranges; raise ScenarioError naming the problem."""

    @abstractmethod
    def _build_world(self, rng: np.random.Generator) -> None:
        """Draw the instance (arm means, expert weights, ...) from the instance seed."""

    @abstractmethod
    def _draw_episode(self, rng: np.random.Generator) -> None:
        """Pre-draw every random outcome of one episode."""

    @abstractmethod
    def expected_rewards(self, t: int) -> np.ndarray:
        """Expected reward of each action in round t (experts: minus the loss)."""

    @abstractmethod
    def _outcome(self, t: int, action: int | None, policy: np.ndarray | None) -> tuple[float, float, int, dict]:
        """Return (reward, regret increment, optimal action, feedback) for round t."""

    def context(self, t: int) -> tuple[float, ...] | None:
        return None

    def difficulty(self) -> dict[str, float]:
        """Numbers a curriculum orders tasks by (larger is harder)."""
        return {"horizon": float(self.horizon), "n_actions": float(self.n_actions)}

    def summary(self) -> dict[str, Any]:
        """The instance's hidden facts, for logs and reports (never shown to agents)."""
        return {}

    # --- the Gymnasium-style loop -------------------------------------------------------
    def reset(self, seed: int) -> Observation:
        """Start an episode whose random outcomes are all drawn now from `seed`."""
        if seed < 0:
            raise ScenarioError(f"{self.family}: episode seed must be >= 0, got {seed}")
        import numpy as np

        self._draw_episode(np.random.default_rng(seed))
        self._t = 0
        self._episode_ready = True
        return Observation(0, self.context(0))

    def step(self, action: int | Sequence[float]) -> Step:
        if not self._episode_ready:
            raise ScenarioError(f"{self.family}: call reset(seed) before step()")
        t = self._t
        if t >= self.horizon:
            raise ScenarioError(f"{self.family}: episode is over (horizon {self.horizon})")
        index, policy = self.validate_action(action)
        reward, regret, optimal, feedback = self._outcome(t, index, policy)
        self._t = t + 1
        done = self._t >= self.horizon
        next_obs = None if done else Observation(self._t, self.context(self._t))
        return Step(t, reward, regret, optimal, feedback, done, next_obs)

    @functools.cached_property
    def action_space(self) -> ActionSpace:
        """What a decision is (scenarios._spaces): options, or a distribution over them where the
        family accepts one. An answer family sets `action_space = FreeForm(...)` and checks answers."""
        return Simplex(self.n_actions) if self.accepts_policy else Discrete(self.n_actions)

    def validate_action(self, action: Any) -> tuple[int | None, Any]:
        """Return (action index, None), (None, probability vector) or (None, answer); raise on anything else."""
        return self.action_space.validate(action, self.family)

    def sample_action(self, rng: np.random.Generator) -> Any:
        """A random valid action (the checker plays these)."""
        return int(rng.integers(self.n_actions))

    def optimal_action(self, t: int) -> int:
        import numpy as np

        return int(np.argmax(self.expected_rewards(t)))


# the built-in families register themselves when their module is first imported, which the
# registry does on the first lookup: this module never imports them (no import cycle)
SCENARIOS: Registry[type[Scenario]] = Registry(
    "scenario family", "regret_harness.scenarios",
    builtin_modules=("scenarios.bandits", "scenarios.contextual", "scenarios.experts", "scenarios.graph",
                     "scenarios.self_correction"),
)


def scenario(family: str, *, help: str | None = None):
    """Class decorator registering a scenario family under `family` (e.g. "bandit/bernoulli")."""

    def decorator(cls: type[Scenario]) -> type[Scenario]:
        cls.family = family
        return SCENARIOS.register(family, help=help)(cls)

    return decorator


def make(family: str | ScenarioSpec, params: Mapping[str, Any] | None = None, instance_seed: int = 0) -> Scenario:
    """Instantiate a registered family: `make("bandit/bernoulli", {"n_arms": 5}, 3)`."""
    if isinstance(family, ScenarioSpec):
        family, params, instance_seed = family.family, family.params, family.instance_seed
    return SCENARIOS.get(family)(params, instance_seed)


def list_scenarios() -> list[str]:
    return SCENARIOS.names()
