"""harness._stats against independent references: statsmodels' OLS with cluster-robust covariance,
scipy.stats' t-tests and regressions, statsmodels' power and multiple-testing functions, and
by-hand formulas; plus small simulations of the properties the statistics promise (coverage of
the clustered interval, size of the sublinearity test under linear regret)."""

import doctest
import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower

from harness import _stats
from harness._stats import (
    Estimate,
    adjust_pvalues,
    clustered_mean,
    difference,
    growth_slopes,
    paired_difference,
    plan_power,
    sample_size,
    sublinearity_test,
    t_test_power,
    variance_components,
)


def clustered_ols(y, groups):
    """statsmodels: OLS of y on a constant with cluster-robust (CR1) covariance, t with G-1 df."""
    return sm.OLS(np.asarray(y, float), np.ones(len(y))).fit(cov_type="cluster", cov_kwds={"groups": groups},
                                                              use_t=True)


def unbalanced(seed, tasks=6, between=2.0, within=1.0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 9, size=tasks)
    groups = np.repeat(np.arange(tasks), sizes)
    y = 5 + rng.normal(0, between, tasks)[groups] + rng.gamma(2.0, within, groups.size)
    return y, groups


# --- clustered intervals ------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_clustered_mean_matches_statsmodels_cluster_robust_ols(seed):
    y, groups = unbalanced(seed)
    labels = [f"task#{g}" for g in groups]
    estimate = clustered_mean(y, labels, level=0.9)
    reference = clustered_ols(y, groups)
    assert estimate.method == "clustered" and estimate.n_tasks == 6 and estimate.n_episodes == y.size
    assert estimate.estimate == pytest.approx(reference.params[0], rel=1e-12)
    assert estimate.std_error == pytest.approx(reference.bse[0], rel=1e-10)
    assert estimate.df == reference.df_resid_inference == 5
    low, high = reference.conf_int(alpha=0.1)[0]
    assert (estimate.ci_low, estimate.ci_high) == (pytest.approx(low, rel=1e-10), pytest.approx(high, rel=1e-10))
    assert estimate.pvalue(0.0) == pytest.approx(reference.pvalues[0], rel=1e-8)
    test = reference.t_test("const = 6")
    assert estimate.pvalue(6.0) == pytest.approx(float(test.pvalue), rel=1e-8)
    one_sided = stats.t.cdf((estimate.estimate - 6.0) / estimate.std_error, 5)
    assert estimate.pvalue(6.0, "less") == pytest.approx(one_sided, rel=1e-10)
    assert estimate.pvalue(6.0, "greater") == pytest.approx(1 - one_sided, rel=1e-10)


def test_balanced_clusters_equal_the_t_interval_over_task_means():
    y, groups = unbalanced(7)
    keep = np.concatenate([np.flatnonzero(groups == g)[:2] for g in range(6)])
    y, groups = y[keep], groups[keep]
    task_means = [y[groups == g].mean() for g in range(6)]
    estimate = clustered_mean(y, groups)
    low, high = stats.t.interval(0.95, 5, loc=np.mean(task_means), scale=stats.sem(task_means))
    assert (estimate.ci_low, estimate.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_episodes_and_single_task_are_the_ordinary_t_interval():
    y = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0])
    reference = stats.ttest_1samp(y, 2.0)
    low, high = stats.t.interval(0.95, y.size - 1, loc=y.mean(), scale=stats.sem(y))
    for estimate, method in ((clustered_mean(y), "episodes"), (clustered_mean(y, ["only"] * 6), "single task"),
                             (clustered_mean(y, ["only"] * 6, scope="tasks"), "single task")):
        assert estimate.method == method and estimate.df == pytest.approx(5)
        assert (estimate.ci_low, estimate.ci_high) == (pytest.approx(low), pytest.approx(high))
        assert estimate.pvalue(2.0) == pytest.approx(reference.pvalue)
    assert clustered_mean(y, ["only"] * 6).single_task and not clustered_mean(y).single_task


