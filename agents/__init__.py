"""Who decides: algorithm baselines, LLM agents through litellm, numeric torch policies."""

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
    baseline,
    list_agents,
    resolve,
)

__all__ = [
    "AGENT_SOURCES",
    "BASELINES",
    "PARSE_FALLBACK",
    "PARSE_OK",
    "PARSE_REPAIRED",
    "VALID_PARSE_STATUSES",
    "Agent",
    "AgentFactory",
    "AgentSpec",
    "Decision",
    "EpisodeInfo",
    "baseline",
    "list_agents",
    "resolve",
]
