"""Statistics for regret evaluations: task-clustered intervals, a sublinearity test that is valid
under its null, paired comparisons with multiplicity control, and power planning.

Only numpy and `scipy.special` are used (the Student-t and noncentral-t functions that
scipy.stats wraps), so importing this module stays fast; polars stays in `harness.metrics`.

The model and what it assumes
-----------------------------
A scenario's tasks (instances) are independent draws from the scenario's instance
distribution. The episodes (rollouts) of one task share its instance and are independent
given it: each has its own env and agent seeds. An episode statistic y (final regret, a
growth slope, a paired difference) is therefore "task effect + episode noise": episodes of
one task are correlated (clustered), different tasks are not. Two questions can be asked, and
`scope` names which:

- ``scope="instances"`` (the default): what is the mean over the scenario's *instance
  distribution*? The standard error is cluster-robust over tasks (CR1: the sandwich estimator
  with the G/(G-1) small-sample factor) and intervals use Student t with G-1 degrees of
  freedom, G the number of tasks (Cameron & Miller 2015, "A practitioner's guide to
  cluster-robust inference"; Miller 2024, "Adding error bars to evals"). With equally many
  episodes per task this is exactly the t-interval over the task means, so it is exact when
  task means are normal and conservative-to-correct otherwise; it needs G >= 2. With two
  tasks t has one degree of freedom (t_0.975 = 12.7): few tasks give honest, wide intervals.
- ``scope="tasks"``: what is the mean over *these* tasks (a fixed suite, as a CI gate asks)?
  Tasks are strata, episodes are independent within a task: Var = sum_g (n_g/N)^2 s_g^2/n_g
  with Welch-Satterthwaite degrees of freedom. Every task needs two episodes.

A scenario with a single task cannot say anything about other instances: its interval is the
"tasks" one over the episodes of that instance (`Estimate.single_task` is True, `method` says
"single task"), whatever `scope` asked for. Callers must show this.

Values equal to the float precision (a zero standard error, e.g. a deterministic agent) are
handled exactly: a zero-width interval, and p-values decided by the sign of the difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scenarios import UsageError


class StatsError(UsageError):
    """A statistic asked for with unusable arguments (lengths that differ, a level outside (0, 1), ...)."""


SCOPES = ("instances", "tasks")
ALTERNATIVES = ("two-sided", "less", "greater")
CORRECTIONS = ("holm", "bonferroni", "none")
BURN_IN = 0.1  # fraction of rounds skipped before fitting a growth slope
MIN_REGRET = 1e-9  # R_t at or below this is float noise around 0, not a point to fit (its log would explode)
_ZERO_SE = 1e-12  # a standard error below this times the data's scale is zero (exact data)
_NULL_TOL = 1e-9  # an exact estimate within this times the scale of the null value equals it


# --- estimates ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """A mean (or a difference of means) with its standard error and interval.

    method: "clustered" (CR1 over tasks, df = tasks - 1), "stratified" (tasks fixed, episodes
    independent within a task), "single task" (one task: the interval covers that instance
    only), "episodes" (no task labels: every value independent) or "welch" (a difference of
    two independent estimates). NaN fields mean "cannot be computed" (too few values).
    """

    estimate: float
    std_error: float
    df: float
    ci_low: float
    ci_high: float
    level: float
    n_tasks: int
    n_episodes: int
    method: str
    scale: float = field(default=1.0, repr=False)  # magnitude of the data, for the exactness tolerance

    @property
    def single_task(self) -> bool:
        return self.n_tasks == 1

    @property
    def exact(self) -> bool:
        """True when the standard error is zero (to float precision)."""
        return self.std_error == 0.0

    def pvalue(self, null: float = 0.0, alternative: str = "two-sided") -> float:
        """p-value of H0: mean = null (two-sided), mean >= null ("less") or mean <= null ("greater").

        With a zero standard error the sign of estimate - null decides (p = 0 or 1), and an
        estimate equal to the null (to 1e-9 of the scale) gives p = 1.
        """
        from scipy.special import stdtr  # the Student t CDF that scipy.stats.t.cdf wraps

        if alternative not in ALTERNATIVES:
            raise StatsError(f"alternative must be one of {', '.join(ALTERNATIVES)}, got {alternative!r}")
        diff = self.estimate - null
        if not (math.isfinite(diff) and math.isfinite(self.std_error) and math.isfinite(self.df)):
            return math.nan
        if self.exact:
            if abs(diff) <= _NULL_TOL * max(self.scale, abs(null)):
                return 1.0
            if alternative == "two-sided":
                return 0.0
            return 0.0 if (diff < 0) == (alternative == "less") else 1.0
        t = diff / self.std_error
        if alternative == "less":
            return float(stdtr(self.df, t))
        if alternative == "greater":
            return float(stdtr(self.df, -t))
        return float(min(1.0, 2.0 * stdtr(self.df, -abs(t))))

    def to_dict(self) -> dict[str, Any]:
        return {"estimate": _finite(self.estimate), "std_error": _finite(self.std_error), "df": _finite(self.df),
                "ci_low": _finite(self.ci_low), "ci_high": _finite(self.ci_high), "level": self.level,
                "n_tasks": self.n_tasks, "n_episodes": self.n_episodes, "method": self.method}


def _by_task(values: Sequence[float] | Any, tasks: Sequence[Any] | Any | None):
    """The finite values, each one's task code 0..g-1, and g (every value its own task when `tasks` is None)."""
    y = np.asarray(_to_numpy(values), dtype=float).ravel()
    labels = np.arange(y.size) if tasks is None else np.asarray(_to_numpy(tasks), dtype=object).ravel()
    if labels.shape != y.shape:
        raise StatsError(f"values and tasks differ in length ({y.size} vs {labels.size})")
    keep = np.isfinite(y)
    y, labels = y[keep], labels[keep]
    if y.size == 0:
        return y, np.zeros(0, dtype=int), 0
    _, codes = np.unique(labels.astype(str) if labels.dtype == object else labels, return_inverse=True)
    return y, codes, int(codes.max()) + 1


