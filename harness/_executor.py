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

`LocalExecutor` (asyncio in this process) is the built-in. An executor that plays episodes in
other processes cannot ship the driver's `factories` (they hold clients and closures): it
sends the `Episode` and calls `play_elsewhere(episode)` there, which resolves the agent from
its spec, opens and closes run-scoped resources around the episode, and returns the Outcome.
Results are the same wherever an episode runs: its seeds come from the plan, not the executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from agents import AgentFactory, RunResources, resolve
from harness._episode import EpisodeFailed, failed_record, play_episode, redact
from harness._plan import Episode
from harness._records import DecisionRows, EpisodeRecord
from harness._store import FAILED
from scenarios import Registry


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


async def play_outcome(episode: Episode, factory: AgentFactory) -> Outcome:
    """Play one episode; an exception becomes a failed record (never fatal: --resume retries it)."""
    try:
        record, decisions = await play_episode(episode, factory, episode.agent.params.get("framing"))
    except Exception as exc:
        message = redact(str(exc) if isinstance(exc, EpisodeFailed) else f"{type(exc).__name__}: {exc}")[:2000]
        return Outcome(episode, failed_record(episode, message, getattr(exc, "spent", None)))  # redacted, then cut
    return Outcome(episode, record, decisions)


def play_elsewhere(episode: Episode) -> Outcome:
    """Play one episode in a worker process: resolve its agent, open resources, play, close them."""

    async def go() -> Outcome:
        factory = resolve(episode.agent)
        resources = RunResources()
        try:
            factory.open(resources)
            return await play_outcome(episode, factory)
        finally:
            await resources.aclose()
            await factory.aclose()

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


def get_executor(executor: str | Executor) -> Executor:
    """An executor by registered name (a new instance of its class), or the object itself."""
    if isinstance(executor, str):
        target = EXECUTORS.get(executor)
        return target() if isinstance(target, type) else target
    return executor
