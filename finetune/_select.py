"""Which trajectories go into a dataset: selectors as polars expressions over the episodes table.

A *task* is a scenario instance (`task_id`); every selector ranks the eligible episodes of
each task and keeps some of them. Ties are broken deterministically by (agent, rollout, run)
after the selector's own key, so the same runs always give the same selection.

Eligible episodes: `status == "finished"`, and with `drop_invalid` (the default) no decision
whose parse failed or fell back (`n_invalid == 0`); optionally only some agents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from scenarios import ConfigError

if TYPE_CHECKING:  # polars is imported lazily: `import finetune` stays light
    import polars as pl

# the columns that identify an episode within one run, and across several runs
RUN_EPISODE_KEY = ["agent", "task_id", "rollout"]
EPISODE_KEY = ("run", *RUN_EPISODE_KEY)
# deterministic tie-break after a selector's own sort key
TIE_BREAK = ("agent", "rollout", "run")


@dataclass(frozen=True)
class Selector:
    """Base class: rank each task's episodes by `sort_by` (ascending unless `descending`), keep some."""

    name: ClassVar[str] = "selector"
    sort_by: ClassVar[str] = "final_regret"
    descending: ClassVar[bool] = False

    def keep(self) -> pl.Expr:
        """A boolean expression over the ranked columns `rank` (0-based within the task) and `task_size`."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sort_by": self.sort_by, "descending": self.descending,
                "tie_break": list(TIE_BREAK), **asdict(self)}


@dataclass(frozen=True)
class KLowestRegret(Selector):
    """Iterative RMFT: the k lowest-regret trajectories of every task."""

    name: ClassVar[str] = "k-lowest"
    k: int = field(default=1, metadata={"help": "trajectories kept per task (the k lowest final regrets)"})

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"k must be an integer >= 1, got {self.k!r}")

    def keep(self) -> pl.Expr:
        import polars as pl

        return pl.col("rank") < self.k


@dataclass(frozen=True)
class LowestRegretFraction(Selector):
    """The lowest-regret fraction of every task: ceil(fraction * n) of its n eligible episodes."""

    name: ClassVar[str] = "fraction"
    fraction: float = field(default=0.1, metadata={"help": "share of each task's trajectories kept, in (0, 1]"})

    def __post_init__(self) -> None:
        if not (isinstance(self.fraction, (int, float)) and 0.0 < self.fraction <= 1.0):
            raise ConfigError(f"fraction must be in (0, 1], got {self.fraction!r}")

    def keep(self) -> pl.Expr:
        import polars as pl

        # ceil in floats: 0.3 * 10 is 3.0000000000000004, so round away the noise first
        quota = (pl.col("task_size").cast(pl.Float64) * self.fraction).round(9).ceil()
        return pl.col("rank") < quota


@dataclass(frozen=True)
class RegretThreshold(Selector):
    """Every trajectory whose final regret is at most `max_regret` (any number per task)."""

    name: ClassVar[str] = "threshold"
    max_regret: float = field(default=0.0, metadata={"help": "keep trajectories with final regret <= this"})

    def __post_init__(self) -> None:
        if not isinstance(self.max_regret, (int, float)) or not math.isfinite(self.max_regret):
            raise ConfigError(f"max_regret must be a finite number, got {self.max_regret!r}")

    def keep(self) -> pl.Expr:
        import polars as pl

        return pl.col("final_regret") <= self.max_regret


@dataclass(frozen=True)
class TopReward(Selector):
    """Reward-filtered: the k highest-total-reward trajectories of every task.

    The RMFT paper's ablation: on adversarial and non-stationary tasks the highest-reward
    trajectories are often not the lowest-regret ones, and training on them fails. Kept for
    comparison.
    """

    name: ClassVar[str] = "top-reward"
    sort_by: ClassVar[str] = "total_reward"
    descending: ClassVar[bool] = True
    k: int = field(default=1, metadata={"help": "trajectories kept per task (the k highest total rewards)"})

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"k must be an integer >= 1, got {self.k!r}")

    def keep(self) -> pl.Expr:
        import polars as pl

        return pl.col("rank") < self.k


def eligible_episodes(episodes: pl.LazyFrame, *, drop_invalid: bool = True,
                      agents: Sequence[str] | None = None) -> pl.LazyFrame:
    """Finished episodes (without invalid decisions when `drop_invalid`), of `agents` if given."""
    import polars as pl

    frame = episodes.filter(pl.col("status") == "finished")
    if drop_invalid:
        frame = frame.filter(pl.col("n_invalid") == 0)
    if agents:
        frame = frame.filter(pl.col("agent").is_in(list(agents)))
    return frame


def rank_episodes(episodes: pl.LazyFrame, selector: Selector) -> pl.LazyFrame:
    """Add `rank` (0-based position in the task's order), `task_size` and `kept` to every episode."""
    import polars as pl

    order = [selector.sort_by, *TIE_BREAK]
    ranked = episodes.sort(["task_id", *order], descending=[False, selector.descending, False, False, False])
    return ranked.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over("task_id").alias("rank"),
        pl.len().over("task_id").cast(pl.Int64).alias("task_size"),
    ).with_columns(selector.keep().alias("kept"))


def select_episodes(episodes: pl.LazyFrame, selector: Selector, *, drop_invalid: bool = True,
                    agents: Sequence[str] | None = None) -> pl.LazyFrame:
    """The kept episodes, ordered by task and then by the selector's rank."""
    import polars as pl

    eligible = eligible_episodes(episodes, drop_invalid=drop_invalid, agents=agents)
    return rank_episodes(eligible, selector).filter(pl.col("kept"))


def select_decisions(decisions: Mapping[str, pl.LazyFrame] | pl.LazyFrame, kept_episodes: pl.DataFrame) -> pl.LazyFrame:
    """The decision rows of the kept episodes, in the order of each run's `decisions` frame.

    `decisions` maps each run's name to its LazyFrame (as `load_runs` gives them), or is one
    run's frame. The kept keys become a filter, per run, on (agent, task_id, rollout): a
    predicate polars pushes into the Parquet scan, which then decodes the wide text columns
    (messages, outputs, info) only for the kept rows. A run's `decisions.parquet` is sorted by
    (agent, task_id, rollout, t), so the rows come out in play order without a sort.
    """
    import polars as pl

    frames = {None: decisions} if isinstance(decisions, pl.LazyFrame) else dict(decisions)
    parts = []
    for run, frame in frames.items():
        keys = kept_episodes if run is None else kept_episodes.filter(pl.col("run") == run)
        if keys.height:
            wanted = keys.select(pl.struct(RUN_EPISODE_KEY)).to_series().implode()
            parts.append(frame.filter(pl.struct(RUN_EPISODE_KEY).is_in(wanted)))
    if not parts:
        return next(iter(frames.values())).filter(pl.lit(False))
    return pl.concat(parts)
