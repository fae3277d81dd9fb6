"""Where episodes run: the executor seam between the run driver and the episodes.

The driver (`harness._runner.execute`) owns the run: it reads the plan, skips finished
episodes, writes the store, enforces the cost cap and shows progress. It hands an executor a
lazy iterator of `Episode`s (frozen dataclasses of plain values: picklable, so they can go to
another process or machine) and a `deliver(outcome)` callback; the executor plays each
episode somewhere and calls `deliver` in the driver's process with an `Outcome` (typed
records, also picklable). The driver checks the cost cap each time an executor pulls the next
episode, so an executor should pull only when it has a free slot.

    class MyExecutor:
        async def run(self, episodes, deliver, *, factories, concurrency): ...

    EXECUTORS.add("mine", MyExecutor)            # or an entry point in "regret_harness.executors"
    run_plan(plan, "runs/x", executor="mine")

`LocalExecutor` (asyncio in this process) is the default; `process` (harness._process: worker
processes on this machine) and `ray` (harness._ray: Ray actors, extra `ray`) are registered
lazily, so Ray is imported only when it is chosen. An executor that plays episodes in
other processes cannot ship the driver's `factories` (they hold clients and closures): it
sends the `Episode` and calls `play_elsewhere(episode)` there, which resolves the agent from
its spec, opens and closes run-scoped resources around the episode, and returns the Outcome.
Results are the same wherever an episode runs: its seeds come from the plan, not the executor.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agents import RUN_BUDGET, AgentFactory, AgentSpec, RunResources, resolve
from harness._episode import EpisodeFailed, failed_record, play_episode, redact
from harness._plan import Episode
from harness._records import DecisionRows, EpisodeRecord
from harness._store import FAILED
from scenarios import ConfigError, Registry


@dataclass
class Outcome:
    """A finished (or failed) episode: its record and its decisions' records."""

    episode: Episode
    record: EpisodeRecord
    decisions: DecisionRows = field(default_factory=DecisionRows)

    @property
    def failed(self) -> bool:
        return self.record.status == FAILED


@runtime_checkable
class Executor(Protocol):
    async def run(self, episodes: Iterator[Episode], deliver: Callable[[Outcome], None], *,
                  factories: Mapping[str, AgentFactory], concurrency: int) -> None: ...


def failed_outcome(episode: Episode, exc: Exception) -> Outcome:
    """An episode stopped by `exc`: a failed record with its (redacted, then cut) error and what it spent."""
    message = redact(str(exc) if isinstance(exc, EpisodeFailed) else f"{type(exc).__name__}: {exc}")[:2000]
    return Outcome(episode, failed_record(episode, message, getattr(exc, "spent", None)))


async def play_outcome(episode: Episode, factory: AgentFactory) -> Outcome:
    """Play one episode; an exception becomes a failed record (never fatal: --resume retries it)."""
    try:
        record, decisions = await play_episode(episode, factory, episode.agent.params.get("framing"))
    except Exception as exc:
        return failed_outcome(episode, exc)
    return Outcome(episode, record, decisions)


# Each decision's row lives until its episode ends, so an episode of n decisions adds n tracked
# objects that die together: at CPython's default young threshold (700) they were traversed by 4x
# the bare loop's collections, and promoted, only to die soon after (0.55-0.7 us of the runner's
# ~4 us per decision: benchmarks/gc_collections.py). A young generation of 10,000 lets most die uncollected.
YOUNG_THRESHOLD = 10_000


def tune_collector() -> tuple[int, int, int]:
    """Set this process's collector for playing episodes; returns the thresholds it replaced.

    The heap from before (imported modules, litellm's price table: ~490k objects in a test
    process) is frozen: left out of full collections, each of which walked it again (0.3 s)."""
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(previous[0], YOUNG_THRESHOLD), *previous[1:])
    return previous


@contextmanager
def episode_collector():
    """The collector tuned for a run while it runs (the driver's process is the caller's: its
    thresholds come back after, and its old heap is collected again as usual)."""
    previous = tune_collector()
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


