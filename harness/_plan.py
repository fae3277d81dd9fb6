"""Plans and suite files: agents x scenario instances x rollouts, with every seed derived from one.

Suite file schema (TOML)::

    name = "my-suite"          # optional
    seed = 0                   # master seed: instance, episode and agent seeds derive from it
    rollouts = 5               # episodes per (agent, task); a scenario may override it
    agents = ["ucb1", "thompson", {agent = "openai/gpt-4o-mini", label = "mini", temperature = 0.7}]

    [[scenarios]]
    id = "bandit/bernoulli-k5"     # optional; defaults to the family
    family = "bandit/bernoulli"
    params = {n_arms = 5, horizon = 100, gap = 0.2}
    framing = "buttons"            # optional; how LLM agents see it
    instances = 2                  # tasks drawn from the master seed, or: seeds = [1, 2]
    rollouts = 10                  # optional override

An agent is a string or a table with `agent` (a baseline name, a litellm model string or
`torch:PATH`), an optional `label`, and settings (every other key) passed to the agent.

Scenarios keep the order they are written in (reports follow it).

Sweeps: a list given for a scalar parameter, e.g. ``params = {n_arms = [2, 5, 10, 20]}``,
expands into one scenario per value (several swept parameters: every combination), with ids
``<id>/n_arms=2``, ``<id>/n_arms=5``, ... in the written order (ids sort naturally: 2 < 5 < 10).
A parameter that itself takes a list (e.g. bandit/gaussian's ``means``) sweeps only with a
list of lists. Reports plot final regret against a swept parameter.

What the master seed derives (`derive_seed` is a keyed BLAKE2b hash, stable across machines):

- instance seeds of every scenario without explicit ``seeds``:
  derive_seed(seed, "instance", scenario id, k) mod 2**31 for k = 0 .. instances - 1
  (the task id is "<scenario id>#<instance seed>");
- env seeds: derive_seed(seed, "env", task id, rollout), the same for every agent (common
  random numbers: all agents of a run face identical worlds);
- agent seeds: derive_seed(seed, "agent", agent label, task id, rollout).

`regret run --seed S` (and `Plan.replace(seed=S)`) redraws all three, exactly as ``seed = S``
in the file would; explicit ``seeds = [...]`` stay fixed.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents import AgentSpec
from scenarios import SCENARIOS, ScenarioSpec, UnknownNameError, UsageError, make


class PlanError(UsageError):
    """A malformed suite or plan; the message names the problem."""


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any parts (independent of Python's hash randomisation).

    >>> derive_seed(0, "env", "bandit/bernoulli#1", 3) == derive_seed(0, "env", "bandit/bernoulli#1", 3)
    True
    """
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


@dataclass(frozen=True)
class ScenarioEntry:
    id: str
    family: str
    params: Mapping[str, Any] = field(default_factory=dict)
    framing: str | None = None
    instance_seeds: tuple[int, ...] = (0,)
    rollouts: int | None = None
    instances: int | None = None  # how many instance seeds the master seed draws; None: explicit `seeds`
    sweep: Mapping[str, Any] = field(default_factory=dict)  # the swept parameters' values of this entry

    def to_dict(self) -> dict[str, Any]:
        data = {"id": self.id, "family": self.family, "params": dict(self.params), "framing": self.framing,
                "seeds": list(self.instance_seeds), "rollouts": self.rollouts}
        if self.instances is not None:  # drawn from the master seed: another seed redraws them
            data["instances"] = self.instances
        if self.sweep:
            data["sweep"] = dict(self.sweep)
        return data

    def reseeded(self, seed: int) -> ScenarioEntry:
        """This entry under another master seed (drawn instance seeds change; explicit ones stay)."""
        from dataclasses import replace

        if self.instances is None:
            return self
        return replace(self, instance_seeds=draw_instance_seeds(seed, self.id, self.instances))


def draw_instance_seeds(seed: int, scenario_id: str, count: int) -> tuple[int, ...]:
    return tuple(derive_seed(seed, "instance", scenario_id, k) % 2**31 for k in range(count))


@dataclass(frozen=True)
class Task:
    """A scenario instance; RMFT groups rollouts by task."""

    task_id: str
    scenario_id: str
    family: str
    params: Mapping[str, Any]
    framing: str | None
    instance_seed: int

    @property
    def spec(self) -> ScenarioSpec:
        return ScenarioSpec(self.family, self.params, self.instance_seed)


@dataclass(frozen=True)
class Episode:
    agent: AgentSpec
    task: Task
    rollout: int
    env_seed: int  # the same for every agent: common random numbers
    agent_seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.agent.name, self.task.task_id, self.rollout)


