"""Metrics over a run: regret statistics, regret-growth fits, bandit exploration, the leaderboard.

Everything here works on the run tables of `harness._store` (`load_run(dir)` gives them as
polars LazyFrames) with polars expressions; Python only loops over (agent, scenario) groups,
never over decision rows, so a run with millions of decisions is summarised in well under a
second or two.

Conventions
-----------
- The decisions table's `t` is the 0-based round index; the cumulative regret in that row is
  R_{t+1}, the regret after `t + 1` rounds. Regret curves keep the 0-based `t` (so they join
  with the decisions table); growth fits use the 1-based round number `t + 1`.
- Statistics are pooled over every finished episode of an (agent, scenario_id), across the
  scenario's task instances. Failed episodes are counted (`failed`) but have no regret.
- Missing statistics (a standard deviation of one episode, a fit with too few points, bandit
  metrics of a non-bandit) are null in frames; the scalar helpers `mean_ci` and `fit_growth`
  return NaN instead.

Metric definitions
------------------
- mean_regret with ci_low/ci_high: the mean final regret over finished episodes with a
  task-clustered 95% interval (`harness._stats.clustered_mean`, scope "instances": CR1
  standard errors over tasks, Student t with tasks - 1 degrees of freedom). `tasks` and
  `episodes` say how many tasks and episodes it rests on; `ci_method` is "clustered", or
  "single task" when the scenario has one task (then the interval is over that instance's
  episodes and says nothing about other instances).
- beta: the regret-growth slope of Park et al. (arXiv 2511.04393), fitted per episode by least
  squares of log R_t = beta log t + c (t the 1-based round) on the rounds with R_t > 1e-9
  (an exact zero computed in floating point can come out as 1e-17, whose log would dominate
  the fit), skipping the first 10% of rounds (burn-in: early rounds are dominated by forced
  exploration and would bend the slope), and averaged over the (agent, scenario)'s episodes.
  beta_ci_low/beta_ci_high: its task-clustered 95% interval; beta_pvalue: the one-sided
  p-value of H0: beta >= 1 against H1: beta < 1 (`harness._stats.sublinearity_test`);
  sublinear: beta_pvalue < 0.05 (null when untestable, e.g. an oracle whose regret is zero).
  Earlier versions fitted one line to the mean curve and took a regression p-value from its
  points, which are not independent: that test called ~40% of linear curves sublinear.
- SuffFailFreq (Krishnamurthy et al., "Can large language models explore in-context?"):
  the fraction of episodes that never play the optimal action in the second half of the
  episode (0-based rounds t >= T/2, T the horizon). "Optimal" is the row's `optimal_action`,
  which for stationary bandits (bandit/bernoulli, bandit/gaussian) is the best arm and for
  non-stationary ones the best arm of that round. Ties between equally good arms are not
  recognised: only `action == optimal_action` counts.
- MinFrac: the mean over episodes of K times the smallest fraction of the episode's decisions
  given to any arm (an arm never pulled gives 0), K = `n_actions` of the episode. 1 means
  perfectly uniform exploration, 0 means some arm was never tried.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness._stats import BURN_IN, MIN_REGRET, clustered_mean, growth_slopes, sublinearity_test

if TYPE_CHECKING:  # polars is imported lazily at run time (see harness/__init__.py)
    import polars as pl

KEYS = ("agent", "scenario_id")
EPISODE_KEYS = ("agent", "scenario_id", "task_id", "rollout")
DECIMALS = 6
# polars' streaming engine (the default of `collect` in polars 2) adds partial float sums in
# whatever order its threads finish, so two collects of the same data can differ in the last
# bits; the in-memory engine is reproducible, which identical-plan runs and report files need.
ENGINE = "in-memory"

LEVEL = 0.95  # confidence level of every leaderboard interval
ALPHA = 0.05  # level of the sublinearity verdict
LEADERBOARD_COLUMNS = (
    "agent", "scenario_id", "family", "tasks", "episodes", "failed", "mean_regret", "ci_low", "ci_high", "ci_method",
    "std_regret", "median_regret", "p90_regret", "beta", "beta_ci_low", "beta_ci_high", "beta_pvalue", "sublinear",
    "suff_fail_freq", "min_frac", "invalid_rate", "prompt_tokens", "completion_tokens", "cost",
)


# --- scalar helpers ----------------------------------------------------------------------
def mean_ci(values: Sequence[float] | Any, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval (sample standard deviation, n - 1 dof), treating
    the values as independent (`harness._stats.clustered_mean` without task labels).

    With one value the interval is undefined and both bounds are NaN (a zero-width interval
    would claim certainty that one episode cannot give); with none, all three are NaN.
    Nulls/NaNs in `values` are dropped.

    >>> mean, low, high = mean_ci([1.0, 2.0, 3.0])
    >>> mean, round(low, 4), round(high, 4)
    (2.0, -0.4841, 4.4841)
    >>> mean_ci([5.0, 5.0])
    (5.0, 5.0, 5.0)
    >>> mean_ci([4.0])
    (4.0, nan, nan)
    """
    estimate = clustered_mean(_to_numpy(values), level=level)
    return (estimate.estimate, estimate.ci_low, estimate.ci_high)