def test_stratified_scope_by_hand():
    a, b = [10.0, 12.0, 14.0], [1.0, 2.0, 4.0, 3.0]
    y = np.array(a + b)
    estimate = clustered_mean(y, ["A"] * 3 + ["B"] * 4, scope="tasks")
    n = 7
    comps = [len(x) * np.var(x, ddof=1) / n**2 for x in (a, b)]  # (n_g/N)^2 s_g^2 / n_g
    df = sum(comps) ** 2 / sum(c * c / (len(x) - 1) for c, x in zip(comps, (a, b)))
    assert estimate.method == "stratified" and estimate.estimate == pytest.approx(y.mean())
    assert estimate.std_error == pytest.approx(math.sqrt(sum(comps)))
    assert estimate.df == pytest.approx(df)
    half = stats.t.ppf(0.975, df) * math.sqrt(sum(comps))
    assert estimate.ci_high - estimate.ci_low == pytest.approx(2 * half)
    # the tasks scope ignores how different the tasks are; the instances scope is driven by it
    assert clustered_mean(y, ["A"] * 3 + ["B"] * 4).std_error > 4 * estimate.std_error
    assert math.isnan(clustered_mean([1.0, 2.0, 3.0], ["A", "A", "B"], scope="tasks").ci_low)  # B has one episode


def test_degenerate_and_exact_cases():
    assert math.isnan(clustered_mean([]).estimate)
    one = clustered_mean([4.0], ["a"])
    assert one.estimate == 4.0 and math.isnan(one.ci_low) and math.isnan(one.pvalue())
    assert clustered_mean([1.0, math.nan, 3.0], ["a", "b", "c"]).n_episodes == 2
    constant = clustered_mean([2.0] * 6, list("aabbcc"))
    assert constant.exact and (constant.ci_low, constant.ci_high) == (2.0, 2.0)
    assert constant.pvalue(2.0) == 1.0 and constant.pvalue(1.0) == 0.0
    assert constant.pvalue(1.0, "less") == 1.0 and constant.pvalue(3.0, "less") == 0.0
    # float noise far below the data's scale is still exact (a difference of large equal regrets)
    big = np.full(6, 1e5)
    noisy = paired_difference(big + np.array([0, 1, 0, 1, 0, 1]) * 1e-11, big, list("aabbcc"))
    assert noisy.exact and noisy.pvalue() == 1.0
    # two tasks with equal means but varying episodes: CR1 would give a zero-width interval
    coincide = clustered_mean([1.0, 3.0, 2.0, 2.0], ["a", "a", "b", "b"])
    assert not coincide.exact and coincide.std_error == pytest.approx(
        clustered_mean([1.0, 3.0, 2.0, 2.0], ["a", "a", "b", "b"], scope="tasks").std_error)
    with pytest.raises(ValueError, match="scope"):
        clustered_mean([1.0, 2.0], scope="population")
    with pytest.raises(ValueError, match="differ in length"):
        clustered_mean([1.0, 2.0], ["a"])
    with pytest.raises(ValueError, match="level"):
        clustered_mean([1.0, 2.0], level=95)
    # bad arguments are usage errors of the project's family: the CLI exits 2 by type, a bug stays a bug
    from harness import StatsError
    from scenarios import UsageError

    with pytest.raises(StatsError, match="level") as caught:
        clustered_mean([1.0, 2.0], level=95)
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2


def test_paired_difference_matches_statsmodels_on_the_differences_and_beats_unpaired():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(5), 6)
    world = rng.gamma(2.0, 5.0, groups.size) + rng.normal(0, 4, 5)[groups]  # shared by both agents
    a = world + 1.0 + rng.normal(0, 0.5, groups.size)
    b = world + rng.normal(0, 0.5, groups.size)
    paired = paired_difference(a, b, groups)
    reference = clustered_ols(a - b, groups)
    assert paired.std_error == pytest.approx(reference.bse[0], rel=1e-10)
    assert paired.pvalue() == pytest.approx(reference.pvalues[0], rel=1e-8)
    unpaired = difference(clustered_mean(a, groups), clustered_mean(b, groups))
    assert unpaired.method == "welch" and unpaired.estimate == pytest.approx(paired.estimate)
    assert unpaired.std_error > 5 * paired.std_error and paired.pvalue() < 1e-3 < unpaired.pvalue()
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([1.0], [1.0, 2.0])


