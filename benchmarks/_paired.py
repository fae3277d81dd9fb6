"""The estimator of the benchmarks that compare two paths side by side (runner, LLM overhead, executors).

This machine's speed drifts by 10-20% within minutes, which a best-of-N of each path took for a
difference; so the paths run in paired rounds (the order alternated or rotated) and the figure is
the geometric mean over rounds of their time ratio, with the t-interval of the rounds' log ratios.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness import clustered_mean

def round_order(names: Sequence[str], round_: int) -> list[str]:
    """The paths in round `round_`'s order: rotated by one each round (two paths alternate)."""
    shift = round_ % len(names)
    return [*names[shift:], *names[:shift]]


def paired_ratio(numerators: Sequence[float], denominators: Sequence[float]) -> tuple[float, float, float]:
    """The geometric mean of numerators[i] / denominators[i] over the rounds, and its 95% interval."""
    estimate = clustered_mean([math.log(a / b) for a, b in zip(numerators, denominators, strict=True)])
    return math.exp(estimate.estimate), math.exp(estimate.ci_low), math.exp(estimate.ci_high)
