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
- Position bias: agents that see the options as a list (LLMs) record the listed position of
  each pick (`info.position`, 0-based; with `shuffle_options` the listing is a seeded
  per-episode permutation). `position_shares` is the share of picks at listed positions
  1..K in percent ("61/20/19"), `first_listed_share` the share at position 1 (a fraction),
  `position_bias` the largest share divided by the share chance gives (1/K): 1 is no preference
  for any position, K is always the same position. With
  shuffled options the best option is equally likely at every position, so a bias well above
  1 is a preference for a place in the list, not for an option. Null for agents without
  listed positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness._stats import BURN_IN, MIN_REGRET, clustered_mean, growth_slopes, sublinearity_test
from scenarios import ConfigError, Registry

if TYPE_CHECKING:  # polars is imported lazily at run time (see harness/__init__.py)
    import polars as pl

KEYS = ("agent", "scenario_id")
EPISODE_KEYS = ("agent", "scenario_id", "task_id", "rollout")
DECIMALS = 6
# polars' streaming engine (the default of `collect` in polars 2) adds partial float sums in
# whatever order its threads finish, so two collects of the same data can differ in the last
# bits; the in-memory engine is reproducible, which identical-plan runs and report files need.
ENGINE = "in-memory"
# analytics read the decisions in slices of about this many rows (whole episodes, or whole rounds
# for the curves), so their memory does not grow with the run; every statistic still sees the
# same rows in the same order as one pass over the whole table would, so results are identical
CHUNK_ROWS = 250_000

BASE_COLUMNS = ("agent", "scenario_id", "family", "episodes", "failed")
LEVEL = 0.95  # confidence level of every leaderboard interval
ALPHA = 0.05  # level of the sublinearity verdict


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
        raise ConfigError(f"t and cumulative_regret differ in length ({t_array.size} vs {r_array.size})")
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
        raise ConfigError(f"level must be in (0, 1), got {level}")
    by_round = [*KEYS, "t"]
    # every statistic is per round, so slices of whole rounds give the one-pass values; the sums
    # run in numpy over rows in a fixed order (round, task, row), so a curve is the same to the
    # last bit in every run (polars' parallel group sums are not, past a few 100k rows)
    parts = [_round_statistics(part.select(*by_round, "task_id", "cumulative_regret").collect(engine=ENGINE))
             for part in round_slices(decisions)]
    curves = pl.concat(parts).sort(by_round)
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


def _round_statistics(rows: pl.DataFrame) -> pl.DataFrame:
    """Per (agent, scenario_id, t): mean cumulative regret, n, tasks, the sum of squared task
    residuals (the clustered variance) and the episodes' standard deviation (single-task band)."""
    import numpy as np
    import polars as pl

    by_round = [*KEYS, "t"]
    rows = rows.with_row_index("_row").sort(*by_round, "task_id", "_row")
    new_round = pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift()) for c in by_round])
    flags = rows.select(round=new_round, task=new_round | pl.col("task_id").ne_missing(pl.col("task_id").shift()))
    round_start = flags["round"].to_numpy()
    task_starts = np.flatnonzero(flags["task"].to_numpy())
    if task_starts.size == 0:
        return pl.DataFrame(schema={**{k: rows.schema[k] for k in by_round}, "mean": pl.Float64, "n": pl.Int64,
                                    "tasks": pl.Int64, "cluster_ss": pl.Float64, "std": pl.Float64})
    R = rows["cumulative_regret"].cast(pl.Float64)
    valid = R.is_not_null().to_numpy()
    values = R.fill_null(0.0).to_numpy()
    totals = np.add.reduceat(values, task_starts)
    counts = np.add.reduceat(valid.astype(np.int64), task_starts)
    first_task = np.flatnonzero(round_start[task_starts])  # each round's first task group
    n = np.add.reduceat(counts, first_task)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.add.reduceat(totals, first_task) / n
        round_of_task = np.cumsum(round_start[task_starts]) - 1
        cluster_ss = np.add.reduceat((totals - counts * mean[round_of_task]) ** 2, first_task)
        round_of_row = np.cumsum(round_start) - 1
        deviation = np.where(valid, values - mean[round_of_row], 0.0)
        std = np.where(n >= 2, np.sqrt(np.add.reduceat(deviation**2, np.flatnonzero(round_start)) / (n - 1)), np.nan)
    return rows[task_starts[first_task]].select(by_round).with_columns(
        mean=pl.Series(mean, dtype=pl.Float64), n=pl.Series(n, dtype=pl.Int64),
        tasks=pl.Series(np.diff(np.append(first_task, task_starts.size)), dtype=pl.Int64),
        cluster_ss=pl.Series(cluster_ss, dtype=pl.Float64), std=pl.Series(std, dtype=pl.Float64))