def test_welch_difference_of_independent_means_matches_scipy():
    rng = np.random.default_rng(5)
    a, b = rng.normal(1.0, 2.0, 12), rng.normal(0.0, 1.0, 20)
    diff = difference(clustered_mean(a), clustered_mean(b))
    reference = stats.ttest_ind(a, b, equal_var=False)
    assert diff.estimate / diff.std_error == pytest.approx(reference.statistic)
    assert diff.pvalue() == pytest.approx(reference.pvalue, rel=1e-9)


def test_holm_and_bonferroni_match_statsmodels():
    rng = np.random.default_rng(0)
    p = list(rng.uniform(0, 0.2, 9))
    assert adjust_pvalues(p, "holm") == pytest.approx(list(multipletests(p, method="holm")[1]))
    assert adjust_pvalues(p, "bonferroni") == pytest.approx(list(multipletests(p, method="bonferroni")[1]))
    assert adjust_pvalues(p, "none") == p
    with_nan = adjust_pvalues([0.01, math.nan, 0.04], "holm")  # untestable comparisons do not count
    assert with_nan[0] == pytest.approx(0.02) and math.isnan(with_nan[1]) and with_nan[2] == pytest.approx(0.04)
    with pytest.raises(ValueError, match="correction"):
        adjust_pvalues(p, "fdr")


# --- growth slopes and the sublinearity test -----------------------------------------------
def test_growth_slopes_match_scipy_linregress_per_episode():
    rng = np.random.default_rng(2)
    t = np.arange(1, 201)
    curves = np.cumsum(rng.exponential(1.0, (5, 200)) * t ** rng.uniform(-0.7, 0.0, (5, 1)), axis=1)
    curves[0, :50] = 0.0  # no regret yet: those rounds are skipped
    fits = growth_slopes(curves, burn_in=0.1)
    for e in range(5):
        keep = (t > 20) & (curves[e] > 1e-9)
        reference = stats.linregress(np.log(t[keep]), np.log(curves[e][keep]))
        assert fits.beta[e] == pytest.approx(reference.slope, rel=1e-10)
        assert fits.intercept[e] == pytest.approx(reference.intercept, rel=1e-9, abs=1e-10)
        assert fits.n_points[e] == keep.sum()
    # flat input with episodes of different lengths gives the same fits
    lengths = [200, 150, 120, 200, 90]
    flat_R = np.concatenate([curves[e, :n] for e, n in enumerate(lengths)])
    flat_t = np.concatenate([t[:n] for n in lengths])
    flat_e = np.repeat(np.arange(5), lengths)
    flat = growth_slopes(flat_R, flat_t, flat_e)
    assert flat.beta[3] == pytest.approx(fits.beta[3])
    short = curves[2, :120]
    keep = (t[:120] > 12) & (short > 1e-9)
    assert flat.beta[2] == pytest.approx(stats.linregress(np.log(t[:120][keep]), np.log(short[keep])).slope)


def test_growth_slopes_exact_and_unfittable_curves():
    t = np.arange(1, 101, dtype=float)
    fits = growth_slopes(np.vstack([0.3 * t, np.zeros(100), np.full(100, 1e-17), 2 * t**0.5]))
    assert fits.beta[0] == pytest.approx(1.0, abs=1e-12) and fits.beta[3] == pytest.approx(0.5, abs=1e-12)
    assert np.isnan(fits.beta[1]) and np.isnan(fits.beta[2]) and list(fits.n_points[1:3]) == [0, 0]
    assert growth_slopes(np.vstack([0.3 * t]), burn_in=0.0).n_points[0] == 100
    with pytest.raises(ValueError, match="burn_in"):
        growth_slopes(np.vstack([t]), burn_in=1.0)
    with pytest.raises(ValueError, match="need `rounds` and `episode`"):
        growth_slopes(t)