@dataclass(frozen=True)
class GrowthFit:
    """Least-squares fit of log R_t = beta log t + intercept to one curve (NaN when it cannot be fitted).

    Descriptive only: the points of one cumulative curve are not independent, so no p-value is
    given; test sublinearity over episodes with `harness._stats.sublinearity_test`.
    """

    beta: float
    intercept: float
    n_points: int  # rounds used (R_t > 0, after burn-in)


def fit_growth(t: Sequence[float] | Any, cumulative_regret: Sequence[float] | Any, burn_in: float = 0.0) -> GrowthFit:
    """Fit the regret-growth slope beta of log R_t = beta log t + c to one curve (Park et al., arXiv 2511.04393).

    `t` is the 1-based round number (a decisions row's `t + 1`), `cumulative_regret` is R_t.
    Only rounds with R_t > 0 (> `MIN_REGRET` = 1e-9, to ignore float noise) are used; with
    `burn_in = f` the rounds t <= floor(f * max t) are skipped too (the leaderboard uses 0.1).
    Fewer than 3 usable points give NaNs. This is `harness._stats.growth_slopes` for one episode.

    >>> import numpy as np
    >>> rounds = np.arange(1, 101)
    >>> fit = fit_growth(rounds, 3 * np.sqrt(rounds))
    >>> round(fit.beta, 6), round(fit.intercept, 6), fit.n_points
    (0.5, 1.098612, 100)
    >>> fit_growth([1, 2], [1.0, 2.0]).n_points
    2
    """
    import numpy as np

    t_array = np.asarray(_to_numpy(t), dtype=float).ravel()
    r_array = np.asarray(_to_numpy(cumulative_regret), dtype=float).ravel()
    if t_array.shape != r_array.shape:
        raise ValueError(f"t and cumulative_regret differ in length ({t_array.size} vs {r_array.size})")
    if t_array.size == 0:
        return GrowthFit(math.nan, math.nan, 0)
    fits = growth_slopes(r_array, t_array, np.zeros(t_array.size, dtype=np.int64), burn_in=burn_in)
    return GrowthFit(float(fits.beta[0]), float(fits.intercept[0]), int(fits.n_points[0]))