def clustered_mean(values: Sequence[float] | Any, tasks: Sequence[Any] | Any | None = None, *,
                   level: float = 0.95, scope: str = "instances") -> Estimate:
    """The mean of `values` with a task-clustered (scope "instances") or stratified (scope
    "tasks") standard error and a Student-t interval at `level`; see the module docstring.

    `tasks` labels each value's task (any hashable labels); None treats every value as its own
    task, which is the ordinary t-interval ("episodes"). NaN values are dropped.

    >>> e = clustered_mean([1.0, 2.0, 4.0, 5.0], ["a", "a", "b", "b"])
    >>> e.estimate, e.n_tasks, e.df, e.method, round(e.std_error, 6)
    (3.0, 2, 1.0, 'clustered', 1.5)
    >>> clustered_mean([1.0, 3.0], ["a", "a"]).method
    'single task'
    """
    _check_level(level)
    if scope not in SCOPES:
        raise StatsError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    y, codes, n_tasks = _by_task(values, tasks)
    n = y.size
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, math.nan, math.nan, level, 0, 0, "none")
    mean = float(y.mean())
    scale = max(1.0, float(np.abs(y).max()))
    if tasks is None:
        method = "episodes"
    elif n_tasks == 1:
        method = "single task"
    else:
        method = "clustered" if scope == "instances" else "stratified"
    if method in ("clustered", "episodes"):
        if n_tasks < 2:
            return _estimate(mean, math.nan, math.nan, level, n_tasks, n, method, scale)
        cluster_sums = np.bincount(codes, weights=y - mean, minlength=n_tasks)
        variance = n_tasks / (n_tasks - 1) * float(np.sum(cluster_sums**2)) / n**2
        if method == "clustered" and math.sqrt(variance) <= _ZERO_SE * scale and np.ptp(y) > _NULL_TOL * scale:
            # the task means coincide (discrete regrets, few tasks) but the episodes vary: CR1 says 0, which
            # would claim certainty; the within-task standard error is a lower bound on the true one
            within = clustered_mean(y, codes, level=level, scope="tasks")
            return _estimate(mean, within.std_error, n_tasks - 1.0, level, n_tasks, n, method, scale)
        return _estimate(mean, math.sqrt(variance), n_tasks - 1.0, level, n_tasks, n, method, scale)
    # stratified: tasks fixed, episodes independent within a task
    counts = np.bincount(codes, minlength=n_tasks).astype(float)
    task_means = np.bincount(codes, weights=y, minlength=n_tasks) / counts
    if counts.min() < 2:
        return _estimate(mean, math.nan, math.nan, level, n_tasks, n, method, scale)
    squares = np.bincount(codes, weights=(y - task_means[codes]) ** 2, minlength=n_tasks)
    components = counts * (squares / (counts - 1.0)) / n**2  # (n_g/N)^2 * s_g^2 / n_g
    variance = float(components.sum())
    denominator = float(np.sum(components**2 / (counts - 1.0)))
    df = variance**2 / denominator if denominator > 0 else float(n - n_tasks)
    return _estimate(mean, math.sqrt(variance), df, level, n_tasks, n, method, scale)


