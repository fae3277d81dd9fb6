"""A run's spending cap, shared by every paid call of the run (created by the runner, never global).

The cap is hard: before each provider call the caller reserves the call's worst case (its prompt
at most one token per byte, plus `max_tokens`, at the model's price) and the reservation is
refused when spent + reserved + worst case would pass the cap. After the call the reservation
is replaced by what the call cost. So the total never exceeds the cap, whatever the
concurrency; the price is that a run may stop with up to one worst case per call in flight
left unspent.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from scenarios import RegretError


class CostCapReached(RegretError):
    """A paid call was not made: its worst case would have passed the run's cost cap."""


@dataclass(slots=True)
class Spend:
    """What an episode has spent so far (kept for failed and partial episodes too)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    attempts: int = 0
    latency_s: float = 0.0


class CostBudget:
    """reserve(worst) before a call, settle(worst, actual) after it; `cap = None` only counts."""

    def __init__(self, cap: float | None = None, spent: float = 0.0) -> None:
        self.cap = cap
        self.spent = float(spent)
        self.reserved = 0.0
        self.refused = 0  # calls not made because of the cap

    def reserve(self, worst: float) -> None:
        if self.cap is not None and self.spent + self.reserved + worst > self.cap:
            self.refused += 1
            raise CostCapReached(f"cost cap ${self.cap:g} reached: ${self.spent:.6f} spent, ${self.reserved:.6f} "
                                 f"reserved by calls in flight, and the next call could cost up to ${worst:.6f}")
        self.reserved += worst

    def settle(self, worst: float, actual: float) -> None:
        self.reserved = max(0.0, self.reserved - worst)
        self.spent += actual

    @property
    def exhausted(self) -> bool:
        return self.cap is not None and (self.refused > 0 or self.spent >= self.cap)


# the budget of the run in progress: set by the run driver around its executor and reset after,
# so every episode task of that run (and only of that run) reserves against it
RUN_BUDGET: ContextVar[CostBudget | None] = ContextVar("regret_run_budget", default=None)