# --- frame-level metrics -----------------------------------------------------------------
def regret_curves(decisions: pl.LazyFrame | pl.DataFrame, level: float = LEVEL) -> pl.DataFrame:
    """Mean cumulative regret per round over episodes with a task-clustered Student-t band.

    Returns columns agent, scenario_id, t (0-based round index), mean, low, high, n (episodes
    reaching that round), tasks, sorted by agent, scenario_id, t. The band is the one of
    `harness._stats.clustered_mean` at every round (CR1 over tasks, t with tasks - 1 df; with
    one task, the episodes' t-interval); low/high are null where it is undefined (n < 2).
    """
    import numpy as np
    import polars as pl
    from scipy.special import stdtrit

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    R = pl.col("cumulative_regret")
    by_round = [*KEYS, "t"]
    per_task = (
        _lazy(decisions).group_by(*by_round, "task_id").agg(total=R.sum(), count=R.count())
        .with_columns(mean=pl.col("total").sum().over(by_round) / pl.col("count").sum().over(by_round))
        .with_columns(residual=pl.col("total") - pl.col("count") * pl.col("mean"))
        .group_by(by_round).agg(mean=pl.col("mean").first(), n=pl.col("count").sum(), tasks=pl.len(),
                                cluster_ss=(pl.col("residual") ** 2).sum())
    )
    spread = _lazy(decisions).group_by(by_round).agg(std=R.std(ddof=1))  # the single-task (episodes) interval
    curves = per_task.join(spread, on=by_round, how="left").sort(by_round).collect(engine=ENGINE)
    n = curves["n"].to_numpy().astype(float)
    tasks = curves["tasks"].to_numpy().astype(float)
    clustered = tasks >= 2
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = np.where(clustered, tasks / (tasks - 1) * curves["cluster_ss"].to_numpy() / n**2,
                            curves["std"].cast(pl.Float64).fill_null(np.nan).to_numpy() ** 2 / n)
        df = np.where(clustered, tasks - 1, n - 1)
        half = np.where(df >= 1, stdtrit(np.maximum(df, 1), (1 + level) / 2) * np.sqrt(np.maximum(variance, 0)), np.nan)
    return (
        curves.with_columns(half=pl.Series(half, dtype=pl.Float64).fill_nan(None))
        .select(*KEYS, "t", "mean", low=pl.col("mean") - pl.col("half"), high=pl.col("mean") + pl.col("half"),
                n=pl.col("n").cast(pl.Int64), tasks=pl.col("tasks").cast(pl.Int64))
    )


def bandit_exploration(
    decisions: pl.LazyFrame | pl.DataFrame, episodes: pl.LazyFrame | pl.DataFrame | None = None
) -> pl.DataFrame:
    """SuffFailFreq and MinFrac per (agent, scenario_id) of the `bandit/*` families.

    See the module docstring for the definitions. T (horizon) and K (n_actions) come from the
    episodes table when it is given; without it T is the episode's number of decisions and K
    is inferred as 1 + the largest action or optimal action seen, which undercounts K when an
    arm was neither pulled nor ever optimal; pass `episodes` for exact MinFrac.
    Returns agent, scenario_id, suff_fail_freq, min_frac (sorted by agent, scenario_id).
    """
    return _exploration(_lazy(decisions), None if episodes is None else _lazy(episodes)).collect(engine=ENGINE)