@dataclass(frozen=True)
class Plan:
    agents: tuple[AgentSpec, ...]
    scenarios: tuple[ScenarioEntry, ...]
    seed: int = 0
    rollouts: int = 5
    name: str = "suite"

    def tasks(self) -> list[Task]:
        return [
            Task(f"{entry.id}#{seed}", entry.id, entry.family, dict(entry.params), entry.framing, seed)
            for entry in self.scenarios
            for seed in entry.instance_seeds
        ]

    def rollouts_for(self, scenario_id: str) -> int:
        entry = next(e for e in self.scenarios if e.id == scenario_id)
        return entry.rollouts if entry.rollouts is not None else self.rollouts

    def episodes(self, supports=None) -> Iterator[Episode]:
        """Every episode of the plan, lazily; `supports(agent_spec, task) -> bool` filters pairs."""
        for task in self.tasks():
            for rollout in range(self.rollouts_for(task.scenario_id)):
                env_seed = derive_seed(self.seed, "env", task.task_id, rollout)
                for agent in self.agents:
                    if supports is None or supports(agent, task):
                        yield Episode(agent, task, rollout, env_seed, derive_seed(self.seed, "agent", agent.name, task.task_id, rollout))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed, "rollouts": self.rollouts,
                "agents": [a.to_dict() for a in self.agents], "scenarios": [s.to_dict() for s in self.scenarios]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "plan") -> Plan:
        return parse_suite(data, source)

    def replace(self, **changes: Any) -> Plan:
        """A copy with `changes`; a new `seed` redraws the instance seeds it derives (see the module docstring)."""
        from dataclasses import replace

        if "seed" in changes and "scenarios" not in changes:
            changes["scenarios"] = tuple(e.reseeded(changes["seed"]) for e in self.scenarios)
        return replace(self, **changes)

    def sweeps(self) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """Swept scenarios by their sweep's base id: [(scenario id, swept values), ...] in written order."""
        out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for entry in self.scenarios:
            if entry.sweep:
                base = entry.id.rsplit("/", len(entry.sweep))[0]
                out.setdefault(base, []).append((entry.id, dict(entry.sweep)))
        return out


_TOP_KEYS = {"name", "seed", "rollouts", "agents", "scenarios", "description"}
_SCENARIO_KEYS = {"id", "family", "params", "framing", "instances", "seeds", "rollouts", "sweep"}


def _agent_spec(item: Any, where: str) -> AgentSpec:
    if isinstance(item, str):
        return AgentSpec(item)
    if isinstance(item, Mapping):
        if "agent" not in item or not isinstance(item["agent"], str):
            raise PlanError(f"{where}: an agent table needs a string 'agent' (e.g. agent = \"ucb1\")")
        label = item.get("label", "")
        params = {k: v for k, v in item.items() if k not in ("agent", "label")}
        # settings may also sit in a nested 'params' table
        params.update(params.pop("params", {}) or {})
        return AgentSpec(item["agent"], params, str(label))
    raise PlanError(f"{where}: an agent must be a name or a table, got {item!r}")