def best_arm_families(frame: pl.LazyFrame) -> list[str]:
    """The families in `frame` whose scenarios declare `best_arm` (see scenarios.Scenario): those
    where never playing the best arm late in an episode is a failure to explore."""
    import polars as pl

    from scenarios import SCENARIOS

    # a set of names (no float sums): the streaming engine reads it in constant memory
    families = (_lazy(frame).select(pl.col("family").unique()).collect(engine="streaming")["family"]
                .drop_nulls().to_list())
    return sorted(f for f in families if f in SCENARIOS and SCENARIOS.get(f).best_arm)


def bandit_exploration(
    decisions: pl.LazyFrame | pl.DataFrame, episodes: pl.LazyFrame | pl.DataFrame | None = None
) -> pl.DataFrame:
    """SuffFailFreq and MinFrac per (agent, scenario_id) of the families with a best arm (bandits).

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
    exploring = pl.col("family").is_in(best_arm_families(decisions))
    action = pl.col("action")
    # one pass over the decisions, a slice of whole episodes at a time; the per-episode result is
    # small and joined with T and K after
    per_episode = collect_by_episodes(decisions, lambda part: part.filter(exploring).group_by(keys).agg(
        last_hit=pl.col("t").filter(action == pl.col("optimal_action")).max(),  # null: never optimal
        n=pl.len(),
        arms=action.drop_nulls().n_unique(),
        fewest=action.drop_nulls().unique_counts().min(),
        seen_t=pl.col("t").max() + 1,
        seen_k=pl.max_horizontal(action.max(), pl.col("optimal_action").max()) + 1,
    )).lazy()
    if episodes is not None:
        meta = (episodes.filter((pl.col("status") == "finished") & exploring)
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

    import numpy as np

    keys = list(EPISODE_KEYS)
    finished = (_lazy(episodes).filter(pl.col("status") == "finished").select(*keys, "final_regret")
                .sort(keys).collect(engine=ENGINE).with_row_index("episode"))
    index = finished.lazy().select(*keys, "episode")
    size = finished.height
    beta, n_points = np.full(size, math.nan), np.zeros(size, dtype=np.int64)  # no decision rows: no fit
    # a slice of whole episodes at a time: each episode's fit sees its rows in the same order as in
    # one pass, so the slopes are the same to the last bit
    for part in decision_slices(decisions):
        points = (part.join(index, on=keys, how="inner")
                  .select("episode", round=pl.col("t") + 1, R=pl.col("cumulative_regret")).collect(engine=ENGINE))
        if points.is_empty():
            continue
        codes = points["episode"].to_numpy()
        fits = growth_slopes(points["R"].to_numpy(), points["round"].to_numpy(), codes, burn_in=burn_in)
        present = np.unique(codes)
        beta[present], n_points[present] = fits.beta[present], fits.n_points[present]
    return finished.with_columns(beta=pl.Series(beta, dtype=pl.Float64).fill_nan(None),
                                 n_points=pl.Series(n_points, dtype=pl.Int64)).drop("episode")


def leaderboard(
    decisions: pl.LazyFrame | pl.DataFrame,
    episodes: pl.LazyFrame | pl.DataFrame,
    *,
    level: float = LEVEL,
    burn_in: float = BURN_IN,
    alpha: float = ALPHA,
    scope: str = "instances",
) -> pl.DataFrame:
    """One row per (agent, scenario_id): the keys, `family`, `episodes` (finished) and `failed`,
    then the columns of every registered metric (`METRICS`, in their `position` order).

    The built-in metrics: regret statistics (mean with a task-clustered CI, see the module
    docstring; `scope="tasks"` makes intervals conditional on the run's own tasks; sample std,
    median, 90th percentile with linear interpolation) over finished episodes; the growth slope
    with its clustered CI and sublinearity verdict at `alpha`;
    exploration (families with a best arm); `invalid_rate`, the share of decisions whose
    parse_status is not in agents.VALID_PARSE_STATUSES (null counts as invalid); tokens and
    cost, totals over all episodes, failed ones included. Floats are rounded to 6 decimals
    (and -0.0 to 0.0) and rows sorted by scenario_id, mean_regret (nulls last), agent, so
    identical runs give identical frames.
    """
    import polars as pl

    inputs = MetricInputs(_lazy(decisions), _lazy(episodes), level, burn_in, alpha, scope)
    finished = pl.col("status") == "finished"
    frame = inputs.episodes.group_by(KEYS).agg(
        family=pl.col("family").drop_nulls().sort().first(),
        episodes=finished.sum().cast(pl.Int64),
        failed=(~finished).sum().cast(pl.Int64),
    ).collect(engine=ENGINE)
    for entry in metrics():
        frame = frame.join(entry.compute(inputs).select(*KEYS, *entry.columns), on=KEYS, how="left")
    return _canonical(frame.select(leaderboard_columns())).sort("scenario_id", "mean_regret", "agent", nulls_last=True)


# --- the metric registry ----------------------------------------------------------------
@dataclass
class MetricInputs:
    """What a metric computes from: the run tables (lazy) and the leaderboard's settings."""

    decisions: pl.LazyFrame
    episodes: pl.LazyFrame
    level: float = LEVEL
    burn_in: float = BURN_IN
    alpha: float = ALPHA
    scope: str = "instances"
    _growth: Any = None

    def growth(self) -> pl.DataFrame:
        """Every finished episode's final regret and growth slope (`episode_growth`, computed once)."""
        if self._growth is None:
            self._growth = episode_growth(self.decisions, self.episodes, self.burn_in)
        return self._growth

    def per_group(self, statistic: Callable[[pl.DataFrame], dict[str, Any]], schema: Mapping[str, Any]) -> pl.DataFrame:
        """`statistic(episodes of one agent x scenario)` -> one row per group (a loop over groups, not rows)."""
        import polars as pl

        rows = [{"agent": agent, "scenario_id": scenario_id, **statistic(part)}
                for (agent, scenario_id), part in self.growth().group_by(list(KEYS), maintain_order=True)]
        full = {"agent": pl.String, "scenario_id": pl.String, **schema}
        return pl.DataFrame(rows, schema=full, orient="row") if rows else pl.DataFrame(schema=full)


