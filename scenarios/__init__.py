"""Decision problems: what an agent sees, what it may do, what it earns, and its exact regret.

`import scenarios` stays light: no numpy until a scenario is built or an action validated.
"""

from scenarios._base import (
    SCENARIOS,
    Observation,
    Scenario,
    ScenarioSpec,
    Step,
    list_scenarios,
    make,
    scenario,
)
from scenarios._check import check_scenario
from scenarios._errors import ConfigError, RegretError, ScenarioError, UnknownNameError, UsageError, suggest, unknown_key_message
from scenarios._registry import Entry, Registry, load_target
from scenarios._spaces import ActionSpace, Discrete, FreeForm, Parsed, Simplex
from scenarios.framing import Framing, get_framing, list_framings

__all__ = [
    "SCENARIOS",
    "ActionSpace",
    "Discrete",
    "FreeForm",
    "Parsed",
    "Simplex",
    "ConfigError",
    "Entry",
    "Framing",
    "Observation",
    "RegretError",
    "Registry",
    "Scenario",
    "ScenarioError",
    "ScenarioSpec",
    "Step",
    "UnknownNameError",
    "UsageError",
    "check_scenario",
    "get_framing",
    "list_framings",
    "list_scenarios",
    "load_target",
    "make",
    "scenario",
    "suggest",
    "unknown_key_message",
]