def paired_difference(a: Sequence[float] | Any, b: Sequence[float] | Any, tasks: Sequence[Any] | Any | None = None,
                      *, level: float = 0.95, scope: str = "instances") -> Estimate:
    """Mean of the paired differences a - b (the same episodes played by two agents), clustered by task.

    Common random numbers make a and b share each episode's world, so its noise cancels in a - b.
    """
    a = np.asarray(_to_numpy(a), dtype=float).ravel()
    b = np.asarray(_to_numpy(b), dtype=float).ravel()
    if a.shape != b.shape:
        raise StatsError(f"paired samples differ in length ({a.size} vs {b.size})")
    estimate = clustered_mean(a - b, tasks, level=level, scope=scope)
    return _with_scale(estimate, max(estimate.scale, *_scales(a, b)))


def difference(a: Estimate, b: Estimate) -> Estimate:
    """a - b for two independent estimates (e.g. unpaired runs): variances add, Welch-Satterthwaite df."""
    if a.level != b.level:
        raise StatsError(f"estimates at different levels ({a.level} and {b.level})")
    diff = a.estimate - b.estimate
    va, vb = a.std_error**2, b.std_error**2
    if va + vb == 0.0:
        df = a.df + b.df
    else:
        terms = (va**2 / a.df if va else 0.0) + (vb**2 / b.df if vb else 0.0)
        df = (va + vb) ** 2 / terms if terms > 0 else math.nan
    return _estimate(diff, math.sqrt(va + vb), df, a.level, max(a.n_tasks, b.n_tasks), a.n_episodes + b.n_episodes,
                     "welch", max(a.scale, b.scale))


def adjust_pvalues(pvalues: Sequence[float], correction: str = "holm") -> list[float]:
    """Holm's step-down or Bonferroni adjusted p-values (compare them with alpha), or unchanged.

    NaN p-values (untestable comparisons) stay NaN and do not count towards the family size.

    >>> adjust_pvalues([0.01, 0.04, 0.03, 0.20])
    [0.04, 0.09, 0.09, 0.2]
    """
    if correction not in CORRECTIONS:
        raise StatsError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    values = [float(p) for p in pvalues]
    tested = [i for i, p in enumerate(values) if math.isfinite(p)]
    m = len(tested)
    if correction == "none" or m == 0:
        return values
    adjusted = list(values)
    if correction == "bonferroni":
        for i in tested:
            adjusted[i] = min(1.0, values[i] * m)
        return adjusted
    running = 0.0
    for rank, i in enumerate(sorted(tested, key=lambda i: values[i])):
        running = max(running, min(1.0, (m - rank) * values[i]))
        adjusted[i] = running
    return adjusted


# --- regret growth -----------------------------------------------------------------------
@dataclass(frozen=True)
class GrowthSlopes:
    """Per-episode least-squares fits of log R_t = beta log t + intercept (NaN where unfittable)."""

    beta: np.ndarray
    intercept: np.ndarray
    n_points: np.ndarray  # rounds used per episode (R_t > MIN_REGRET, after burn-in)

    def __len__(self) -> int:
        return int(self.beta.size)


