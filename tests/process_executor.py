"""An executor in one file: episodes played in worker processes (the worked example of docs/extending.md).

Episodes go to the workers as the plan's frozen `Episode`s (picklable); each worker resolves
the agent from its spec and plays with `harness.play_elsewhere`; finished records come back and
the driver writes them. Register it with `EXECUTORS.add("processes", ProcessExecutor)` (or an
entry point in "regret_harness.executors").
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from harness import play_elsewhere


class ProcessExecutor:
    """Up to `workers` episodes at once, each in a spawned process."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers

    async def run(self, episodes, deliver, *, factories, concurrency):
        loop = asyncio.get_running_loop()
        context = multiprocessing.get_context("spawn")  # no fork of a threaded process
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=context) as pool:

            async def worker():
                for episode in episodes:  # pulls only when a slot is free: the driver's cost cap holds
                    deliver(await loop.run_in_executor(pool, play_elsewhere, episode))

            await asyncio.gather(*(worker() for _ in range(min(self.workers, concurrency))))
