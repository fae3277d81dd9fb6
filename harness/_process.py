"""The multi-process executor: both cores (or all of them) for CPU-bound suites, without Ray.

    regret run --executor process [--workers N]

`workers` spawned processes (default: the cores this process may use) each build the run's
agents once (`EpisodeWorker`) and play the episodes the driver sends them, `concurrency //
workers` at a time (at least one); finished `Outcome`s come back over a pipe and the driver
alone writes the store. A worker that dies takes only its episodes in flight with it: they
are recorded as failed (with what they had spent) and a fresh process takes its place.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from agents import AgentFactory, AgentSpec
from harness._executor import EpisodeWorker, Outcome, tune_collector
from harness._plan import Episode
from harness._remote import (BudgetAddress, BudgetLink, WorkerLost, WorkerStartError, budget_server, dispatch,
                             worker_specs)
from scenarios import ConfigError


def check_workers(workers: int | None) -> int | None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
    return workers


START_FAILED = -1  # the id of a worker's message that it could not start (then the reason)


def serve_episodes(connection, specs: Mapping[str, AgentSpec], budget: BudgetAddress | None) -> None:
    """A worker process's main: play each (id, episode) received, send back (id, outcome)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per worker, as Ray sets for its tasks
    asyncio.run(_serve(connection, specs, budget))


async def _serve(connection, specs: Mapping[str, AgentSpec], budget: BudgetAddress | None) -> None:
    loop = asyncio.get_running_loop()
    try:
        worker = EpisodeWorker(specs, BudgetLink(budget) if budget is not None else None)
    except Exception as exc:  # noqa: BLE001 - every episode here would fail the same way: the driver stops the run
        connection.send((START_FAILED, f"{type(exc).__name__}: {exc}"[:300]))
        connection.close()
        return
    tune_collector()  # the worker's process is the run's
    inbox: asyncio.Queue = asyncio.Queue()

    def readable() -> None:
        try:
            inbox.put_nowait(connection.recv())
        except (EOFError, OSError):  # the driver is gone
            inbox.put_nowait(None)

    async def play(ident: int, episode: Episode) -> None:
        connection.send((ident, await worker.play(episode)))

    loop.add_reader(connection.fileno(), readable)
    tasks: set[asyncio.Task] = set()
    try:
        while (request := await inbox.get()) is not None:
            task = asyncio.create_task(play(*request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    finally:
        loop.remove_reader(connection.fileno())
        await worker.aclose()
        connection.close()


class _WorkerProcess:
    """The driver's handle on one worker process; restarted on the next episode after it dies."""

    def __init__(self, context, specs: Mapping[str, AgentSpec], budget: BudgetAddress | None) -> None:
        self._context, self._specs, self._budget = context, specs, budget
        self._ids = itertools.count()
        self._pending: dict[int, asyncio.Future] = {}
        self.process = None
        self._connection = None

    def _start(self) -> None:
        parent, child = self._context.Pipe()
        process = self._context.Process(target=serve_episodes, args=(child, self._specs, self._budget),
                                        name="regret-worker", daemon=True)
        try:
            process.start()  # a script without `if __name__ == "__main__":` fails here (spawn re-imports it)
        finally:
            child.close()
        self.process, self._connection = process, parent
        asyncio.get_running_loop().add_reader(parent.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            ident, outcome = self._connection.recv()
        except (EOFError, OSError):
            self._lost()
            return
        if ident == START_FAILED:
            self._lost(WorkerStartError(f"a worker process could not start: {outcome}"))
            return
        future = self._pending.pop(ident, None)
        if future is not None and not future.done():
            future.set_result(outcome)

    def _lost(self, why: Exception | None = None) -> None:
        asyncio.get_running_loop().remove_reader(self._connection.fileno())
        self._connection.close()
        self._connection = None
        self.process.join(5)
        why = why or WorkerLost(f"worker process {self.process.pid} exited (code {self.process.exitcode})")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(why)
        self._pending.clear()

    async def play(self, episode: Episode) -> Outcome:
        if self._connection is None:
            self._start()
        ident = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            self._connection.send((ident, episode))
        except OSError as exc:  # it died since the last answer; its reader reports the rest
            self._pending.pop(ident, None)
            raise WorkerLost(f"worker process {self.process.pid}: {exc}") from None
        return await future

    def stop(self) -> None:
        if self._connection is not None:
            asyncio.get_running_loop().remove_reader(self._connection.fileno())
            try:
                self._connection.send(None)  # finish and close cleanly
            except OSError:
                pass
            self._connection.close()
            self._connection = None
        if self.process is not None:
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)


class ProcessExecutor:
    """Episodes in `workers` spawned processes on this machine (default: one per usable core)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = check_workers(workers)

    async def run(self, episodes: Iterator[Episode], deliver: Callable[[Outcome], None], *,
                  factories: Mapping[str, AgentFactory], concurrency: int) -> None:
        workers = self.workers or len(os.sched_getaffinity(0))
        context = multiprocessing.get_context("spawn")  # no fork of a threaded driver
        budget = budget_server()
        specs: dict[str, Any] = worker_specs(factories)
        handles = [_WorkerProcess(context, specs, budget.address if budget else None) for _ in range(workers)]
        try:
            await dispatch(episodes, deliver, [h.play for h in handles], max(1, concurrency // workers), budget)
        finally:
            try:
                for handle in handles:
                    handle.stop()
            finally:
                if budget is not None:
                    budget.close()
