"""Curriculum schedules for `regret iterate`: which difficulty levels each iteration trains on.

**Levels** are the suite's scenarios, ordered easy to hard by their instances' `difficulty()`
(the mean of each number over the scenario's suite instances, compared as a tuple in the
family's key order: graph tasks by `level`, bandits by horizon, then arms, then inverse gap).
So a graph suite with one scenario per level, or a bandit suite with K = 2, 5, 10 (or gaps
0.4, 0.2, 0.1), is a curriculum without further settings. Scenarios whose difficulty keys
differ keep the order they are written in.

**Budget.** Every schedule spends the same number of training tasks per iteration, the sum
over levels of the tasks a mixture would give each (`train_instances` per level, or each
scenario's suite instances), each played `rollouts` times: easy-to-hard and a fixed mixture
then compare at an equal sample budget. A schedule gives each iteration a weight per level;
the budget is split by largest remainders.

**Schedules** (registry `SCHEDULES`):
- `mixture`: equal weights on every level, every iteration (the loop's default);
- `easy-to-hard`: iteration i of N trains only on level floor(i * L / N) (contiguous stages);
- `adaptive`: starts on the easiest level and moves to the next one after an iteration whose
  acceptance rate at the current level reached `advance_at`.

The acceptance rate of a level in an iteration is the share of its rollouts the selector
kept; with the `threshold` selector (keep every rollout with regret <= max_regret; 0 keeps
exactly the correct answers of graph tasks) it is the model's success rate on the tasks it
trained on, so it rises as the model improves and saturates near 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scenarios._registry import Registry

# the band of starting accuracy a level can be learnt from by reward filtering (about 0.3-0.7)
LEARNABLE_BAND = (0.3, 0.7)


@dataclass(frozen=True)
class LevelHistory:
    """What a schedule may read: each finished iteration's acceptance rate per trained level."""

    acceptance: tuple[Mapping[str, float], ...] = ()


class Schedule:
    name = "schedule"

    def weights(self, levels: Sequence[str], iteration: int, iterations: int, history: LevelHistory,
                advance_at: float) -> dict[str, float]:
        raise NotImplementedError


SCHEDULES: Registry[type[Schedule]] = Registry("schedule", "regret_harness.schedules")


def schedule(name: str):
    def decorator(cls: type[Schedule]) -> type[Schedule]:
        cls.name = name
        return SCHEDULES.register(name)(cls)

    return decorator


@schedule("mixture")
class Mixture(Schedule):
    """Every level every iteration, equal shares (a fixed mixture)."""

    def weights(self, levels, iteration, iterations, history, advance_at):
        return {level: 1.0 for level in levels}


@schedule("easy-to-hard")
class EasyToHard(Schedule):
    """Iteration i of N trains only on level floor(i * L / N): contiguous stages, easy first."""

    def weights(self, levels, iteration, iterations, history, advance_at):
        stage = min(iteration * len(levels) // max(iterations, 1), len(levels) - 1)
        return {level: float(j == stage) for j, level in enumerate(levels)}


@schedule("adaptive")
class Adaptive(Schedule):
    """The current level until its acceptance rate reaches advance_at, then the next one."""

    def weights(self, levels, iteration, iterations, history, advance_at):
        current = adaptive_level(levels, history, advance_at)
        return {level: float(j == current) for j, level in enumerate(levels)}


def adaptive_level(levels: Sequence[str], history: LevelHistory, advance_at: float) -> int:
    """The adaptive schedule's level index after the recorded iterations."""
    current = 0
    for record in history.acceptance:
        rate = record.get(levels[current])
        if rate is not None and not math.isnan(rate) and rate >= advance_at and current < len(levels) - 1:
            current += 1
    return current


def get_schedule(name: str) -> Schedule:
    return SCHEDULES.get(name)()


def order_levels(entries: Sequence[Any]) -> list[Any]:
    """The scenario entries sorted easy to hard by their instances' mean difficulty (see above)."""
    from scenarios import make

    keyed = []
    for entry in entries:
        values = [make(entry.family, entry.params, seed).difficulty() for seed in entry.instance_seeds]
        keys = tuple(values[0])
        keyed.append((keys, tuple(sum(v[k] for v in values) / len(values) for k in keys)))
    if len({keys for keys, _ in keyed}) != 1:
        return list(entries)
    order = sorted(range(len(entries)), key=lambda j: (keyed[j][1], j))
    return [entries[j] for j in order]


def allocate(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split `total` tasks by weight (largest remainders; ties to the earlier level)."""
    mass = sum(w for w in weights.values() if w > 0)
    if total < 0 or mass <= 0:
        raise ValueError(f"cannot split {total} tasks over weights {dict(weights)}")
    exact = {level: total * max(w, 0.0) / mass for level, w in weights.items()}
    counts = {level: int(math.floor(x)) for level, x in exact.items()}
    left = total - sum(counts.values())
    for level in sorted(exact, key=lambda lv: -(exact[lv] - counts[lv]))[:left]:
        counts[level] += 1
    return counts


def outside_band(rate: float, band: tuple[float, float] = LEARNABLE_BAND) -> str | None:
    """Why a level's starting accuracy is hard to learn from, or None when inside the band."""
    if rate is None or math.isnan(rate):
        return None
    if rate < band[0]:
        return f"starting accuracy {rate:.2f} is below {band[0]}: few correct samples to learn from (too hard)"
    if rate > band[1]:
        return f"starting accuracy {rate:.2f} is above {band[1]}: little left to learn (too easy)"
    return None
