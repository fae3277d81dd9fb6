"""Decision problems: what an agent sees, what it may do, what it earns, and its exact regret.

`import scenarios` stays light: numpy only.
"""

from scenarios._base import (
    SCENARIOS,
    Observation,
    Scenario,
    ScenarioError,
    ScenarioSpec,
    Step,
    list_scenarios,
    make,
    scenario,
)
from scenarios._check import check_scenario
from scenarios._registry import Registry, UnknownNameError
from scenarios.framing import Framing, get_framing, list_framings

__all__ = [
    "SCENARIOS",
    "Framing",
    "Observation",
    "Registry",
    "Scenario",
    "ScenarioError",
    "ScenarioSpec",
    "Step",
    "UnknownNameError",
    "check_scenario",
    "get_framing",
    "list_framings",
    "list_scenarios",
    "make",
    "scenario",
]