Cell = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class Metric:
    """Leaderboard columns computed together per (agent, scenario_id).

    `compute(inputs)` returns a frame keyed by agent, scenario_id holding `columns`; `table`
    is how the Markdown/HTML leaderboard shows them: (header, cell function of a row).
    """

    name: str
    columns: tuple[str, ...]
    compute: Callable[[MetricInputs], pl.DataFrame | pl.LazyFrame]
    table: tuple[tuple[str, Cell], ...] = ()
    position: int = 100
    help: str = ""


METRICS: Registry[Metric] = Registry("metric", "regret_harness.metrics")


def metric(name: str, columns: Sequence[str], *, table: Sequence[tuple[str, Cell]] = (), position: int = 100,
           help: str | None = None) -> Callable:
    """Decorator registering `compute(inputs) -> frame` as a leaderboard metric (see `Metric`)."""

    def decorator(compute: Callable) -> Callable:
        doc = help if help is not None else (compute.__doc__ or "").strip().split("\n")[0]
        METRICS.add(name, Metric(name, tuple(columns), _collected(compute), tuple(table), position, doc), help=doc)
        return compute

    return decorator


def _collected(compute: Callable) -> Callable:
    def run(inputs: MetricInputs) -> pl.DataFrame:
        frame = compute(inputs)
        return frame.collect(engine=ENGINE) if hasattr(frame, "collect") else frame

    return run


def metrics() -> list[Metric]:
    """The registered metrics in leaderboard order."""
    return sorted((entry for _, entry in METRICS.items()), key=lambda m: (m.position, m.name))