def growth_slopes(cumulative_regret: Any, rounds: Any | None = None, episode: Any | None = None, *,
                  burn_in: float = BURN_IN) -> GrowthSlopes:
    """Fit the regret-growth slope of every episode (Park et al., arXiv 2511.04393).

    Either a 2-D array (episodes x rounds; rounds 1..T unless `rounds` gives them), or flat
    1-D arrays with `rounds` (1-based) and `episode` (integer codes 0..E-1) for runs whose
    episodes differ in length. Per episode, the rounds t <= floor(burn_in * last round) are
    skipped (early forced exploration bends the slope) and so are rounds with R_t <= 1e-9
    (their log is undefined or float noise). An episode needs 3 such rounds, else its fit is NaN.

    >>> t = np.arange(1, 101)
    >>> fits = growth_slopes(np.vstack([3 * np.sqrt(t), 0.5 * t]))
    >>> np.round(fits.beta, 6).tolist(), fits.n_points.tolist()
    ([0.5, 1.0], [90, 90])
    """
    if not 0.0 <= burn_in < 1.0:
        raise StatsError(f"burn_in must be in [0, 1), got {burn_in}")
    R = np.asarray(_to_numpy(cumulative_regret), dtype=float)
    if R.ndim == 2:
        n_episodes, horizon = R.shape
        x_rounds = np.broadcast_to(np.arange(1, horizon + 1, dtype=float) if rounds is None
                                   else np.asarray(_to_numpy(rounds), dtype=float), R.shape).ravel()
        codes = np.repeat(np.arange(n_episodes), horizon)
        R = R.ravel()
    elif R.ndim == 1:
        if rounds is None or episode is None:
            raise StatsError("flat cumulative regrets need `rounds` and `episode` arrays")
        x_rounds = np.asarray(_to_numpy(rounds), dtype=float).ravel()
        codes = np.asarray(_to_numpy(episode)).ravel().astype(np.int64)
        if not (x_rounds.shape == codes.shape == R.shape):
            raise StatsError(f"cumulative_regret, rounds and episode differ in length "
                             f"({R.size}, {x_rounds.size}, {codes.size})")
        n_episodes = int(codes.max()) + 1 if codes.size else 0
    else:
        raise StatsError(f"cumulative_regret must be 1-D or 2-D, got {R.ndim} dimensions")
    if n_episodes == 0:
        empty = np.empty(0)
        return GrowthSlopes(empty, empty, np.empty(0, dtype=np.int64))
    finite = np.isfinite(x_rounds) & np.isfinite(R)
    last = np.full(n_episodes, -np.inf)
    np.maximum.at(last, codes[finite], x_rounds[finite])
    cutoff = np.floor(last * burn_in + 1e-9)
    use = finite & (R > MIN_REGRET) & (x_rounds > cutoff[codes]) & (x_rounds > 0)
    codes, x, y = codes[use], np.log(x_rounds[use]), np.log(R[use])
    count = np.bincount(codes, minlength=n_episodes).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        x_mean = np.bincount(codes, weights=x, minlength=n_episodes) / count
        y_mean = np.bincount(codes, weights=y, minlength=n_episodes) / count
        xc, yc = x - x_mean[codes], y - y_mean[codes]  # centred first: exact curves give exact slopes
        sxx = np.bincount(codes, weights=xc * xc, minlength=n_episodes)
        sxy = np.bincount(codes, weights=xc * yc, minlength=n_episodes)
        ok = (count >= 3) & (sxx > 0)
        beta = np.where(ok, sxy / np.where(ok, sxx, 1.0), np.nan)
    intercept = np.where(ok, y_mean - beta * x_mean, np.nan)
    return GrowthSlopes(beta, intercept, count.astype(np.int64))


@dataclass(frozen=True)
class SublinearityTest:
    """The regret-growth slope beta averaged over episodes, with a test of H0: beta >= 1.

    `beta` is the mean per-episode slope with its (task-clustered) interval; `pvalue` is the
    one-sided p-value of H0: mean slope >= 1 against H1: < 1; `sublinear` is True when
    pvalue < alpha, False when not, None when it cannot be tested (too few fitted episodes or
    tasks). `n_unfitted` episodes (fewer than 3 rounds with positive regret after the burn-in,
    e.g. an oracle's) are left out of beta.
    """

    beta: Estimate
    pvalue: float
    alpha: float
    n_unfitted: int

    @property
    def sublinear(self) -> bool | None:
        return None if math.isnan(self.pvalue) else bool(self.pvalue < self.alpha)

    @property
    def verdict(self) -> str:
        if self.sublinear is None:
            return "untestable"
        return "sublinear" if self.sublinear else "not shown sublinear"