class EpisodeWorker:
    """Plays episodes in a worker process with agents resolved once per worker.

    `specs` (agent name -> AgentSpec) are the driver's; an episode of an agent not among them
    is played with its own spec. `budget` (a harness._remote.BudgetLink) links the episodes to
    the driver's cost cap.
    """

    def __init__(self, specs: Mapping[str, AgentSpec] | None = None, budget: Any = None) -> None:
        self._specs = dict(specs or {})
        self._factories: dict[str, AgentFactory] = {}
        self._resources = RunResources()
        self._budget = budget

    def _factory(self, spec: AgentSpec) -> AgentFactory:
        factory = self._factories.get(spec.name)
        if factory is None:
            factory = resolve(self._specs.get(spec.name, spec))
            factory.open(self._resources)
            self._factories[spec.name] = factory
        return factory

    async def play(self, episode: Episode) -> Outcome:
        try:
            factory = self._factory(episode.agent)
        except Exception as exc:  # an agent this worker cannot build fails its episodes, not the run
            return failed_outcome(episode, exc)
        token = RUN_BUDGET.set(self._budget.for_episode(episode.key) if self._budget is not None else None)
        try:
            return await play_outcome(episode, factory)
        finally:
            RUN_BUDGET.reset(token)

    async def aclose(self) -> None:
        try:
            await self._resources.aclose()
        finally:
            for factory in self._factories.values():
                await factory.aclose()
            if self._budget is not None:
                self._budget.close()


def play_elsewhere(episode: Episode) -> Outcome:
    """Play one episode in a worker process: resolve its agent, open resources, play, close them."""

    async def go() -> Outcome:
        worker = EpisodeWorker()
        try:
            return await worker.play(episode)
        finally:
            await worker.aclose()

    return asyncio.run(go())


class LocalExecutor:
    """Episodes as asyncio tasks in this process, `concurrency` in flight.

    Synchronous agents (algorithms) play a whole episode without yielding; language agents
    wait on their provider calls concurrently. The factories are opened once for the run in
    one `RunResources` (shared LLM endpoint limits, one client per agent spec) and closed in
    `finally`, whatever happens.
    """

    async def run(self, episodes: Iterator[Episode], deliver: Callable[[Outcome], None], *,
                  factories: Mapping[str, AgentFactory], concurrency: int) -> None:
        resources = RunResources()
        try:
            for factory in factories.values():
                factory.open(resources)

            async def worker() -> None:
                for episode in episodes:  # a shared lazy iterator: memory stays flat in the plan's size
                    deliver(await play_outcome(episode, factories[episode.agent.name]))
                    await asyncio.sleep(0)  # let other workers and the progress display run

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        finally:
            try:
                await resources.aclose()
            finally:
                for factory in factories.values():
                    await factory.aclose()


EXECUTORS: Registry[Any] = Registry("executor", "regret_harness.executors")
EXECUTORS.add("local", LocalExecutor, help="asyncio in this process (the default)", source="builtin")
EXECUTORS.lazy("process", "harness._process:ProcessExecutor",
               help="worker processes on this machine, one per core by default (CPU-bound suites)")
EXECUTORS.lazy("ray", "harness._ray:RayExecutor", help="Ray actors on a local or existing cluster (extra: ray)")


def get_executor(executor: str | Executor, **options: Any) -> Executor:
    """An executor by registered name (a new instance of its class, built with `options` such as
    `workers` or `address`; an option given as None is left out), or the object itself. An option
    the executor does not take is a ConfigError naming the options it does take."""
    options = {name: value for name, value in options.items() if value is not None}
    if not isinstance(executor, str):
        if options:
            raise ConfigError(f"executor options {sorted(options)} apply to a named executor, not to an object")
        return executor
    target = EXECUTORS.get(executor)
    if not isinstance(target, type):
        if options:
            raise ConfigError(f"executor {executor!r} takes no options (got {', '.join(sorted(options))})")
        return target
    accepted = {name for name, parameter in inspect.signature(target).parameters.items()
                if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)}
    unknown = sorted(set(options) - accepted)
    if unknown:
        takes = f"takes only {', '.join(sorted(accepted))}" if accepted else "takes no options"
        raise ConfigError(f"executor {executor!r} {takes} (got {', '.join(unknown)})")
    return target(**options)
