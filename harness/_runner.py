"""Execute a plan asynchronously with bounded concurrency into a crash-safe run directory."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agents import RUN_BUDGET, AgentFactory, CostBudget, resolve
from harness._executor import Executor, Outcome, episode_collector, get_executor
from harness._files import PLAN_FILE
from harness._plan import Episode, Plan, PlanError, scenario_kind
from harness._store import FAILED, FINISHED, RunStore, RunStoreError
from scenarios import ConfigError, make


@dataclass
class RunResult:
    directory: Path
    total: int  # episodes in the plan
    finished: int  # finished in this call
    failed: int  # failed in this call (recorded with their error; --resume retries them)
    skipped: int  # already finished before this call
    stopped: str | None = None  # why new work stopped early (e.g. the cost limit)
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. agent x scenario pairs skipped
    spent: float = 0.0  # USD spent by this run directory so far, every invocation and failed attempt included


class Progress:
    """Progress hooks; the CLI subclasses this with a progress bar."""

    def start(self, total: int, done: int) -> None: ...

    def advance(self, episode: Episode, status: str) -> None: ...

    def stop(self) -> None: ...


def build_factories(plan: Plan) -> dict[str, AgentFactory]:
    return {spec.name: resolve(spec) for spec in plan.agents}


# size bounds of a plan (override: allow_large / --allow-large)
MAX_EPISODE_BYTES = 2 * 2**30  # an episode's pre-drawn world and decision rows, in memory
MAX_DECISIONS = 50_000_000  # decisions in the whole plan (store size and running time)
_BYTES_PER_DECISION = 600  # a decision row in memory (record, JSON strings), order of magnitude
_BYTES_PER_OUTCOME = 16  # one pre-drawn outcome (a float and its list slot) per round and option
_SECONDS_PER_DECISION = 20e-6  # an algorithm's decision through the runner, at least


def check_plan(plan: Plan, factories: dict[str, AgentFactory], allow_large: bool = False) -> list[str]:
    """Refuse a plan no agent can play, or one too large to run (a PlanError naming why, with the
    memory and time estimate); return warnings for the agent x scenario pairs that are skipped."""
    warnings, playable, decisions = [], 0, 0
    for entry in plan.scenarios:
        env = make(entry.family, entry.params, entry.instance_seeds[0])
        kind = env.kind
        players = [spec.name for spec in plan.agents if kind in factories[spec.name].kinds]
        for spec in plan.agents:
            if spec.name not in players:
                warnings.append(f"agent {spec.name!r} cannot play scenario {entry.id!r} ({kind}): skipped")
        playable += len(players)
        rollouts = entry.rollouts if entry.rollouts is not None else plan.rollouts
        decisions += len(players) * len(entry.instance_seeds) * rollouts * env.horizon
        episode_bytes = env.horizon * (env.n_actions * _BYTES_PER_OUTCOME + _BYTES_PER_DECISION)
        if players and episode_bytes > MAX_EPISODE_BYTES and not allow_large:
            raise PlanError(f"scenario {entry.id!r}: horizon {env.horizon} x {env.n_actions} options needs about "
                            f"{episode_bytes / 2**30:.1f} GiB per episode in memory (limit "
                            f"{MAX_EPISODE_BYTES / 2**30:.0f} GiB); lower it or pass --allow-large")
    if not playable:
        kinds = ", ".join(f"{spec.name}: {'/'.join(sorted(factories[spec.name].kinds)) or 'none'}" for spec in plan.agents)
        raise PlanError(f"no agent can play any scenario of the plan (agents play {kinds})")
    if decisions > MAX_DECISIONS and not allow_large:
        hours = decisions * _SECONDS_PER_DECISION / 3600
        raise PlanError(f"the plan has {decisions:.3g} decisions (limit {MAX_DECISIONS:.0e}): at least "
                        f"{hours:.3g} h of running and about {decisions * 50 / 2**30:.3g} GiB of run store; "
                        "lower horizon/rollouts/instances or pass --allow-large")
    return warnings


def supports_filter(factories: dict[str, AgentFactory]) -> Callable:
    return lambda spec, task: scenario_kind(task.family) in factories[spec.name].kinds


async def execute(
    plan: Plan,
    directory: str | Path,
    *,
    concurrency: int = 8,
    resume: bool = False,
    max_cost: float | None = None,
    progress: Progress | None = None,
    factories: dict[str, AgentFactory] | None = None,
    executor: str | Executor = "local",
    allow_large: bool = False,
) -> RunResult:
    """Run every episode of `plan` not yet finished in `directory`.

    With `resume=True` the plan frozen in the directory is used and `plan` is ignored;
    finished episodes are skipped, failed ones retried. The episodes are played by `executor`
    (a registered name or an object, see harness._executor); the store, the cost cap and the
    progress stay here. `factories` (agent name -> AgentFactory) are resolved from the plan
    when not given.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    if max_cost is not None and not (isinstance(max_cost, (int, float)) and math.isfinite(max_cost) and max_cost >= 0):
        raise ConfigError(f"max_cost must be a finite number of USD >= 0, got {max_cost!r}")
    started = time.perf_counter()
    progress = progress or Progress()
    runner = get_executor(executor)
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise RunStoreError(f"{directory} is a file, not a run directory; choose another --out")
    warnings: list[str] = []
    store = None
    try:
        # nothing is written until the plan is valid, every agent resolves and the size is sane
        if resume:
            store = RunStore(directory, create=False)
            plan = Plan.from_dict(store.read_plan(), str(store.plan_path))
            factories = factories or build_factories(plan)
        else:
            if (directory / PLAN_FILE).exists():
                raise RunStoreError(f"{directory} already holds a run; resume it with --resume or choose another --out")
            factories = factories or build_factories(plan)
            warnings = check_plan(plan, factories, allow_large=allow_large)
            store = RunStore(directory, create=True)
            store.write_plan(plan.to_dict())
        supports = supports_filter(factories)
        done = store.finished_keys()
        total = sum(1 for _ in plan.episodes(supports))
        pending: Iterator[Episode] = (e for e in plan.episodes(supports) if e.key not in done)
        result = RunResult(store.directory, total, 0, 0, len(done), warnings=warnings)
        progress.start(total, len(done))
        # the hard cap counts everything this run directory ever spent, failed and replaced attempts
        # included; agents in this process reserve each paid call's worst case against it
        budget = CostBudget(max_cost, store.total_spent())

        def episodes() -> Iterator[Episode]:
            for episode in pending:  # the cost cap is checked each time an executor asks for more work
                # in-process calls settle into the budget; episodes played elsewhere count once committed
                if budget.exhausted or (max_cost is not None and store.total_spent() >= max_cost):
                    result.stopped = f"cost limit ${max_cost:g} reached (${budget.spent:.4f} spent)"
                    return
                yield episode

        def deliver(outcome: Outcome) -> None:
            episode, record = outcome.episode, outcome.record
            store.commit_episode(record, outcome.decisions)
            if outcome.failed:
                result.failed += 1
                result.errors.append(f"{episode.agent.name} {episode.task.task_id} #{episode.rollout}: {record.error}")
                progress.advance(episode, FAILED)
            else:
                result.finished += 1
                progress.advance(episode, FINISHED)

        token = RUN_BUDGET.set(budget)  # the run's tasks see it (a context variable, reset after)
        try:
            with episode_collector():
                await runner.run(episodes(), deliver, factories=factories, concurrency=concurrency)
        finally:
            RUN_BUDGET.reset(token)
        if budget.refused and result.stopped is None:
            result.stopped = f"cost limit ${max_cost:g} reached (${budget.spent:.4f} spent)"
        result.spent = store.total_spent()
        progress.stop()
        result.wall_s = time.perf_counter() - started
        return result
    finally:
        if store is not None:
            store.close()


def run_plan(plan: Plan, directory: str | Path, **options) -> RunResult:
    """Synchronous wrapper around `execute`; works where an event loop is already running
    (Jupyter), by running the plan's own loop in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(execute(plan, directory, **options))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="regret-run") as pool:
        return pool.submit(asyncio.run, execute(plan, directory, **options)).result()