def test_sublinearity_test_matches_statsmodels_one_sided_t_test_of_beta_1():
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(4), 5)
    betas = 0.9 + rng.normal(0, 0.05, 4)[groups] + rng.normal(0, 0.05, groups.size)
    result = sublinearity_test(betas, groups)
    reference = clustered_ols(betas, groups).t_test("const = 1")
    tvalue = float(np.squeeze(reference.tvalue))
    assert result.beta.estimate == pytest.approx(betas.mean())
    assert result.pvalue == pytest.approx(stats.t.cdf(tvalue, 3), rel=1e-9)
    assert result.pvalue == pytest.approx(float(reference.pvalue) / 2, rel=1e-8)  # tvalue < 0: half the two-sided
    assert result.sublinear is (result.pvalue < 0.05)


def test_exactly_linear_curves_are_never_sublinear_and_oracle_is_untestable():
    t = np.arange(1, 1001, dtype=float)
    gaps = np.array([0.1, 0.2, 0.3, 0.45, 0.05, 0.7])
    linear = sublinearity_test(growth_slopes(gaps[:, None] * t), list("aabbcc"))
    assert linear.beta.exact and linear.pvalue == 1.0 and linear.sublinear is False
    oracle = sublinearity_test(growth_slopes(np.zeros((6, 1000))), list("aabbcc"))
    assert oracle.sublinear is None and oracle.n_unfitted == 6 and oracle.verdict == "untestable"


def test_sublinearity_size_under_linear_regret_and_power_under_sqrt():
    """Uniform-like play: i.i.d. positive increments per round (exactly linear expected regret).

    The invalid old test (OLS on one curve) called ~40% of such curves sublinear; per-episode slopes
    averaged with task-clustered errors must stay at or below the level."""
    rng = np.random.default_rng(11)
    reps, tasks, rollouts, horizon = 300, 3, 4, 200
    groups = np.repeat(np.arange(tasks), rollouts)
    verdicts, powered = [], []
    for _ in range(reps):
        gap = rng.uniform(0.05, 0.5, tasks)[groups][:, None]  # each task its own mean gap
        increments = gap * rng.binomial(1, 0.8, (groups.size, horizon)) / 0.8
        verdicts.append(sublinearity_test(growth_slopes(np.cumsum(increments, axis=1)), groups).sublinear)
        sqrt_curves = np.cumsum(increments / np.sqrt(np.arange(1, horizon + 1)), axis=1)
        powered.append(sublinearity_test(growth_slopes(sqrt_curves), groups).sublinear)
    rate = np.mean(verdicts)
    assert rate <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / reps)  # within two binomial standard errors
    assert np.mean(powered) >= 0.95


def test_clustered_interval_covers_at_3_and_20_tasks_where_the_naive_one_does_not():
    """Task effect sd 2, episode noise sd 1, 5 episodes per task: the naive interval ignores the
    task effect and under-covers badly; the clustered one is exact here (normal task means)."""
    rng = np.random.default_rng(0)
    reps = 1500
    for tasks in (3, 20):
        groups = np.repeat(np.arange(tasks), 5)
        clustered = naive = 0
        for _ in range(reps):
            y = 10.0 + rng.normal(0, 2, tasks)[groups] + rng.normal(0, 1, groups.size)
            c, n = clustered_mean(y, groups), clustered_mean(y)
            clustered += c.ci_low <= 10.0 <= c.ci_high
            naive += n.ci_low <= 10.0 <= n.ci_high
        assert 0.93 <= clustered / reps <= 0.97, (tasks, clustered / reps)
        assert naive / reps < 0.85, (tasks, naive / reps)


