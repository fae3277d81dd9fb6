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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scenarios import ConfigError, Registry

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

BASE_COLUMNS = ("agent", "scenario_id", "family", "episodes", "failed")


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
        raise ConfigError(f"level must be in (0, 1), got {level}")
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
        raise ConfigError(f"t and cumulative_regret differ in length ({t_array.size} vs {r_array.size})")
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


def best_arm_families(frame: pl.LazyFrame) -> list[str]:
    """The families in `frame` whose scenarios declare `best_arm` (see scenarios.Scenario): those
    where never playing the best arm late in an episode is a failure to explore."""
    import polars as pl

    from scenarios import SCENARIOS

    families = frame.select(pl.col("family").unique()).collect(engine=ENGINE)["family"].drop_nulls().to_list()
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
    rows = decisions.filter(exploring)
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


def leaderboard(
    decisions: pl.LazyFrame | pl.DataFrame,
    episodes: pl.LazyFrame | pl.DataFrame,
    *,
    level: float = 0.95,
    burn_in: float = BURN_IN,
) -> pl.DataFrame:
    """One row per (agent, scenario_id): the keys, `family`, `episodes` (finished) and `failed`,
    then the columns of every registered metric (`METRICS`, in their `position` order).

    The built-in metrics: regret statistics (mean with a Student-t CI, sample std, median,
    90th percentile with linear interpolation) over finished episodes; the growth slope;
    exploration (families with a best arm); `invalid_rate`, the share of decisions whose
    parse_status is not in agents.VALID_PARSE_STATUSES (null counts as invalid); tokens and
    cost, totals over all episodes, failed ones included. Floats are rounded to 6 decimals
    (and -0.0 to 0.0) and rows sorted by scenario_id, mean_regret (nulls last), agent, so
    identical runs give identical frames.
    """
    import polars as pl

    inputs = MetricInputs(_lazy(decisions), _lazy(episodes), level, burn_in)
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
    level: float = 0.95
    burn_in: float = BURN_IN
    _curves: Any = None

    def curves(self) -> pl.DataFrame:
        """Per (agent, scenario_id, t): mean, std and count of the cumulative regret (computed once)."""
        if self._curves is None:
            self._curves = _curve_stats(self.decisions).collect(engine=ENGINE)
        return self._curves


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


def _ci(row: Mapping[str, Any]) -> str:
    if row["ci_low"] is None:
        return "–"
    return f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


# --- the built-in metrics ---------------------------------------------------------------
@metric("regret", ("mean_regret", "ci_low", "ci_high", "std_regret", "median_regret", "p90_regret"), position=10,
        table=(("mean regret", lambda r: format_number(r["mean_regret"])), ("95% CI", _ci),
               ("std", lambda r: format_number(r["std_regret"])), ("median", lambda r: format_number(r["median_regret"])),
               ("p90", lambda r: format_number(r["p90_regret"]))))
def _regret(inputs: MetricInputs) -> pl.DataFrame:
    """Final regret over finished episodes: mean with a Student-t CI, std, median, 90th percentile."""
    import polars as pl

    finished = pl.col("status") == "finished"
    final = pl.col("final_regret").filter(finished)
    stats = inputs.episodes.group_by(KEYS).agg(
        n=finished.sum().cast(pl.Int64),
        mean_regret=final.mean(),
        std_regret=final.std(ddof=1),
        median_regret=final.median(),
        p90_regret=final.quantile(0.9, interpolation="linear"),
    ).collect(engine=ENGINE)
    half = _t_half_width(stats["std_regret"].to_numpy(), stats["n"].to_numpy(), inputs.level)
    return (stats.with_columns(half=pl.Series(half, dtype=pl.Float64).fill_nan(None))
            .with_columns(ci_low=pl.col("mean_regret") - pl.col("half"), ci_high=pl.col("mean_regret") + pl.col("half")))


@metric("growth", ("beta", "beta_pvalue"), position=20,
        table=(("beta", lambda r: format_number(r["beta"])), ("p(beta>=1)", lambda r: format_pvalue(r["beta_pvalue"]))))
def _growth(inputs: MetricInputs) -> pl.DataFrame:
    """Regret-growth slope beta of the mean cumulative-regret curve, with the p-value of beta >= 1."""
    import polars as pl

    curves = inputs.curves().lazy().select(*KEYS, round=pl.col("t") + 1, R=pl.col("mean"))
    return _growth_fits(curves, inputs.burn_in)


@metric("exploration", ("suff_fail_freq", "min_frac"), position=30,
        table=(("SuffFail", lambda r: format_number(r["suff_fail_freq"])),
               ("MinFrac", lambda r: format_number(r["min_frac"]))))
def _exploration_metric(inputs: MetricInputs) -> pl.LazyFrame:
    """SuffFailFreq and MinFrac, for families with a best arm."""
    return _exploration(inputs.decisions, inputs.episodes)


@metric("invalid_rate", ("invalid_rate",), position=40,
        table=(("invalid", lambda r: format_percent(r["invalid_rate"])),))
def _invalid_rate(inputs: MetricInputs) -> pl.LazyFrame:
    """Share of decisions whose answer was never valid or needed no valid parse (parse_status)."""
    import polars as pl

    from agents import VALID_PARSE_STATUSES

    return inputs.decisions.group_by(KEYS).agg(
        invalid_rate=pl.col("parse_status").is_in(list(VALID_PARSE_STATUSES)).fill_null(False).not_()
        .cast(pl.Float64).mean()
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


# --- internals ---------------------------------------------------------------------------
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
        raise ConfigError(f"burn_in must be in [0, 1), got {burn_in}")
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