def sublinearity_test(slopes: GrowthSlopes | Sequence[float] | Any, tasks: Sequence[Any] | Any | None = None, *,
                      alpha: float = 0.05, level: float = 0.95, scope: str = "instances") -> SublinearityTest:
    """Test whether regret grows sublinearly, from per-episode growth slopes.

    The points of one cumulative-regret curve are not independent (each contains every earlier
    increment), so a regression p-value on one curve is invalid: on linear regret it claims
    "sublinear" about 40% of the time. Instead each episode gives one slope (`growth_slopes`),
    and the slopes, independent across tasks, are averaged with a task-clustered standard error
    (see `clustered_mean`). Under exactly linear expected regret E[R_t] = c t, an episode's slope
    is centred at or slightly above 1 (Jensen: E log R_t < log E R_t by a term that fades with t,
    which tilts the fit upwards), so the test is valid, if slightly conservative, at its level.

    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(1, 501)
    >>> curves = np.cumsum(rng.uniform(0, 1, (20, 500)), axis=1)          # linear regret
    >>> sublinearity_test(growth_slopes(curves), np.repeat(range(4), 5)).sublinear
    False
    >>> sublinearity_test(growth_slopes(np.sqrt(t) * rng.uniform(1, 2, (20, 1))), np.repeat(range(4), 5)).sublinear
    True
    """
    if not 0.0 < alpha < 1.0:
        raise StatsError(f"alpha must be in (0, 1), got {alpha}")
    beta = slopes.beta if isinstance(slopes, GrowthSlopes) else np.asarray(_to_numpy(slopes), dtype=float).ravel()
    unfitted = int(np.sum(~np.isfinite(beta)))
    estimate = clustered_mean(beta, tasks, level=level, scope=scope)
    return SublinearityTest(estimate, estimate.pvalue(1.0, "less"), alpha, unfitted)


# --- power planning ----------------------------------------------------------------------
@dataclass(frozen=True)
class VarianceComponents:
    """One-way random-effects decomposition of episode values: task effect + episode noise.

    between: variance of the task means beyond what episode noise explains (tau^2; NaN with one
    task); within: pooled within-task variance (sigma^2); method-of-moments (ANOVA) estimates,
    the between part truncated at 0.
    """

    mean: float
    between: float
    within: float
    n_tasks: int
    n_episodes: int

    def task_mean_variance(self, rollouts: float) -> float:
        """Variance of one task's mean over `rollouts` episodes."""
        return self.between + self.within / rollouts


def variance_components(values: Sequence[float] | Any, tasks: Sequence[Any] | Any) -> VarianceComponents:
    """Estimate between-task and within-task variance of `values` (NaNs dropped)."""
    y, codes, g = _by_task(values, tasks)
    n = y.size
    if n == 0:
        return VarianceComponents(math.nan, math.nan, math.nan, 0, 0)
    counts = np.bincount(codes, minlength=g).astype(float)
    means = np.bincount(codes, weights=y, minlength=g) / counts
    within_ss = float(np.sum((y - means[codes]) ** 2))
    within = within_ss / (n - g) if n > g else math.nan
    if g < 2:
        return VarianceComponents(float(y.mean()), math.nan, within, g, n)
    grand = float(y.mean())
    between_ms = float(np.sum(counts * (means - grand) ** 2)) / (g - 1)
    n0 = (n - float(np.sum(counts**2)) / n) / (g - 1)  # the "average" task size of unbalanced ANOVA
    between = max(0.0, (between_ms - (within if math.isfinite(within) else 0.0)) / n0)
    return VarianceComponents(grand, between, within, g, n)