def _exploration(decisions: pl.LazyFrame, episodes: pl.LazyFrame | None) -> pl.LazyFrame:
    import polars as pl

    keys = list(EPISODE_KEYS)
    rows = decisions.filter(pl.col("family").str.starts_with("bandit/"))
    action = pl.col("action")
    # one pass over the decisions; the per-episode result is small and joined with T and K after
    per_episode = rows.group_by(keys).agg(
        last_hit=pl.col("t").filter(action == pl.col("optimal_action")).max(),  # null: never optimal
        n=pl.len(),
        arms=action.drop_nulls().n_unique(),
        fewest=action.drop_nulls().unique_counts().min(),
        seen_t=pl.col("t").max() + 1,
        seen_k=pl.max_horizontal(action.max(), pl.col("optimal_action").max()) + 1,
    )
    if episodes is not None:
        meta = (episodes.filter((pl.col("status") == "finished") & pl.col("family").str.starts_with("bandit/"))
                .select(*keys, "horizon", "n_actions"))
        per_episode = per_episode.join(meta, on=keys, how="inner")
    else:
        per_episode = per_episode.with_columns(horizon=pl.col("seen_t"), n_actions=pl.col("seen_k"))
    per_episode = per_episode.with_columns(
        hit=(pl.col("last_hit") >= pl.col("horizon") / 2).fill_null(False),
        min_frac=pl.when(pl.col("arms") < pl.col("n_actions")).then(0.0)
        .otherwise(pl.col("fewest").cast(pl.Float64) / pl.col("n") * pl.col("n_actions")),
    )
    return per_episode.group_by(KEYS).agg(
        suff_fail_freq=(~pl.col("hit")).cast(pl.Float64).mean(), min_frac=pl.col("min_frac").mean()
    ).sort(*KEYS)