def leaderboard_columns() -> tuple[str, ...]:
    return BASE_COLUMNS + tuple(c for m in metrics() for c in m.columns)


def table_columns() -> tuple[tuple[str, Cell], ...]:
    """(header, cell) of the Markdown and HTML leaderboard tables."""
    base: tuple[tuple[str, Cell], ...] = (
        ("agent", lambda r: r["agent"]),
        ("scenario", lambda r: r["scenario_id"]),
        ("family", lambda r: r["family"] or ""),
        ("episodes", lambda r: str(r["episodes"])),
        ("failed", lambda r: str(r["failed"])),
    )
    return base + tuple(cell for m in metrics() for cell in m.table)


# --- cell formatting (the Markdown/HTML tables and the terminal) ---------------------------
def format_number(value: Any, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, spec)


def format_pvalue(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def format_percent(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


SINGLE_TASK_MARK = " †"  # after an interval that rests on a single task (see harness.report.SINGLE_TASK_NOTE)


def _ci(row: Mapping[str, Any], prefix: str = "") -> str:
    low, high = row[f"{prefix}ci_low"], row[f"{prefix}ci_high"]
    if low is None or high is None:
        return "–"
    mark = SINGLE_TASK_MARK if not prefix and row.get("ci_method") == "single task" else ""
    return f"[{low:.3f}, {high:.3f}]{mark}"


def _sublinear(row: Mapping[str, Any]) -> str:
    if row["sublinear"] is None:
        return "–"
    return f"{'yes' if row['sublinear'] else 'no'} (p {format_pvalue(row['beta_pvalue'])})"


# --- the built-in metrics ---------------------------------------------------------------
@metric("regret", ("tasks", "mean_regret", "ci_low", "ci_high", "ci_method", "std_regret", "median_regret",
                   "p90_regret"), position=10,
        table=(("tasks", lambda r: str(r["tasks"] or 0)), ("mean regret", lambda r: format_number(r["mean_regret"])),
               ("95% CI", _ci), ("std", lambda r: format_number(r["std_regret"])),
               ("median", lambda r: format_number(r["median_regret"])),
               ("p90", lambda r: format_number(r["p90_regret"]))))
def _regret(inputs: MetricInputs) -> pl.DataFrame:
    """Final regret over finished episodes: mean with a task-clustered CI, std, median, 90th percentile."""
    import polars as pl

    finished = pl.col("status") == "finished"
    final = pl.col("final_regret").filter(finished)
    spread = inputs.episodes.group_by(KEYS).agg(
        std_regret=final.std(ddof=1),
        median_regret=final.median(),
        p90_regret=final.quantile(0.9, interpolation="linear"),
    ).collect(engine=ENGINE)

    def clustered(part: pl.DataFrame) -> dict[str, Any]:
        mean = clustered_mean(part["final_regret"].to_numpy(), part["task_id"].to_numpy(), level=inputs.level,
                              scope=inputs.scope)
        return {"tasks": mean.n_tasks, "mean_regret": mean.estimate, "ci_low": mean.ci_low, "ci_high": mean.ci_high,
                "ci_method": mean.method}

    means = inputs.per_group(clustered, {"tasks": pl.Int64, "mean_regret": pl.Float64, "ci_low": pl.Float64,
                                         "ci_high": pl.Float64, "ci_method": pl.String})
    return spread.join(means, on=KEYS, how="left").with_columns(pl.col("tasks").fill_null(0))


@metric("growth", ("beta", "beta_ci_low", "beta_ci_high", "beta_pvalue", "sublinear"), position=20,
        table=(("beta", lambda r: format_number(r["beta"])), ("beta 95% CI", lambda r: _ci(r, "beta_")),
               ("sublinear", lambda r: _sublinear(r))))
def _growth(inputs: MetricInputs) -> pl.DataFrame:
    """Regret-growth slope beta fitted per episode and averaged, its clustered CI and the test of beta >= 1."""
    import polars as pl

    def slope(part: pl.DataFrame) -> dict[str, Any]:
        test = sublinearity_test(part["beta"].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
                                 part["task_id"].to_numpy(), alpha=inputs.alpha, level=inputs.level, scope=inputs.scope)
        return {"beta": test.beta.estimate, "beta_ci_low": test.beta.ci_low, "beta_ci_high": test.beta.ci_high,
                "beta_pvalue": test.pvalue, "sublinear": test.sublinear}

    return inputs.per_group(slope, {"beta": pl.Float64, "beta_ci_low": pl.Float64, "beta_ci_high": pl.Float64,
                                    "beta_pvalue": pl.Float64, "sublinear": pl.Boolean})


@metric("exploration", ("suff_fail_freq", "min_frac"), position=30,
        table=(("SuffFail", lambda r: format_number(r["suff_fail_freq"])),
               ("MinFrac", lambda r: format_number(r["min_frac"]))))
def _exploration_metric(inputs: MetricInputs) -> pl.LazyFrame:
    """SuffFailFreq and MinFrac, for families with a best arm."""
    return _exploration(inputs.decisions, inputs.episodes)


@metric("invalid_rate", ("invalid_rate",), position=40,
        table=(("invalid", lambda r: format_percent(r["invalid_rate"])),))
def _invalid_rate(inputs: MetricInputs) -> pl.LazyFrame:
    """Share of decisions whose reply never parsed as valid (parse_status neither ok nor repaired)."""
    import polars as pl

    from agents import VALID_PARSE_STATUSES

    # integer counts per slice, added up: the same rate as a mean over all rows
    invalid = pl.col("parse_status").is_in(list(VALID_PARSE_STATUSES)).fill_null(False).not_()
    counts = collect_by_episodes(inputs.decisions, lambda part: part.group_by(KEYS).agg(
        invalid=invalid.sum().cast(pl.Int64), decisions=pl.len().cast(pl.Int64)))
    return counts.group_by(KEYS).agg(
        invalid_rate=pl.col("invalid").sum().cast(pl.Float64) / pl.col("decisions").sum().cast(pl.Float64))


@metric("position_bias", ("position_bias", "position_shares", "first_listed_share"), position=45,
        table=(("position bias", lambda r: format_number(r["position_bias"], ".2f")),
               ("picks by position %", lambda r: r["position_shares"] or "–")))
def _position_bias(inputs: MetricInputs) -> pl.LazyFrame:
    """Share of picks per listed position against chance (agents that see a list of options)."""
    import polars as pl

    decisions, episodes = inputs.decisions, inputs.episodes
    if "info" not in decisions.collect_schema().names():  # a frame of regret columns only
        return pl.LazyFrame(schema={"agent": pl.String, "scenario_id": pl.String, "position_bias": pl.Float64,
                                    "position_shares": pl.String, "first_listed_share": pl.Float64})
    def count(part: pl.LazyFrame) -> pl.LazyFrame:
        picks = (part.filter(pl.col("info").str.contains('"position":', literal=True))
                 .select(*KEYS, position=pl.col("info").str.json_path_match("$.position").cast(pl.Int64))
                 .drop_nulls("position"))
        return picks.group_by(*KEYS, "position").agg(picks=pl.len().cast(pl.Int64))

    counts = collect_by_episodes(decisions, count).lazy().group_by(*KEYS, "position").agg(pl.col("picks").sum())
    k = episodes.group_by(KEYS).agg(k=pl.col("n_actions").max())
    grid = (counts.select(KEYS).unique().join(k, on=KEYS, how="inner")
            .with_columns(position=pl.int_ranges(0, pl.col("k"))).explode("position")
            .join(counts, on=[*KEYS, "position"], how="left")
            .with_columns(pl.col("picks").fill_null(0))
            .with_columns(share=pl.col("picks") / pl.col("picks").sum().over(KEYS))
            .sort(*KEYS, "position"))
    return grid.group_by(KEYS).agg(
        position_bias=pl.col("share").max() * pl.col("k").first(),
        position_shares=(pl.col("share") * 100).round(0).cast(pl.Int64).cast(pl.String).str.join("/"),
        first_listed_share=pl.col("share").first(),  # the grid is sorted by position
    )


@metric("usage", ("prompt_tokens", "completion_tokens", "cost"), position=50,
        table=(("prompt tokens", lambda r: str(r["prompt_tokens"] or 0)),
               ("completion tokens", lambda r: str(r["completion_tokens"] or 0)),
               ("cost $", lambda r: format_number(r["cost"] or 0.0, ".4f"))))
def _usage(inputs: MetricInputs) -> pl.LazyFrame:
    """Tokens and cost, totals over all episodes (failed ones included)."""
    import polars as pl

    return inputs.episodes.group_by(KEYS).agg(
        prompt_tokens=pl.col("prompt_tokens").sum().cast(pl.Int64),
        completion_tokens=pl.col("completion_tokens").sum().cast(pl.Int64),
        cost=pl.col("cost").cast(pl.Float64).sum(),
    )


LEADERBOARD_COLUMNS = leaderboard_columns()  # the built-in columns (plugins: leaderboard_columns())


# --- reading a large decisions table in slices ----------------------------------------------
def decision_slices(decisions: pl.LazyFrame | pl.DataFrame, rows: int | None = None) -> list[pl.LazyFrame]:
    """The decisions as consecutive slices of about `rows` rows that each hold whole episodes.

    A table already in memory, a small one, or one whose episodes' rows are not contiguous (a
    frame sorted otherwise) comes back whole. Finding the episode boundaries reads only the
    key columns, in constant memory (integer counts, with the streaming engine).
    """
    import numpy as np
    import polars as pl

    rows = rows or CHUNK_ROWS
    if isinstance(decisions, pl.DataFrame):
        return [decisions.lazy()]
    if decisions.select(pl.len()).collect(engine="streaming").item() <= rows:
        return [decisions]
    keys = list(EPISODE_KEYS)
    spans = (decisions.select(keys).with_row_index("_row").group_by(keys)
             .agg(first=pl.col("_row").min(), n=pl.len()).select("first", "n").sort("first")
             .collect(engine="streaming"))
    first, n = spans["first"].to_numpy().astype(np.int64), spans["n"].to_numpy().astype(np.int64)
    ends = first + n
    if first[0] != 0 or np.any(first[1:] != ends[:-1]):
        return [decisions]
    total = int(ends[-1])
    cuts = np.unique(np.append(ends[np.minimum(np.searchsorted(ends, np.arange(rows, total, rows)), len(ends) - 1)],
                               total))
    starts = np.concatenate([[0], cuts[:-1]])
    return [decisions.slice(int(a), int(b - a)) for a, b in zip(starts, cuts)]


def collect_by_episodes(decisions: pl.LazyFrame | pl.DataFrame, query: Callable[[pl.LazyFrame], pl.LazyFrame]) -> pl.DataFrame:
    """`query` run on each slice of whole episodes (`decision_slices`), the results concatenated
    in order: for queries whose result per episode needs only that episode's rows."""
    import polars as pl

    return pl.concat([query(part).collect(engine=ENGINE) for part in decision_slices(decisions)])


def round_slices(decisions: pl.LazyFrame | pl.DataFrame, rows: int | None = None) -> list[pl.LazyFrame]:
    """The decisions split by ranges of the round `t` into parts of about `rows` rows (for
    statistics per round); a table in memory or a small one comes back whole."""
    import polars as pl

    rows, frame = rows or CHUNK_ROWS, _lazy(decisions)
    if isinstance(decisions, pl.DataFrame):
        return [frame]
    size, low, high = (frame.select(pl.len(), low=pl.col("t").min(), high=pl.col("t").max())
                       .collect(engine="streaming").row(0))
    parts = math.ceil(size / rows)
    if parts <= 1 or low is None:
        return [frame]
    width = math.ceil((high - low + 1) / parts)
    t = pl.col("t")
    return [frame.filter((t >= start) & (t < start + width)) for start in range(low, high + 1, width)]


# --- internals ---------------------------------------------------------------------------
def _lazy(frame: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    import polars as pl

    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def _to_numpy(values: Any) -> Any:
    return values.to_numpy() if hasattr(values, "to_numpy") else values


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Round floats to DECIMALS, turn NaN into null and -0.0 into 0.0 (byte-stable files)."""
    import polars as pl

    floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
    return frame.with_columns(
        pl.when(pl.col(name).fill_nan(None).round(DECIMALS) == 0).then(0.0)
        .otherwise(pl.col(name).fill_nan(None).round(DECIMALS)).alias(name)
        for name in floats
    )