@dataclass(frozen=True)
class PowerPlan:
    """How many tasks and episodes a comparison of two agents needs to detect `effect` with `power`.

    Paired: both agents play the same episodes (a run's common random numbers). Unpaired: each
    agent plays its own, independent episodes and instances (e.g. two separate runs with other
    seeds). Counts are per agent; None means the pilot gives no basis (zero effect or unknown
    variance). With scope "instances" the unit is the task (`*_tasks` at `rollouts` episodes
    each; `*_episodes` = tasks x rollouts); with scope "tasks" the pilot's tasks are kept and
    the rollouts per task grow (`*_episodes` = tasks x the rollouts per task needed).
    """

    effect: float  # absolute difference of mean regret to detect
    relative_effect: float
    reference_mean: float
    alpha: float
    power: float
    scope: str
    rollouts: int  # episodes per task
    paired_tasks: int | None
    paired_episodes: int | None
    unpaired_tasks: int | None
    unpaired_episodes: int | None
    paired: VarianceComponents
    unpaired: tuple[VarianceComponents, VarianceComponents]

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("effect", "relative_effect", "reference_mean", "alpha", "power", "scope",
                                              "rollouts", "paired_tasks", "paired_episodes", "unpaired_tasks",
                                              "unpaired_episodes")}


def t_test_power(effect_size: float, n: float, df: float, alpha: float = 0.05, alternative: str = "two-sided") -> float:
    """Power of a t-test whose statistic is noncentral t(df, effect_size * sqrt(n))."""
    from scipy.special import nctdtr, stdtrit

    if alternative not in ALTERNATIVES:
        raise StatsError(f"alternative must be one of {', '.join(ALTERNATIVES)}, got {alternative!r}")
    if df <= 0 or n <= 0:
        return math.nan
    nc = effect_size * math.sqrt(n)
    if alternative == "two-sided":
        crit = float(stdtrit(df, 1.0 - alpha / 2.0))
        return float(1.0 - nctdtr(df, nc, crit) + nctdtr(df, nc, -crit))
    crit = float(stdtrit(df, 1.0 - alpha))
    sign = 1.0 if alternative == "greater" else -1.0
    return float(1.0 - nctdtr(df, sign * nc, crit))


