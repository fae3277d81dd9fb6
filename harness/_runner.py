"""Execute a plan asynchronously with bounded concurrency into a crash-safe run directory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agents import AgentFactory, resolve
from harness._executor import Executor, Outcome, get_executor
from harness._plan import Episode, Plan, scenario_kind
from harness._store import FAILED, FINISHED, RunStore, RunStoreError
from scenarios import ConfigError


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


class Progress:
    """Progress hooks; the CLI subclasses this with a progress bar."""

    def start(self, total: int, done: int) -> None: ...

    def advance(self, episode: Episode, status: str) -> None: ...

    def stop(self) -> None: ...


def build_factories(plan: Plan) -> dict[str, AgentFactory]:
    return {spec.name: resolve(spec) for spec in plan.agents}


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
    started = time.perf_counter()
    progress = progress or Progress()
    runner = get_executor(executor)
    store = RunStore(directory, create=not resume)
    try:
        if store.plan_path.exists():
            saved = Plan.from_dict(store.read_plan(), str(store.plan_path))
            if not resume:
                raise RunStoreError(f"{store.directory} already holds a run; resume it with --resume or choose another --out")
            plan = saved
        else:
            if resume:
                raise RunStoreError(f"{store.directory} holds no run to resume (no plan.json)")
            store.write_plan(plan.to_dict())
        factories = factories or build_factories(plan)
        supports = supports_filter(factories)
        done = store.finished_keys()
        total = sum(1 for _ in plan.episodes(supports))
        pending: Iterator[Episode] = (e for e in plan.episodes(supports) if e.key not in done)
        result = RunResult(store.directory, total, 0, 0, len(done))
        progress.start(total, len(done))
        spent = store.total_cost()

        def episodes() -> Iterator[Episode]:
            for episode in pending:  # the cost cap is checked each time an executor asks for more work
                if max_cost is not None and spent >= max_cost:
                    result.stopped = f"cost limit ${max_cost:g} reached (${spent:.4f} spent)"
                    return
                yield episode

        def deliver(outcome: Outcome) -> None:
            nonlocal spent
            episode, record = outcome.episode, outcome.record
            store.commit_episode(record, outcome.decisions)
            if outcome.failed:
                result.failed += 1
                result.errors.append(f"{episode.agent.name} {episode.task.task_id} #{episode.rollout}: {record.error}")
                progress.advance(episode, FAILED)
            else:
                spent += record.cost
                result.finished += 1
                progress.advance(episode, FINISHED)

        await runner.run(episodes(), deliver, factories=factories, concurrency=concurrency)
        progress.stop()
        result.wall_s = time.perf_counter() - started
        return result
    finally:
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
