"""Running agents on scenarios: plans, the runner, the run store, statistics, metrics, reports and the CLI.

The statistics (`harness._stats`: task-clustered intervals, the sublinearity test, paired
differences with Holm's correction, power planning) take plain arrays, so any code that has
regrets and task labels can use them: `from harness import clustered_mean, sublinearity_test`.
The self-correction metrics (RISE's m1@t1, m5@t1, m1@t5, p1@t5) are `self_correction_table`.

The public names below are loaded on first use (PEP 562), so importing a submodule such as
`harness.pytest_plugin` or `harness.cli` — which pytest and `regret --help` do at start-up —
does not pull in numpy and the scenario registry. Heavy dependencies (polars, litellm,
matplotlib) are imported inside the functions that use them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "harness._files": ("PLAN_FILE", "atomic_write", "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
                       "read_plan"),
    "harness._executor": ("EXECUTORS", "Executor", "LocalExecutor", "Outcome", "get_executor", "play_elsewhere",
                          "play_outcome"),
    "harness._records": ("DECISION_COLUMNS", "EPISODE_COLUMNS", "DecisionRecord", "EpisodeRecord"),
    "harness._plan": ("Episode", "Plan", "PlanError", "ScenarioEntry", "Task", "derive_seed", "load_suite",
                      "parse_suite"),
    "harness._episode": ("failed_record", "play_episode", "redact"),
    "harness._runner": ("Progress", "RunResult", "build_factories", "execute", "run_plan"),
    "harness._self_correction": ("AnswerEpisode", "answer_episodes", "majority_vote", "metric_values",
                                 "self_correction_markdown", "self_correction_table"),
    "harness._stats": ("Estimate", "GrowthSlopes", "PowerPlan", "StatsError", "SublinearityTest", "VarianceComponents",
                       "adjust_pvalues", "clustered_mean", "difference", "growth_slopes", "paired_difference",
                       "plan_power", "sample_size", "sublinearity_test", "t_test_power", "variance_components"),
    "harness._store": ("RunStore", "RunStoreError", "load_run"),
    "harness._suites": ("builtin_suites", "load_builtin", "load_suite_or_builtin"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)

if TYPE_CHECKING:
    from harness._files import (PLAN_FILE, atomic_write, atomic_write_bytes, atomic_write_json, atomic_write_text,
                                read_plan)
    from harness._executor import (EXECUTORS, Executor, LocalExecutor, Outcome, get_executor, play_elsewhere,
                                   play_outcome)
    from harness._records import DECISION_COLUMNS, EPISODE_COLUMNS, DecisionRecord, EpisodeRecord
    from harness._plan import Episode, Plan, PlanError, ScenarioEntry, Task, derive_seed, load_suite, parse_suite
    from harness._episode import failed_record, play_episode, redact
    from harness._runner import Progress, RunResult, build_factories, execute, run_plan
    from harness._self_correction import (
        AnswerEpisode,
        answer_episodes,
        majority_vote,
        metric_values,
        self_correction_markdown,
        self_correction_table,
    )
    from harness._stats import (
        Estimate,
        GrowthSlopes,
        PowerPlan,
        StatsError,
        SublinearityTest,
        VarianceComponents,
        adjust_pvalues,
        clustered_mean,
        difference,
        growth_slopes,
        paired_difference,
        plan_power,
        sample_size,
        sublinearity_test,
        t_test_power,
        variance_components,
    )
    from harness._store import RunStore, RunStoreError, load_run
    from harness._suites import builtin_suites, load_builtin, load_suite_or_builtin


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