def sample_size(effect_size: float, *, alpha: float = 0.05, power: float = 0.8, df_of=lambda n: n - 1.0,
                minimum: int = 2, alternative: str = "two-sided", limit: int = 10**7) -> int | None:
    """Smallest n >= minimum with t_test_power(effect_size, n, df_of(n)) >= power (None if never)."""
    from scipy.special import ndtri

    if math.isnan(effect_size) or effect_size == 0.0:
        return None
    effect_size = abs(effect_size)
    if math.isinf(effect_size):  # no noise at all: the smallest design detects any difference
        return minimum
    sides = 2.0 if alternative == "two-sided" else 1.0
    guess = ((ndtri(1.0 - alpha / sides) + ndtri(power)) / effect_size) ** 2  # the normal approximation
    n = max(minimum, int(math.ceil(guess)))
    if n > limit:
        return None
    achieved = lambda k: t_test_power(effect_size, k, df_of(k), alpha, alternative)  # noqa: E731
    while achieved(n) < power:
        n += max(1, n // 50)  # t quantiles exceed normal ones: a few percent more at most
        if n > limit:
            return None
    while n > minimum and achieved(n - 1) >= power:
        n -= 1
    return n


def plan_power(a: Sequence[float] | Any, b: Sequence[float] | Any, tasks: Sequence[Any] | Any, *,
               relative_effect: float, alpha: float = 0.05, power: float = 0.8, scope: str = "instances",
               rollouts: int | None = None) -> PowerPlan:
    """Plan a comparison of agent a against the reference agent b from a paired pilot.

    `a`, `b` are the pilot's regrets on shared episodes, `tasks` their tasks. The effect to
    detect is `relative_effect` x |mean(b)|; tests are two-sided at `alpha`.

    - scope "instances": the test is a t-test over task means (df = tasks - 1 paired,
      2 tasks - 2 unpaired) whose per-task variance is between + within / rollouts (see
      `VarianceComponents`); paired uses the components of a - b, unpaired those of a and of b
      (independent instances and worlds per agent, so instance difficulty no longer cancels).
    - scope "tasks": the pilot's tasks stay fixed and only within-task noise counts (df =
      episodes - tasks paired, 2 (episodes - tasks) unpaired).
    """
    if scope not in SCOPES:
        raise StatsError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if not 0.0 < power < 1.0:
        raise StatsError(f"power must be in (0, 1), got {power}")
    a = np.asarray(_to_numpy(a), dtype=float).ravel()
    b = np.asarray(_to_numpy(b), dtype=float).ravel()
    labels = np.asarray(_to_numpy(tasks), dtype=object).ravel()
    if not a.shape == b.shape == labels.shape:
        raise StatsError(f"a, b and tasks differ in length ({a.size}, {b.size}, {labels.size})")
    paired = variance_components(a - b, labels)
    side_a, side_b = variance_components(a, labels), variance_components(b, labels)
    reference = float(np.nanmean(b)) if b.size else math.nan
    effect = abs(relative_effect * reference)
    m = int(rollouts if rollouts is not None else max(1, round(paired.n_episodes / max(paired.n_tasks, 1))))
    if m < 1:
        raise StatsError(f"rollouts must be >= 1, got {m}")
    plan = dict(effect=effect, relative_effect=relative_effect, reference_mean=reference, alpha=alpha, power=power,
                scope=scope, rollouts=m, paired=paired, unpaired=(side_a, side_b))
    if scope == "instances":
        sd_paired = math.sqrt(paired.task_mean_variance(m)) if math.isfinite(paired.between) else math.nan
        # two independent means: Var(difference) = (v_a + v_b) / tasks, so noncentrality = effect / sqrt(v_a + v_b) * sqrt(tasks)
        summed = side_a.task_mean_variance(m) + side_b.task_mean_variance(m)
        sd_unpaired = math.sqrt(summed) if math.isfinite(summed) else math.nan
        paired_tasks = sample_size(_ratio(effect, sd_paired), alpha=alpha, power=power)
        unpaired_tasks = sample_size(_ratio(effect, sd_unpaired), alpha=alpha, power=power,
                                     df_of=lambda g: 2.0 * g - 2.0)
        return PowerPlan(**plan, paired_tasks=paired_tasks, paired_episodes=_times(paired_tasks, m),
                         unpaired_tasks=unpaired_tasks, unpaired_episodes=_times(unpaired_tasks, m))
    g = max(paired.n_tasks, 1)
    paired_n = sample_size(_ratio(effect, math.sqrt(paired.within)), alpha=alpha, power=power,
                           df_of=lambda n: n - g, minimum=2 * g)
    unpaired_n = sample_size(_ratio(effect, math.sqrt(side_a.within + side_b.within)), alpha=alpha, power=power,
                             df_of=lambda n: 2.0 * (n - g), minimum=2 * g)
    per_task = lambda n: None if n is None else math.ceil(n / g)  # noqa: E731
    return PowerPlan(**plan, paired_tasks=g, paired_episodes=_times(per_task(paired_n), g), unpaired_tasks=g,
                     unpaired_episodes=_times(per_task(unpaired_n), g))


# --- internals ---------------------------------------------------------------------------
def _estimate(mean: float, se: float, df: float, level: float, n_tasks: int, n: int, method: str,
              scale: float) -> Estimate:
    from scipy.special import stdtrit  # the Student t quantile that scipy.stats.t.ppf wraps

    if math.isfinite(se) and se <= _ZERO_SE * scale:
        se = 0.0
    if not (math.isfinite(se) and math.isfinite(df) and df > 0):
        return Estimate(mean, se, df, math.nan, math.nan, level, n_tasks, n, method, scale)
    half = float(stdtrit(df, (1.0 + level) / 2.0)) * se
    return Estimate(mean, se, df, mean - half, mean + half, level, n_tasks, n, method, scale)


def _with_scale(estimate: Estimate, scale: float) -> Estimate:
    from dataclasses import replace

    if estimate.std_error and estimate.std_error <= _ZERO_SE * scale:
        return _estimate(estimate.estimate, 0.0, estimate.df, estimate.level, estimate.n_tasks,
                         estimate.n_episodes, estimate.method, scale)
    return replace(estimate, scale=scale)


def _scales(*arrays: np.ndarray) -> list[float]:
    return [float(np.nanmax(np.abs(x))) if x.size and np.isfinite(x).any() else 1.0 for x in arrays]


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise StatsError(f"level must be in (0, 1), got {level}")


def _ratio(effect: float, sd: float) -> float:
    if not math.isfinite(sd):
        return math.nan
    if sd == 0.0:
        return math.inf if effect > 0 else math.nan
    return effect / sd


def _times(count: int | None, factor: int) -> int | None:
    return None if count is None else count * factor


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _to_numpy(values: Any) -> Any:
    return values.to_numpy() if hasattr(values, "to_numpy") else values
