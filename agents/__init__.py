"""Who decides: algorithm baselines, LLM agents through litellm, numeric torch policies."""

from agents._budget import RUN_BUDGET, CostBudget, CostCapReached, Spend
from agents._base import (
    AGENT_SOURCES,
    BASELINES,
    PARSE_FALLBACK,
    PARSE_OK,
    PARSE_REPAIRED,
    VALID_PARSE_STATUSES,
    Agent,
    AgentFactory,
    AgentSpec,
    Decision,
    EpisodeInfo,
    RunResources,
    baseline,
    list_agents,
    resolve,
)
from agents._explain import EXPLAINERS, View, explain

__all__ = [
    "RUN_BUDGET",
    "AGENT_SOURCES",
    "BASELINES",
    "EXPLAINERS",
    "PARSE_FALLBACK",
    "PARSE_OK",
    "PARSE_REPAIRED",
    "VALID_PARSE_STATUSES",
    "Agent",
    "AgentFactory",
    "CostBudget",
    "CostCapReached",
    "AgentSpec",
    "Decision",
    "EpisodeInfo",
    "RunResources",
    "Spend",
    "View",
    "baseline",
    "explain",
    "list_agents",
    "resolve",
]