def episode_regrets(episodes: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Final regret of every finished episode: agent, scenario_id, task_id, rollout, final_regret (sorted)."""
    import polars as pl

    return (
        _lazy(episodes).filter(pl.col("status") == "finished")
        .select(*EPISODE_KEYS, "final_regret")
        .sort(*EPISODE_KEYS)
        .collect(engine=ENGINE)
    )


def episode_growth(decisions: pl.LazyFrame | pl.DataFrame, episodes: pl.LazyFrame | pl.DataFrame,
                   burn_in: float = BURN_IN) -> pl.DataFrame:
    """The growth slope of every finished episode: agent, scenario_id, task_id, rollout, final_regret,
    beta, n_points (sorted; see `harness._stats.growth_slopes`)."""
    import polars as pl

    keys = list(EPISODE_KEYS)
    finished = (_lazy(episodes).filter(pl.col("status") == "finished").select(*keys, "final_regret")
                .sort(keys).collect(engine=ENGINE).with_row_index("episode"))
    points = (_lazy(decisions).join(finished.lazy().select(*keys, "episode"), on=keys, how="inner")
              .select("episode", round=pl.col("t") + 1, R=pl.col("cumulative_regret")).collect(engine=ENGINE))
    fits = growth_slopes(points["R"].to_numpy(), points["round"].to_numpy(),
                         points["episode"].to_numpy(), burn_in=burn_in)
    size = finished.height
    beta = fits.beta if len(fits) >= size else _padded(fits.beta, size)
    n_points = fits.n_points if len(fits) >= size else _padded(fits.n_points, size, 0)
    return finished.with_columns(beta=pl.Series(beta[:size], dtype=pl.Float64).fill_nan(None),
                                 n_points=pl.Series(n_points[:size], dtype=pl.Int64)).drop("episode")


def leaderboard(
    decisions: pl.LazyFrame | pl.DataFrame,
    episodes: pl.LazyFrame | pl.DataFrame,
    *,
    level: float = LEVEL,
    burn_in: float = BURN_IN,
    alpha: float = ALPHA,
    scope: str = "instances",
) -> pl.DataFrame:
    """One row per (agent, scenario_id) with regret statistics, growth slope, exploration and usage.

    Columns: see `LEADERBOARD_COLUMNS` and the module docstring. Intervals are task-clustered
    (`scope="tasks"` makes them conditional on the run's own tasks instead). Regret statistics
    (std, median, 90th percentile with linear interpolation) use finished episodes only;
    `episodes` counts finished and `failed` every other episode. `invalid_rate` is the share
    of decisions whose parse_status is not in agents.VALID_PARSE_STATUSES (null counts as
    invalid). Tokens and cost are totals over all episodes, failed ones included. Floats are
    rounded to 6 decimals (and -0.0 to 0.0) and rows sorted by scenario_id, mean_regret (nulls
    last), agent, so identical runs give identical frames.
    """
    import polars as pl

    from agents import VALID_PARSE_STATUSES

    decisions, episodes = _lazy(decisions), _lazy(episodes)
    finished = pl.col("status") == "finished"
    final = pl.col("final_regret").filter(finished)
    base = episodes.group_by(KEYS).agg(
        family=pl.col("family").drop_nulls().sort().first(),
        episodes=finished.sum().cast(pl.Int64),
        failed=(~finished).sum().cast(pl.Int64),
        std_regret=final.std(ddof=1),
        median_regret=final.median(),
        p90_regret=final.quantile(0.9, interpolation="linear"),
        prompt_tokens=pl.col("prompt_tokens").sum().cast(pl.Int64),
        completion_tokens=pl.col("completion_tokens").sum().cast(pl.Int64),
        cost=pl.col("cost").cast(pl.Float64).sum(),
    )
    invalid = decisions.group_by(KEYS).agg(
        invalid_rate=pl.col("parse_status").is_in(list(VALID_PARSE_STATUSES)).fill_null(False).not_()
        .cast(pl.Float64).mean()
    )
    base, invalid, exploration = pl.collect_all([base, invalid, _exploration(decisions, episodes)], engine=ENGINE)
    growth = episode_growth(decisions, episodes, burn_in)
    rows = []
    for (agent, scenario_id), part in growth.group_by(list(KEYS), maintain_order=True):
        tasks = part["task_id"].to_numpy()
        mean = clustered_mean(part["final_regret"].to_numpy(), tasks, level=level, scope=scope)
        slope = sublinearity_test(part["beta"].cast(pl.Float64).fill_null(float("nan")).to_numpy(), tasks,
                                  alpha=alpha, level=level, scope=scope)
        rows.append({
            "agent": agent, "scenario_id": scenario_id, "tasks": mean.n_tasks, "mean_regret": mean.estimate,
            "ci_low": mean.ci_low, "ci_high": mean.ci_high, "ci_method": mean.method,
            "beta": slope.beta.estimate, "beta_ci_low": slope.beta.ci_low, "beta_ci_high": slope.beta.ci_high,
            "beta_pvalue": slope.pvalue, "sublinear": slope.sublinear,
        })
    schema = {"agent": pl.String, "scenario_id": pl.String, "tasks": pl.Int64, "mean_regret": pl.Float64,
              "ci_low": pl.Float64, "ci_high": pl.Float64, "ci_method": pl.String, "beta": pl.Float64,
              "beta_ci_low": pl.Float64, "beta_ci_high": pl.Float64, "beta_pvalue": pl.Float64,
              "sublinear": pl.Boolean}
    statistics = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    frame = (
        base.join(statistics, on=KEYS, how="left")
        .with_columns(pl.col("tasks").fill_null(0))
        .join(exploration, on=KEYS, how="left")
        .join(invalid, on=KEYS, how="left")
        .select(LEADERBOARD_COLUMNS)
    )
    return _canonical(frame).sort("scenario_id", "mean_regret", "agent", nulls_last=True)


# --- internals ---------------------------------------------------------------------------
def _lazy(frame: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    import polars as pl

    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def _to_numpy(values: Any) -> Any:
    return values.to_numpy() if hasattr(values, "to_numpy") else values


def _padded(values: Any, size: int, fill: Any = math.nan) -> Any:
    """`values` extended to `size` (episodes without a single decision row get no fit)."""
    import numpy as np

    out = np.full(size, fill, dtype=np.asarray(values).dtype if fill == 0 else float)
    out[: len(values)] = values
    return out


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Round floats to DECIMALS, turn NaN into null and -0.0 into 0.0 (byte-stable files)."""
    import polars as pl

    floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
    return frame.with_columns(
        pl.when(pl.col(name).fill_nan(None).round(DECIMALS) == 0).then(0.0)
        .otherwise(pl.col(name).fill_nan(None).round(DECIMALS)).alias(name)
        for name in floats
    )