# --- power planning -----------------------------------------------------------------------
@pytest.mark.parametrize("effect_size", [0.2, 0.5, 1.3])
def test_sample_size_matches_statsmodels(effect_size):
    one = TTestPower().solve_power(effect_size=effect_size, alpha=0.05, power=0.8, alternative="two-sided")
    assert sample_size(effect_size) == math.ceil(one)
    two = TTestIndPower().solve_power(effect_size=effect_size, alpha=0.05, power=0.8, ratio=1.0)
    # two samples of n: the noncentrality is d * sqrt(n / 2)
    assert sample_size(effect_size / math.sqrt(2), df_of=lambda n: 2 * n - 2) == math.ceil(two)
    assert t_test_power(effect_size, 30, 29) == pytest.approx(
        TTestPower().power(effect_size=effect_size, nobs=30, alpha=0.05), rel=1e-8)
    assert t_test_power(effect_size, 30, 29, alternative="greater") == pytest.approx(
        TTestPower().power(effect_size=effect_size, nobs=30, alpha=0.05, alternative="larger"), rel=1e-8)
    assert sample_size(0.0) is None and sample_size(math.inf) == 2


def test_variance_components_match_anova_and_statsmodels_mixedlm_on_balanced_data():
    rng = np.random.default_rng(8)
    groups = np.repeat(np.arange(8), 6)
    y = rng.normal(0, 1.5, 8)[groups] + rng.normal(0, 1.0, groups.size)
    comps = variance_components(y, groups)
    means = np.array([y[groups == g].mean() for g in range(8)])
    within = np.mean([np.var(y[groups == g], ddof=1) for g in range(8)])
    assert comps.within == pytest.approx(within)
    assert comps.between == pytest.approx(np.var(means, ddof=1) - within / 6)
    mixed = sm.MixedLM(y, np.ones(y.size), groups=groups).fit(reml=True)
    assert comps.between == pytest.approx(float(np.asarray(mixed.cov_re).ravel()[0]), rel=1e-4)
    assert comps.within == pytest.approx(mixed.scale, rel=1e-4)
    single = variance_components([1.0, 2.0, 4.0], ["a"] * 3)
    assert math.isnan(single.between) and single.within == pytest.approx(np.var([1, 2, 4], ddof=1))


def test_power_plan_paired_needs_far_fewer_episodes_and_matches_statsmodels():
    rng = np.random.default_rng(9)
    groups = np.repeat(np.arange(10), 8)
    world = rng.normal(0, 3, 10)[groups] + rng.gamma(2, 2, groups.size)
    a = 20 + world + 1.0 + rng.normal(0, 1, groups.size)
    b = 20 + world + rng.normal(0, 1, groups.size)
    plan = plan_power(a, b, groups, relative_effect=0.05)
    assert plan.rollouts == 8 and plan.effect == pytest.approx(0.05 * b.mean())
    d = variance_components(a - b, groups)
    es = plan.effect / math.sqrt(d.between + d.within / 8)
    assert plan.paired_tasks == math.ceil(TTestPower().solve_power(es, alpha=0.05, power=0.8))
    va, vb = variance_components(a, groups), variance_components(b, groups)
    es_unpaired = plan.effect / math.sqrt((va.between + va.within / 8 + vb.between + vb.within / 8) / 2)
    assert plan.unpaired_tasks == math.ceil(TTestIndPower().solve_power(es_unpaired, alpha=0.05, power=0.8))
    assert plan.paired_episodes == 8 * plan.paired_tasks
    assert plan.unpaired_episodes > 5 * plan.paired_episodes
    fixed = plan_power(a, b, groups, relative_effect=0.05, scope="tasks")
    assert fixed.paired_tasks == 10 and fixed.paired_episodes % 10 == 0
    assert fixed.unpaired_episodes > fixed.paired_episodes
    assert plan_power(a, a, groups, relative_effect=0.0).paired_tasks is None


def test_doctests():
    result = doctest.testmod(_stats)
    assert result.attempted >= 5 and result.failed == 0


def test_estimate_serialises_without_nan():
    data = clustered_mean([1.0], ["a"]).to_dict()
    assert data["ci_low"] is None and data["n_tasks"] == 1 and isinstance(Estimate(**{
        **{k: 0.0 for k in ("estimate", "std_error", "df", "ci_low", "ci_high")}, "level": 0.95, "n_tasks": 1,
        "n_episodes": 1, "method": "x"}).to_dict()["estimate"], float)