def _int(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{where}: expected an integer, got {value!r}")
    if value < minimum:
        raise PlanError(f"{where}: must be >= {minimum}, got {value}")
    return value


def parse_suite(data: Mapping[str, Any], source: str = "suite") -> Plan:
    """Validate a suite mapping (parsed TOML or a saved plan) and build the Plan."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise PlanError(f"{source}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(_TOP_KEYS))})")
    seed = _int(data.get("seed", 0), f"{source}: seed", 0)
    rollouts = _int(data.get("rollouts", 5), f"{source}: rollouts", 1)
    raw_agents = data.get("agents", [])
    if not isinstance(raw_agents, Sequence) or isinstance(raw_agents, str):
        raise PlanError(f"{source}: 'agents' must be a list")
    agents = tuple(_agent_spec(a, f"{source}: agents[{i}]") for i, a in enumerate(raw_agents))
    names = [a.name for a in agents]
    if len(set(names)) != len(names):
        raise PlanError(f"{source}: agent names must be unique; give repeated agents a 'label' ({names})")
    raw_scenarios = data.get("scenarios")
    if not isinstance(raw_scenarios, Sequence) or not raw_scenarios:
        raise PlanError(f"{source}: needs at least one [[scenarios]] entry")
    entries = []
    for i, raw in enumerate(raw_scenarios):
        where = f"{source}: scenarios[{i}]"
        if not isinstance(raw, Mapping):
            raise PlanError(f"{where}: must be a table")
        unknown = set(raw) - _SCENARIO_KEYS
        if unknown:
            raise PlanError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(_SCENARIO_KEYS))})")
        family = raw.get("family")
        if not isinstance(family, str):
            raise PlanError(f"{where}: needs a string 'family' (e.g. family = \"bandit/bernoulli\")")
        base_id = str(raw.get("id", family))
        params = raw.get("params", {})
        if not isinstance(params, Mapping):
            raise PlanError(f"{where}: 'params' must be a table")
        explicit: tuple[int, ...] | None = None
        count = None
        if "seeds" in raw:
            seeds = raw["seeds"]
            if not isinstance(seeds, Sequence) or not seeds:
                raise PlanError(f"{where}: 'seeds' must be a non-empty list of integers")
            explicit = tuple(_int(s, f"{where}: seeds", 0) for s in seeds)
            if raw.get("instances") == len(explicit) and explicit == draw_instance_seeds(seed, base_id, len(explicit)):
                count = len(explicit)  # a frozen plan whose seeds its master seed drew: another seed redraws them
        else:
            count = _int(raw.get("instances", 1), f"{where}: instances", 1)
        entry_rollouts = raw.get("rollouts")
        if entry_rollouts is not None:
            entry_rollouts = _int(entry_rollouts, f"{where}: rollouts", 1)
        framing = raw.get("framing")
        if framing is not None and not isinstance(framing, str):
            raise PlanError(f"{where}: 'framing' must be a string")
        if framing is not None:
            from scenarios.framing import get_framing

            try:
                get_framing(framing)
            except UnknownNameError as exc:
                raise PlanError(f"{where}: {exc}") from None
        expanded = _expand_sweep(base_id, family, params, where)
        if len(expanded) == 1 and isinstance(raw.get("sweep"), Mapping):  # a frozen plan's swept entry
            expanded = [(base_id, dict(params), dict(raw["sweep"]))]
        for entry_id, entry_params, swept in expanded:
            instance_seeds = explicit if explicit is not None else draw_instance_seeds(seed, entry_id, count)
            try:
                make(family, entry_params, instance_seeds[0])  # validates family and params now, not mid-run
            except UsageError as exc:  # unknown family, bad parameters
                raise PlanError(f"{where}: {entry_id}: {exc}" if swept else f"{where}: {exc}") from None
            entries.append(ScenarioEntry(entry_id, family, entry_params, framing, instance_seeds, entry_rollouts,
                                         count, swept))
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        raise PlanError(f"{source}: scenario ids must be unique; set 'id' on repeated families ({ids})")
    return Plan(agents, tuple(entries), seed, rollouts, str(data.get("name", "suite")))


def _expand_sweep(base_id: str, family: str, params: Mapping[str, Any], where: str):
    """[(id, params, swept values)] of one [[scenarios]] table: itself, or one entry per sweep combination."""
    import itertools

    swept = {}
    for name, value in params.items():
        if isinstance(value, list) and _sweeps(family, name, value):
            if not value:
                raise PlanError(f"{where}: sweep of {name!r} needs at least one value")
            swept[name] = value
    if not swept:
        return [(base_id, dict(params), {})]
    out = []
    for combination in itertools.product(*swept.values()):
        values = dict(zip(swept, combination))
        suffix = "/".join(f"{name}={_label(value)}" for name, value in values.items())
        out.append((f"{base_id}/{suffix}", {**params, **values}, values))
    return out


def _sweeps(family: str, name: str, value: list) -> bool:
    """A list sweeps a scalar parameter; a parameter that takes a list sweeps only over a list of lists."""
    import dataclasses

    try:
        params_cls = SCENARIOS.get(family).Params
        annotation = {f.name: str(f.type) for f in dataclasses.fields(params_cls)}.get(name, "")
    except (UsageError, AttributeError, TypeError):  # an unknown family is reported when the entry is validated
        annotation = ""
    takes_list = any(word in annotation for word in ("tuple", "list", "Sequence"))
    return all(isinstance(v, list) for v in value) if takes_list else True


def _label(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def natural_key(text: str) -> list[Any]:
    """Sort key that orders "k2" < "k10" (runs of digits compare as numbers).

    >>> sorted(["n=10", "n=2", "n=20", "n=5"], key=natural_key)
    ['n=2', 'n=5', 'n=10', 'n=20']
    """
    import re

    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part]


def load_suite(path: str | Path) -> Plan:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(f"cannot read suite file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise PlanError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save the suite as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{path}: not valid TOML: {exc}") from None
    return parse_suite(data, str(path))


def scenario_kind(family: str) -> str:
    return SCENARIOS.get(family).kind
