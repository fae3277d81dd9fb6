"""The Ray executor: episodes on Ray actors, on this machine or an existing cluster (extra: ray).

    regret run --executor ray [--address ADDR] [--workers N]

`workers` actors (default: the cluster's CPUs), one CPU each, each build the run's agents once
(`EpisodeWorker`) and play `concurrency // workers` episodes at a time (at least one: language
agents wait on their provider concurrently). Episodes go to the actors as the plan's frozen
`Episode`s; their `Outcome`s come back to the driver, which alone writes the store, checks the
cost cap before each episode is handed out and serves each paid call's reservation
(`harness._remote.BudgetServer`, on the driver's node address). An actor that dies mid-episode
(its process killed, its node lost) is restarted by Ray; the episodes it was playing are
recorded as failed, never run twice behind the driver's back, and `--resume` plays them again.

Without `address` (and with no Ray already initialised) a local Ray is started for the run and
shut down after it; with one, the driver connects to that cluster (`auto`, `HOST:PORT` or
`ray://HOST:10001`) and disconnects after. Ray is imported here only, never by the core.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Iterator, Mapping

from agents import AgentFactory, AgentSpec
from harness._executor import EpisodeWorker, Outcome, tune_collector
from harness._plan import Episode
from harness._process import check_workers
from harness._remote import (BudgetAddress, BudgetLink, WorkerLost, WorkerStartError, budget_server, dispatch,
                             worker_specs)
from scenarios import ConfigError

INSTALL_HINT = "the ray executor needs Ray: pip install 'regret-harness[ray]'"
# settings the workers must share with the driver for identical results (Ray workers inherit the
# cluster's environment, not the driver's); provider API keys are not among them: they never
# travel in Ray's job metadata, each node's environment supplies them
FORWARDED_ENV = ("LITELLM_LOCAL_MODEL_COST_MAP", "LITELLM_MODE", "HF_HUB_OFFLINE", "OMP_NUM_THREADS")
FORWARDED_PREFIX = "REGRET_"


def forwarded_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items()
            if name in FORWARDED_ENV or (name.startswith(FORWARDED_PREFIX) and not
                                         any(secret in name for secret in ("KEY", "TOKEN", "SECRET")))}


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray


class RayEpisodeWorker:
    """A Ray actor (async: its episodes share one event loop) holding one EpisodeWorker.

    `env` (the driver's `forwarded_env()`) is set before anything is built: every forwarded
    setting is read when first used (litellm, the Hub and torch are imported lazily), and the
    actor's BLAS threads are Ray's (OMP_NUM_THREADS = the actor's one CPU). Not a Ray
    runtime_env: an actor with one cannot take one of the worker processes Ray keeps started,
    and waited 1.6-2.0 s for a fresh one instead of 1.0-1.2 s (2 actors on a local 2-CPU head).
    """

    def __init__(self, specs: Mapping[str, AgentSpec], budget: BudgetAddress | None,
                 env: Mapping[str, str] | None = None) -> None:
        os.environ.update(env or {})
        self._worker = EpisodeWorker(specs, BudgetLink(budget) if budget is not None else None)
        tune_collector()  # the actor's process is the run's: Ray's and our modules frozen (actor CPU -10%)

    async def play(self, episode: Episode) -> Outcome:
        return await self._worker.play(episode)

    def pid(self) -> int:
        return os.getpid()

    async def close(self) -> None:
        await self._worker.aclose()


def _error_line(text: str) -> str:
    """The line of a remote traceback that names the error ("OSError: ..."), else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b", line)]
    return (named or lines or [""])[-1][:300]


def _start_failure(exc: Exception) -> WorkerStartError | None:
    """Ray never restarts an actor whose constructor raised: waiting for it would hang the run."""
    if getattr(exc, "actor_init_failed", False):
        return WorkerStartError(f"a Ray actor could not start: {_error_line(str(exc))}")
    return None


async def _ready(actors: list, errors: tuple[type[Exception], ...]) -> None:
    """Every actor answers once before the first episode, or the run stops with the reason."""
    for outcome in await asyncio.gather(*(handle.pid.remote() for handle in actors), return_exceptions=True):
        if isinstance(outcome, errors) and (failure := _start_failure(outcome)) is not None:
            raise failure from None


async def _restarted(handle, errors: tuple[type[Exception], ...], timeout_s: float = 300.0) -> None:
    """Wait until a restarting actor answers again (else WorkerLost: the episode is not started;
    WorkerStartError when the restarted actor's constructor raised)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await handle.pid.remote()
            return
        except errors as exc:
            if (failure := _start_failure(exc)) is not None:
                raise failure from None
            if asyncio.get_running_loop().time() > deadline:
                raise WorkerLost(f"Ray actor did not come back: {str(exc).splitlines()[0][:300]}") from None
            await asyncio.sleep(0.2)


class RayExecutor:
    """Episodes on `workers` Ray actors of the cluster at `address` (default: a local Ray)."""

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        _ray()  # the install hint before anything is written
        self.address = address
        self.workers = check_workers(workers)

    async def run(self, episodes: Iterator[Episode], deliver: Callable[[Outcome], None], *,
                  factories: Mapping[str, AgentFactory], concurrency: int) -> None:
        ray = _ray()
        from ray.exceptions import ActorUnavailableError, RayActorError

        started = not ray.is_initialized()
        if started:  # a new local Ray gets `workers` CPUs; an existing cluster (or `ray job submit`'s) has its own
            local = self.address is None and not os.environ.get("RAY_ADDRESS")
            ray.init(address=self.address, num_cpus=self.workers if local else None,
                     include_dashboard=False, log_to_driver=False, configure_logging=False)
        actors = []
        budget = None
        try:
            workers = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            slots = max(1, concurrency // workers)
            # workers on other nodes reach the driver's budget on this node's cluster address
            budget = budget_server(ray.util.get_node_ip_address())
            actor = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0, max_concurrency=slots)(RayEpisodeWorker)
            specs, env = worker_specs(factories), forwarded_env()
            actors = [actor.remote(specs, budget.address if budget else None, env) for _ in range(workers)]
            await _ready(actors, (RayActorError, ActorUnavailableError))

            def player(handle):
                lost = False  # the actor died: wait for Ray's restart before handing it the next episode

                async def play(episode: Episode) -> Outcome:
                    nonlocal lost
                    if lost:
                        await _restarted(handle, (RayActorError, ActorUnavailableError))
                        lost = False
                    try:
                        return await handle.play.remote(episode)
                    except (RayActorError, ActorUnavailableError) as exc:
                        lost = True
                        raise WorkerLost(f"Ray actor died: {str(exc).splitlines()[0][:300]}") from None
                return play

            await dispatch(episodes, deliver, [player(a) for a in actors], slots, budget)
        finally:
            try:
                for handle in actors:  # release the actors' clients, then the actors
                    try:
                        await handle.close.remote()
                    except Exception:  # noqa: BLE001 - a dead actor has nothing left to close
                        pass
                    ray.kill(handle)
            finally:
                if budget is not None:
                    budget.close()
                if started:
                    ray.shutdown()
