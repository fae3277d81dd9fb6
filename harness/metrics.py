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
- beta: the regret-growth slope of Park et al. (arXiv 2511.04393): least squares of
  log R_t = beta log t + c (t the 1-based round) on the *mean* cumulative-regret curve of an
  (agent, scenario) over its episodes, using the rounds with R_t > 0 (more precisely > 1e-9:
  an exact zero computed in floating point can come out as 1e-17, whose log would dominate
  the fit) and skipping the first 10% of rounds (burn-in: early rounds are dominated by
  forced exploration and would bend the slope). beta < 1 means sublinear (no-regret) growth;
  `beta_pvalue` is the one-sided p-value of H0: beta >= 1 against H1: beta < 1.
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
  `position_bias` the largest share divided by the share chance gives (1/K): 1 is no preference for any position, K is always the same position. With
  shuffled options the best option is equally likely at every position, so a bias well above
  1 is a preference for a place in the list, not for an option. Null for agents without
  listed positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # polars is imported lazily at run time (see harness/__init__.py)
    import polars as pl

KEYS = ("agent", "scenario_id")
EPISODE_KEYS = ("agent", "scenario_id", "task_id", "rollout")
BURN_IN = 0.1  # fraction of rounds skipped before fitting the growth slope
MIN_REGRET = 1e-9  # R_t at or below this is float noise around 0, not a point to fit (log would explode)
DECIMALS = 6
# polars' streaming engine (the default of `collect` in polars 2) adds partial float sums in
# whatever order its threads finish, so two collects of the same data can differ in the last
# bits; the in-memory engine is reproducible, which identical-plan runs and report files need.
ENGINE = "in-memory"

LEADERBOARD_COLUMNS = (
    "agent", "scenario_id", "family", "episodes", "failed", "mean_regret", "ci_low", "ci_high",
    "std_regret", "median_regret", "p90_regret", "beta", "beta_pvalue", "suff_fail_freq", "min_frac",
    "invalid_rate", "position_bias", "position_shares", "first_listed_share", "prompt_tokens", "completion_tokens",
    "cost",
)


# --- scalar helpers ----------------------------------------------------------------------
def mean_ci(values: Sequence[float] | Any, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval (sample standard deviation, n - 1 dof).

    The quantile is scipy's Student t quantile (scipy.special.stdtrit, which scipy.stats.t.ppf
    wraps; importing it directly saves a second of scipy.stats import time).

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
    import numpy as np

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    array = np.asarray(_to_numpy(values), dtype=float).ravel()
    array = array[np.isfinite(array)]
    n = array.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(array.mean())
    if n == 1:
        return (mean, math.nan, math.nan)
    half = float(_t_half_width(np.array([array.std(ddof=1)]), np.array([n]), level)[0])
    return (mean, mean - half, mean + half)


@dataclass(frozen=True)
class GrowthFit:
    """Least-squares fit of log R_t = beta log t + intercept (NaN when it cannot be fitted)."""

    beta: float
    intercept: float
    pvalue_sublinear: float  # one-sided p-value of H0: beta >= 1 against H1: beta < 1
    n_points: int  # rounds used (R_t > 0, after burn-in)


def fit_growth(t: Sequence[float] | Any, cumulative_regret: Sequence[float] | Any, burn_in: float = 0.0) -> GrowthFit:
    """Fit the regret-growth slope beta of log R_t = beta log t + c (Park et al., arXiv 2511.04393).

    `t` is the 1-based round number (a decisions row's `t + 1`), `cumulative_regret` is R_t.
    Only rounds with R_t > 0 (> `MIN_REGRET` = 1e-9, to ignore float noise) are used; with
    `burn_in = f` the rounds t <= floor(f * max t) are skipped too (the leaderboard uses 0.1).
    The p-value comes from the regression t-statistic (beta - 1) / se(beta) with n - 2
    degrees of freedom; an exact fit (se = 0) gives p = 0 for beta < 1, 1 for beta > 1 and
    0.5 for beta = 1 (to 1e-9). Fewer than 3 usable points give NaNs.

    >>> import numpy as np
    >>> rounds = np.arange(1, 101)
    >>> fit = fit_growth(rounds, 3 * np.sqrt(rounds))
    >>> round(fit.beta, 6), round(fit.intercept, 6), fit.pvalue_sublinear < 1e-6, fit.n_points
    (0.5, 1.098612, True, 100)
    >>> fit_growth([1, 2], [1.0, 2.0]).n_points
    2
    """
    import numpy as np
    import polars as pl

    t_array = np.asarray(_to_numpy(t), dtype=float).ravel()
    r_array = np.asarray(_to_numpy(cumulative_regret), dtype=float).ravel()
    if t_array.shape != r_array.shape:
        raise ValueError(f"t and cumulative_regret differ in length ({t_array.size} vs {r_array.size})")
    frame = pl.DataFrame({"agent": "", "scenario_id": "", "round": t_array, "R": r_array})
    row = _growth_fits(frame.lazy(), burn_in).row(0, named=True) if len(frame) else None
    if row is None:
        return GrowthFit(math.nan, math.nan, math.nan, 0)
    nan = lambda x: math.nan if x is None else float(x)  # noqa: E731
    return GrowthFit(nan(row["beta"]), nan(row["intercept"]), nan(row["beta_pvalue"]), int(row["n_points"]))


