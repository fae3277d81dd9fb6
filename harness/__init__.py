"""Running agents on scenarios: plans, the runner, the run store, metrics, reports and the CLI.

Heavy dependencies (polars, litellm, matplotlib) are imported inside the functions that use them.
"""

from harness._plan import Episode, Plan, PlanError, ScenarioEntry, Task, derive_seed, load_suite, parse_suite
from harness._runner import Progress, RunResult, execute, play_episode, redact, run_plan
from harness._store import RunStore, RunStoreError, load_run
from harness._suites import builtin_suites, load_builtin, load_suite_or_builtin

__all__ = [
    "Episode",
    "Plan",
    "PlanError",
    "Progress",
    "RunResult",
    "RunStore",
    "RunStoreError",
    "ScenarioEntry",
    "Task",
    "builtin_suites",
    "derive_seed",
    "execute",
    "load_builtin",
    "load_run",
    "load_suite",
    "load_suite_or_builtin",
    "parse_suite",
    "play_episode",
    "redact",
    "run_plan",
]
