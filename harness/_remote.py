"""Episodes played away from the driver: the worker that plays them, the dispatch loop that feeds
workers, and the run's cost cap reached from other processes.

Shared by the executors that play elsewhere (`harness._process`, `harness._ray`):

- `EpisodeWorker` (harness._executor) lives in a worker process: agents resolved once from the
  driver's specs, opened for the worker's life, episodes played into `Outcome`s; here its
  `BudgetLink` reaches the driver's cap.
- `BudgetServer` serves the driver's `CostBudget` on a socket: every paid call in a worker
  reserves its worst case and settles what it cost here, through a `BudgetLink`, so the cap
  stays hard however many processes or machines play. It also keeps what each episode in
  flight has spent, so an episode whose worker died is recorded with the cost it had.
- `dispatch` pulls episodes from the driver's lazy iterator only for a free slot (the driver
  checks the cap at each pull) and turns a lost worker into a failed record of the episode it
  was playing: never retried behind the driver's back, so never duplicated; `--resume`
  plays it again.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

from agents import RUN_BUDGET, AgentFactory, CostBudget, CostCapReached, Spend
from harness._executor import Outcome
from harness._episode import failed_record
from harness._plan import Episode
from scenarios import RegretError

EpisodeKey = tuple[str, str, int]


class WorkerLost(Exception):
    """The worker playing an episode died (killed, out of memory, its node gone)."""


class WorkerStartError(RegretError):
    """A worker could not start (for example it cannot reach the driver's budget): the run stops,
    with what finished committed, instead of waiting for a worker that never comes."""


# --- the cost cap across processes ----------------------------------------------------------
@dataclass(frozen=True)
class BudgetAddress:
    """Where a worker reaches the driver's budget (picklable: it travels with the worker's start)."""

    address: tuple[str, int]
    authkey: bytes
    cap: float


class BudgetServer:
    """The driver's CostBudget, reserved and settled by workers over authenticated connections.

    One thread accepts connections and one serves each (a worker process holds one); a lock
    makes each reserve a single check-and-add however many workers ask at once.
    """

    def __init__(self, budget: CostBudget, host: str = "127.0.0.1") -> None:
        if budget.cap is None:
            raise ValueError("a BudgetServer serves a capped budget")
        self.budget = budget
        self._lock = threading.Lock()
        self._spent: dict[EpisodeKey, float] = {}  # what each episode in flight has spent so far
        self._connections: list[Connection] = []
        self._closed = False
        authkey = secrets.token_bytes(32)  # per run: only this run's workers can reserve
        self._listener = Listener((host, 0), authkey=authkey)
        self.address = BudgetAddress(self._listener.address, authkey, budget.cap)
        threading.Thread(target=self._accept, name="regret-budget", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection = self._listener.accept()
            except AuthenticationError:
                continue  # not one of ours
            except OSError:
                return
            if self._closed:
                connection.close()
                return
            self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), name="regret-budget-link", daemon=True).start()

    def _serve(self, connection: Connection) -> None:
        while True:
            try:
                operation, key, worst, actual = connection.recv()
                connection.send(self._answer(operation, key, worst, actual))
            except (EOFError, OSError):
                return

    def _answer(self, operation: str, key: EpisodeKey, worst: float, actual: float) -> str | None:
        with self._lock:
            if operation == "reserve":
                try:
                    self.budget.reserve(worst)
                except CostCapReached as exc:
                    return str(exc)  # raised again in the worker, whose call is not made
                return None
            self.budget.settle(worst, actual)
            self._spent[key] = self._spent.get(key, 0.0) + actual
            return None

    def delivered(self, key: EpisodeKey) -> float:
        """Forget an episode that came back; returns what its calls cost (for a lost one's record)."""
        with self._lock:
            return self._spent.pop(key, 0.0)

    def close(self) -> None:
        self._closed = True
        try:  # wake the accepting thread: closing a listening socket does not interrupt accept()
            Client(self.address.address, authkey=self.address.authkey).close()
        except OSError:
            pass
        self._listener.close()
        for connection in self._connections:
            connection.close()


class BudgetLink:
    """A worker's connection to the driver's BudgetServer (one per worker process)."""

    def __init__(self, address: BudgetAddress) -> None:
        self.cap = address.cap
        self._connection = Client(address.address, authkey=address.authkey)
        self._lock = threading.Lock()

    def ask(self, operation: str, key: EpisodeKey, worst: float, actual: float = 0.0) -> str | None:
        with self._lock:
            self._connection.send((operation, key, worst, actual))
            return self._connection.recv()

    def for_episode(self, key: EpisodeKey) -> RemoteBudget:
        return RemoteBudget(self, key)

    def close(self) -> None:
        self._connection.close()


class RemoteBudget:
    """What an LLM client sees as the run's budget inside a worker: reserve/settle go to the driver."""

    def __init__(self, link: BudgetLink, key: EpisodeKey) -> None:
        self._link, self._key = link, key
        self.cap = link.cap

    def reserve(self, worst: float) -> None:
        refused = self._link.ask("reserve", self._key, worst)
        if refused is not None:
            raise CostCapReached(refused)

    def settle(self, worst: float, actual: float) -> None:
        self._link.ask("settle", self._key, worst, actual)


def budget_server(host: str = "127.0.0.1") -> BudgetServer | None:
    """A server for the run's budget (the driver's RUN_BUDGET) when it has a cap; else None."""
    budget = RUN_BUDGET.get()
    return BudgetServer(budget, host) if budget is not None and budget.cap is not None else None


# --- the driver's side ------------------------------------------------------------------------
async def dispatch(episodes: Iterator[Episode], deliver: Callable[[Outcome], None],
                   plays: Sequence[Callable[[Episode], Awaitable[Outcome]]], slots: int,
                   budget: BudgetServer | None) -> None:
    """Feed each worker (`plays[i]` plays one episode there) `slots` episodes at a time."""

    async def feed(play: Callable[[Episode], Awaitable[Outcome]]) -> None:
        for episode in episodes:  # a shared lazy iterator: pulled only for a free slot
            try:
                outcome = await play(episode)
            except WorkerLost as exc:
                spent = Spend(cost=budget.delivered(episode.key)) if budget is not None else None
                outcome = Outcome(episode, failed_record(episode, f"worker lost mid-episode: {exc}", spent))
            else:
                if budget is not None:
                    budget.delivered(episode.key)
            deliver(outcome)

    await asyncio.gather(*(feed(play) for play in plays for _ in range(slots)))


def worker_specs(factories: Mapping[str, AgentFactory]) -> dict[str, Any]:
    """The driver's agent specs, as workers resolve them (today's settings, also on --resume)."""
    return {name: factory.spec for name, factory in factories.items()}