# --- frame-level metrics -----------------------------------------------------------------
def regret_curves(decisions: pl.LazyFrame | pl.DataFrame, level: float = 0.95) -> pl.DataFrame:
    """Mean cumulative regret per round over episodes with a Student-t band.

    Returns columns agent, scenario_id, t (0-based round index), mean, low, high, n (episodes
    reaching that round), sorted by agent, scenario_id, t. low/high are null where n < 2.
    """
    import polars as pl

    curves = _curve_stats(_lazy(decisions)).collect(engine=ENGINE)
    half = _t_half_width(curves["std"].to_numpy(), curves["n"].to_numpy(), level)
    return (
        curves.with_columns(half=pl.Series(half, dtype=pl.Float64).fill_nan(None))
        .select(*KEYS, "t", "mean", low=pl.col("mean") - pl.col("half"), high=pl.col("mean") + pl.col("half"),
                n=pl.col("n").cast(pl.Int64))
        .sort(*KEYS, "t")
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


def leaderboard(
    decisions: pl.LazyFrame | pl.DataFrame,
    episodes: pl.LazyFrame | pl.DataFrame,
    *,
    level: float = 0.95,
    burn_in: float = BURN_IN,
) -> pl.DataFrame:
    """One row per (agent, scenario_id) with regret statistics, growth slope, exploration and usage.

    Columns: see `LEADERBOARD_COLUMNS`. Regret statistics (mean with a Student-t CI, sample
    std, median, 90th percentile with linear interpolation) use finished episodes only;
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
        mean_regret=final.mean(),
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
    base, invalid, curves, exploration, positions = pl.collect_all(
        [base, invalid, _curve_stats(decisions), _exploration(decisions, episodes),
         _position_bias(decisions, episodes)], engine=ENGINE)
    half = _t_half_width(base["std_regret"].to_numpy(), base["episodes"].to_numpy(), level)
    growth = _growth_fits(curves.lazy().select(*KEYS, round=pl.col("t") + 1, R=pl.col("mean")), burn_in)
    frame = (
        base.with_columns(half=pl.Series(half, dtype=pl.Float64).fill_nan(None))
        .with_columns(ci_low=pl.col("mean_regret") - pl.col("half"), ci_high=pl.col("mean_regret") + pl.col("half"))
        .join(growth.select(*KEYS, "beta", "beta_pvalue"), on=KEYS, how="left")
        .join(exploration, on=KEYS, how="left")
        .join(invalid, on=KEYS, how="left")
        .join(positions, on=KEYS, how="left")
        .select(LEADERBOARD_COLUMNS)
    )
    return _canonical(frame).sort("scenario_id", "mean_regret", "agent", nulls_last=True)


# --- internals ---------------------------------------------------------------------------
def _position_bias(decisions: pl.LazyFrame, episodes: pl.LazyFrame) -> pl.LazyFrame:
    """position_bias and position_shares per (agent, scenario_id); see the module docstring."""
    import polars as pl

    if "info" not in decisions.collect_schema().names():  # a frame of regret columns only
        return pl.LazyFrame(schema={"agent": pl.String, "scenario_id": pl.String, "position_bias": pl.Float64,
                                    "position_shares": pl.String, "first_listed_share": pl.Float64})
    picks = (decisions.filter(pl.col("info").str.contains('"position":', literal=True))
             .select(*KEYS, position=pl.col("info").str.json_path_match("$.position").cast(pl.Int64))
             .drop_nulls("position"))
    counts = picks.group_by(*KEYS, "position").agg(picks=pl.len())
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
        first_listed_share=pl.col("share").first(),
    )



def _lazy(frame: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    import polars as pl

    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def _to_numpy(values: Any) -> Any:
    return values.to_numpy() if hasattr(values, "to_numpy") else values


def _t_half_width(std: Any, n: Any, level: float) -> Any:
    """Half-width t_{(1+level)/2, n-1} * std / sqrt(n), vectorised; NaN where n < 2 or std is missing."""
    import numpy as np
    from scipy.special import stdtrit  # what scipy.stats.t.ppf calls, without importing scipy.stats (1 s)

    std = np.asarray(std, dtype=float)
    n = np.asarray(n, dtype=float)
    ok = np.isfinite(std) & (n >= 2)
    half = np.full(std.shape, np.nan)
    if ok.any():
        half[ok] = stdtrit(n[ok] - 1.0, (1.0 + level) / 2.0) * std[ok] / np.sqrt(n[ok])
    return half


def _curve_stats(decisions: pl.LazyFrame) -> pl.LazyFrame:
    """Per (agent, scenario_id, t): mean, sample std and count of the cumulative regret."""
    import polars as pl

    R = pl.col("cumulative_regret")
    return decisions.group_by(*KEYS, "t").agg(mean=R.mean(), std=R.std(ddof=1), n=R.count()).sort(*KEYS, "t")


def _growth_fits(curves: pl.LazyFrame, burn_in: float) -> pl.DataFrame:
    """Fit log R = beta log round + c per (agent, scenario_id) of a frame with columns round (1-based), R."""
    import numpy as np
    import polars as pl
    from scipy.special import stdtr  # the Student t CDF (scipy.stats.t.cdf), without importing scipy.stats

    if not 0.0 <= burn_in < 1.0:
        raise ValueError(f"burn_in must be in [0, 1), got {burn_in}")
    by = list(KEYS)
    points = (
        curves.filter(pl.col("round").is_finite() & pl.col("R").is_finite())
        .with_columns(last=pl.col("round").max().over(by))
        .filter((pl.col("R") > MIN_REGRET) & (pl.col("round") > (pl.col("last") * burn_in + 1e-9).floor())
                & (pl.col("round") > 0))
        .with_columns(x=pl.col("round").log(), y=pl.col("R").log())
        .with_columns(xc=pl.col("x") - pl.col("x").mean().over(by), yc=pl.col("y") - pl.col("y").mean().over(by))
        .with_columns(slope=(pl.col("xc") * pl.col("yc")).sum().over(by) / (pl.col("xc") ** 2).sum().over(by))
    )
    fits = (
        curves.select(by).unique()
        .join(
            points.group_by(by).agg(
                n_points=pl.len(),
                beta=pl.col("slope").first(),
                intercept=pl.col("y").mean() - pl.col("slope").first() * pl.col("x").mean(),
                sxx=(pl.col("xc") ** 2).sum(),
                ssr=((pl.col("yc") - pl.col("slope") * pl.col("xc")) ** 2).sum(),
            ),
            on=by, how="left",
        )
        .with_columns(pl.col("n_points").fill_null(0).cast(pl.Int64))
        .sort(by)
        .collect(engine=ENGINE)
    )
    n = fits["n_points"].to_numpy().astype(float)
    beta = fits["beta"].to_numpy().astype(float)
    sxx = fits["sxx"].to_numpy().astype(float)
    ssr = fits["ssr"].to_numpy().astype(float)
    ok = (n >= 3) & np.isfinite(beta) & (sxx > 0)
    pvalue = np.full(n.shape, np.nan)
    if ok.any():
        se = np.sqrt(np.maximum(ssr[ok], 0.0) / (n[ok] - 2) / sxx[ok])
        diff = beta[ok] - 1.0
        exact = se <= 1e-10 * np.maximum(1.0, np.abs(beta[ok]))  # a noiseless curve: the sign decides
        diff = np.where(exact & (np.abs(diff) <= 1e-9), 0.0, diff)
        with np.errstate(divide="ignore", invalid="ignore"):
            tstat = np.where(exact, np.sign(diff) * np.inf, diff / np.where(exact, 1.0, se))
        tstat = np.where(exact & (diff == 0.0), 0.0, tstat)
        pvalue[ok] = stdtr(n[ok] - 2, tstat)
    return fits.select(
        *by,
        beta=pl.when(pl.Series(ok)).then(pl.col("beta")),
        intercept=pl.when(pl.Series(ok)).then(pl.col("intercept")),
        beta_pvalue=pl.Series(pvalue, dtype=pl.Float64).fill_nan(None),
        n_points=pl.col("n_points"),
    )


def _canonical(frame: pl.DataFrame) -> pl.DataFrame:
    """Round floats to DECIMALS, turn NaN into null and -0.0 into 0.0 (byte-stable files)."""
    import polars as pl

    floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
    return frame.with_columns(
        pl.when(pl.col(name).fill_nan(None).round(DECIMALS) == 0).then(0.0)
        .otherwise(pl.col(name).fill_nan(None).round(DECIMALS)).alias(name)
        for name in floats
    )
