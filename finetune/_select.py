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

    def weight(self) -> pl.Expr:
        """Each kept trajectory's training weight (a column over the task's ranked episodes); 1 unless overridden."""
        import polars as pl

        return pl.lit(1.0)

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


@dataclass(frozen=True)
class AdvantageWeighted(Selector):
    """Every trajectory, weighted by how much better than its task's average it did (a signed objective).

    weight = (mean(u) - u) / std(u) over the task's eligible rollouts, with u = regret
    (`risk_aversion` 0) or exp(risk_aversion * regret) (entropic risk: high regrets count for
    more). k-lowest keeps each task's luckiest rollouts, so it favours rules with wide outcome
    distributions (early commitment wins big when the first pick was right); here a rule's
    expected weight is its expected advantage, and its unlucky rollouts count against it with a
    negative weight (the backend pushes their actions' probabilities down). `signed=False` keeps
    only the better-than-average rollouts (advantage-weighted regression). Tasks whose rollouts
    all tie carry no signal and are dropped. Needs a backend that takes signed weights (torch).
    """

    name: ClassVar[str] = "advantage"
    risk_aversion: float = field(default=0.0, metadata={
        "help": "0: advantage of regret itself; > 0: of exp(risk_aversion * regret), so the tail weighs more"})
    signed: bool = field(default=True, metadata={
        "help": "keep worse-than-average rollouts too, with negative weights (else only the better ones)"})

    def __post_init__(self) -> None:
        if isinstance(self.risk_aversion, bool) or not isinstance(self.risk_aversion, (int, float)) \
                or not (math.isfinite(self.risk_aversion) and self.risk_aversion >= 0):
            raise ConfigError(f"risk_aversion must be a finite number >= 0, got {self.risk_aversion!r}")

    def weight(self) -> pl.Expr:
        import polars as pl

        regret = pl.col("final_regret")
        # shifted by the task's largest regret so exp never overflows; the scale cancels below
        utility = (regret if self.risk_aversion == 0
                   else ((regret - regret.max().over("task_id")) * self.risk_aversion).exp())
        spread = utility.std(ddof=0).over("task_id")
        advantage = (utility.mean().over("task_id") - utility) / spread
        return pl.when(spread > 0).then(advantage).otherwise(0.0)

    def keep(self) -> pl.Expr:
        return self.weight() != 0 if self.signed else self.weight() > 0


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
    """Add `rank` (0-based position in the task's order), `task_size`, `kept` and `weight` to every episode."""
    import polars as pl

    order = [selector.sort_by, *TIE_BREAK]
    ranked = episodes.sort(["task_id", *order], descending=[False, selector.descending, False, False, False])
    return ranked.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over("task_id").alias("rank"),
        pl.len().over("task_id").cast(pl.Int64).alias("task_size"),
    ).with_columns(selector.keep().alias("kept"), selector.weight().alias("weight"))


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
