"""harness.metrics on tiny hand-made runs whose statistics are computed by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from harness import metrics
from harness._store import DECISION_NAMES, EPISODE_NAMES, RunStore, load_run
from harness import DecisionRecord, EpisodeRecord
from harness.metrics import (
    GrowthFit,
    bandit_exploration,
    episode_regrets,
    fit_growth,
    leaderboard,
    mean_ci,
    regret_curves,
)

T975_2 = stats.t.ppf(0.975, 2)


# --- a tiny synthetic run ----------------------------------------------------------------
def commit(store, agent, scenario_id, rollout, actions=(), *, optimal=1, gap=0.5, family="bandit/bernoulli",
           n_actions=2, status="finished", statuses=None, tokens=(0, 0), cost=0.0, policies=None, regrets=None,
           reasoning=None):
    """Commit one episode; regret per round is `gap` whenever the action is not `optimal` (or `regrets`)."""
    task_id = f"{scenario_id}#0"
    optimal_seq = optimal if isinstance(optimal, (list, tuple)) else [optimal] * len(actions)
    rows, cumulative = [], 0.0
    for t, action in enumerate(actions):
        regret = regrets[t] if regrets is not None else (0.0 if action == optimal_seq[t] else gap)
        cumulative += regret
        row = dict.fromkeys(DECISION_NAMES)
        row.update(
            agent=agent, scenario_id=scenario_id, task_id=task_id, family=family, instance_seed=0, rollout=rollout,
            t=t, action=action, reward=1.0 - regret, regret=regret, cumulative_regret=cumulative,
            optimal_action=optimal_seq[t], reasoning=(reasoning or {}).get(t, ""), raw_output=str(action),
            parse_status=(statuses or {}).get(t, "ok"), prompt_tokens=0, completion_tokens=0, cost=0.0,
            latency_s=0.0, attempts=0,
        )
        if policies is not None:
            row.update(action=None, policy=json.dumps(policies[t]))
        rows.append(DecisionRecord(**row))
    episode = dict.fromkeys(EPISODE_NAMES)
    finished = status == "finished"
    episode.update(
        agent=agent, scenario_id=scenario_id, task_id=task_id, family=family, kind=family.split("/")[0],
        framing="buttons", instance_seed=0, rollout=rollout, env_seed=rollout, agent_seed=rollout, status=status,
        error=None if finished else "RuntimeError: boom", horizon=len(actions) if finished else None,
        n_actions=n_actions if finished else None, n_decisions=len(rows),
        final_regret=cumulative if finished else None, total_reward=0.0,
        n_invalid=sum(1 for r in rows if r.parse_status not in ("ok", "repaired")),
        prompt_tokens=tokens[0], completion_tokens=tokens[1], cost=cost, latency_s=0.0, attempts=0,
        scenario_summary="{}",
    )
    store.commit_episode(EpisodeRecord(**episode), rows if finished else [])


def make_run(directory):
    """Agents A and B on one 2-armed bandit (optimal arm 1, gap 0.5, horizon 4) plus one experts scenario.

    A: [0,1,1,1] -> 0.5, [0,0,1,1] -> 1.0, [1,1,1,1] -> 0.0
    B: [1,0,0,0] -> 1.5, [0,1,0,0] -> 1.5, [0,0,0,0] -> 2.0, plus one failed episode
    """
    with RunStore(directory) as store:
        store.write_plan({"name": "tiny", "seed": 0, "rollouts": 3, "agents": [], "scenarios": []})
        commit(store, "A", "bandit/s", 0, [0, 1, 1, 1], statuses={0: "fallback"}, tokens=(10, 1), cost=0.25)
        commit(store, "A", "bandit/s", 1, [0, 0, 1, 1], statuses={1: None}, tokens=(20, 2), cost=0.5)
        commit(store, "A", "bandit/s", 2, [1, 1, 1, 1], tokens=(30, 3), cost=0.125)
        commit(store, "B", "bandit/s", 0, [1, 0, 0, 0], statuses={2: "repaired"})
        commit(store, "B", "bandit/s", 1, [0, 1, 0, 0])
        commit(store, "B", "bandit/s", 2, [0, 0, 0, 0])
        commit(store, "B", "bandit/s", 3, status="failed", tokens=(7, 0), cost=0.01)
        commit(store, "C", "experts/x", 0, [None] * 3, family="experts/full-info", regrets=[0.25, 0.25, -0.5],
               policies=[[0.5, 0.5]] * 3)
    return load_run(directory)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run") / "tiny")


@pytest.fixture(scope="module")
def board(run):
    return leaderboard(*run)


def row_of(board, agent, scenario="bandit/s"):
    return board.filter((pl.col("agent") == agent) & (pl.col("scenario_id") == scenario)).row(0, named=True)


# --- mean_ci -----------------------------------------------------------------------------
def test_mean_ci_matches_student_t():
    values = [1.0, 2.0, 4.0]
    mean, low, high = mean_ci(values)
    sd = np.std(values, ddof=1)
    half = T975_2 * sd / math.sqrt(3)
    assert mean == pytest.approx(7 / 3)
    assert (low, high) == pytest.approx((7 / 3 - half, 7 / 3 + half))
    m90, l90, h90 = mean_ci(np.array(values), level=0.9)
    assert h90 - l90 < high - low
    assert mean_ci(pl.Series([2.0, 2.0, 2.0])) == (2.0, 2.0, 2.0)


def test_mean_ci_degenerate():
    mean, low, high = mean_ci([3.0])
    assert mean == 3.0 and math.isnan(low) and math.isnan(high)
    assert all(math.isnan(x) for x in mean_ci([]))
    assert mean_ci([1.0, float("nan"), 3.0])[0] == 2.0
    with pytest.raises(ValueError, match="level"):
        mean_ci([1.0, 2.0], level=1.5)


# --- fit_growth --------------------------------------------------------------------------
def test_fit_growth_sqrt_is_sublinear():
    t = np.arange(1, 201)
    fit = fit_growth(t, 3 * t**0.5)
    assert isinstance(fit, GrowthFit)
    assert fit.beta == pytest.approx(0.5, abs=1e-9)
    assert fit.intercept == pytest.approx(math.log(3), abs=1e-9)
    assert fit.n_points == 200
    assert not hasattr(fit, "pvalue_sublinear")  # one curve's points are not independent: no p-value


def test_fit_growth_linear_and_superlinear():
    t = np.arange(1, 201)
    assert fit_growth(t, 0.2 * t).beta == pytest.approx(1.0, abs=1e-9)
    assert fit_growth(t, t**1.5).beta == pytest.approx(1.5, abs=1e-9)


def test_fit_growth_with_noise_matches_ols():
    rng = np.random.default_rng(1)
    t = np.arange(1, 301)
    R = 2 * t**0.6 * np.exp(rng.normal(0, 0.05, t.size))
    fit = fit_growth(t, R)
    reference = stats.linregress(np.log(t), np.log(R))
    assert fit.beta == pytest.approx(reference.slope, rel=1e-9)
    assert fit.intercept == pytest.approx(reference.intercept, rel=1e-9)


def test_fit_growth_skips_nonpositive_and_burn_in():
    t = np.arange(1, 101)
    R = np.where(t % 2 == 0, 0.0, t**0.5)  # zeros (and negatives) are not fitted
    R[2] = -1.0
    fit = fit_growth(t, R)
    assert fit.n_points == 49 and fit.beta == pytest.approx(0.5)
    assert fit_growth(t, t**0.5, burn_in=0.1).n_points == 90  # rounds 11..100
    assert fit_growth(t, np.full(100, 1e-17)).n_points == 0  # float noise around zero is not regret


def test_fit_growth_too_few_points_gives_nan():
    fit = fit_growth([1, 2, 3], [0.0, 1.0, 2.0])
    assert math.isnan(fit.beta) and fit.n_points == 2
    assert math.isnan(fit_growth([], []).beta)
    with pytest.raises(ValueError, match="length"):
        fit_growth([1, 2, 3], [1.0, 2.0])


# --- regret curves -----------------------------------------------------------------------
def test_regret_curves_mean_and_band(run):
    decisions, _ = run
    curves = regret_curves(decisions)
    assert curves.columns == ["agent", "scenario_id", "t", "mean", "low", "high", "n", "tasks"]
    a = curves.filter(pl.col("agent") == "A").sort("t")
    # cumulative regrets of A: [.5 .5 .5 .5], [.5 1 1 1], [0 0 0 0]
    assert a["mean"].to_list() == pytest.approx([1 / 3, 0.5, 0.5, 0.5])
    assert a["n"].to_list() == [3, 3, 3, 3]
    half = T975_2 * 0.5 / math.sqrt(3)  # t = 1: values .5, 1, 0 (sd .5); one task: the episodes' t-interval
    assert a.row(1, named=True)["low"] == pytest.approx(0.5 - half)
    assert a.row(1, named=True)["high"] == pytest.approx(0.5 + half)
    c = curves.filter(pl.col("agent") == "C")  # one episode: no band
    assert c["low"].null_count() == 3 and c["mean"].to_list() == pytest.approx([0.25, 0.5, 0.0])


# --- bandit exploration ------------------------------------------------------------------
def test_bandit_exploration_hand_computed(run):
    decisions, episodes = run
    frame = bandit_exploration(decisions, episodes)
    assert frame.columns == ["agent", "scenario_id", "suff_fail_freq", "min_frac"]
    assert frame["scenario_id"].to_list() == ["bandit/s", "bandit/s"]  # experts are not bandits
    a, b = frame.row(0, named=True), frame.row(1, named=True)
    # A plays arm 1 in the second half of every episode; min fractions .25*2, .5*2, 0
    assert a["suff_fail_freq"] == 0.0 and a["min_frac"] == pytest.approx(0.5)
    # B: [1,0,0,0] and [0,0,0,0] never play arm 1 at t >= 2, [0,1,0,0] neither (t=1 is in the first half)
    assert b["suff_fail_freq"] == 1.0 and b["min_frac"] == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    # without the episodes table T and K are inferred, which agrees here
    assert bandit_exploration(decisions).equals(frame)


def test_bandit_exploration_nonstationary_uses_per_row_optimum():
    rows = []
    for rollout, actions in enumerate(([0, 0, 0, 1], [1, 1, 0, 0], [0, 1, 2, 1])):
        for t, action in enumerate(actions):
            rows.append({"agent": "x", "scenario_id": "ns", "task_id": "ns#0", "family": "bandit/nonstationary",
                         "rollout": rollout, "t": t, "action": action, "optimal_action": [0, 0, 1, 1][t]})
    decisions = pl.DataFrame(rows)
    episodes = pl.DataFrame({"agent": "x", "scenario_id": "ns", "task_id": "ns#0", "family": "bandit/nonstationary",
                             "rollout": [0, 1, 2], "status": "finished", "horizon": 4, "n_actions": 3})
    frame = bandit_exploration(decisions, episodes).row(0, named=True)
    # episode 1 never plays the round's best arm (1) in rounds 2-3
    assert frame["suff_fail_freq"] == pytest.approx(1 / 3)
    # K = 3: episodes 0 and 1 never touch arm 2 (0); episode 2 pulls 1,2,1 times -> 3 * 1/4
    assert frame["min_frac"] == pytest.approx(0.75 / 3)


# --- leaderboard -------------------------------------------------------------------------
def test_leaderboard_columns_and_order(board):
    assert tuple(board.columns) == metrics.LEADERBOARD_COLUMNS
    assert board.select("agent", "scenario_id").rows() == [("A", "bandit/s"), ("B", "bandit/s"), ("C", "experts/x")]


def test_leaderboard_regret_statistics(board):
    a = row_of(board, "A")
    half = T975_2 * 0.5 / math.sqrt(3)  # final regrets .5, 1, 0: mean .5, sd .5
    assert (a["episodes"], a["failed"], a["family"]) == (3, 0, "bandit/bernoulli")
    assert a["mean_regret"] == 0.5
    assert a["ci_low"] == round(0.5 - half, 6) and a["ci_high"] == round(0.5 + half, 6)
    assert a["std_regret"] == 0.5 and a["median_regret"] == 0.5
    assert a["p90_regret"] == pytest.approx(0.9)  # linear interpolation, as numpy.percentile
    assert a["suff_fail_freq"] == 0.0 and a["min_frac"] == 0.5


def test_leaderboard_failed_episodes_counted_not_averaged(board):
    b = row_of(board, "B")
    values = [1.5, 1.5, 2.0]
    mean, low, high = mean_ci(values)
    assert (b["episodes"], b["failed"]) == (3, 1)
    assert b["mean_regret"] == round(mean, 6)
    assert (b["ci_low"], b["ci_high"]) == (round(low, 6), round(high, 6))
    assert b["median_regret"] == 1.5 and b["p90_regret"] == pytest.approx(np.percentile(values, 90))
    assert b["prompt_tokens"] == 7 and b["cost"] == 0.01  # the failed attempt's spend still counts


def test_leaderboard_invalid_rate_tokens_cost(board):
    a, b = row_of(board, "A"), row_of(board, "B")
    assert a["invalid_rate"] == round(2 / 12, 6)  # "fallback" and a missing status; 12 decisions
    assert b["invalid_rate"] == 0.0  # "repaired" is valid
    assert (a["prompt_tokens"], a["completion_tokens"], a["cost"]) == (60, 6, 0.875)


def test_leaderboard_growth_is_the_mean_per_episode_slope(run, board):
    decisions, _ = run
    slopes = []
    for rollout in range(3):
        curve = decisions.filter((pl.col("agent") == "B") & (pl.col("rollout") == rollout)).sort("t").collect()
        slopes.append(fit_growth(curve["t"] + 1, curve["cumulative_regret"], burn_in=metrics.BURN_IN).beta)
    b = row_of(board, "B")
    assert b["beta"] == round(float(np.mean(slopes)), 6)
    # one task: the interval and the one-sided test of beta >= 1 are the episodes' t-test
    test = stats.ttest_1samp(slopes, 1.0, alternative="less")
    assert b["beta_pvalue"] == round(test.pvalue, 6) and b["sublinear"] is bool(test.pvalue < 0.05)
    low, high = stats.t.interval(0.95, 2, loc=np.mean(slopes), scale=stats.sem(slopes))
    assert (b["beta_ci_low"], b["beta_ci_high"]) == (round(low, 6), round(high, 6))
    a = row_of(board, "A")  # A's third episode has no regret: it is left out of the slope
    assert a["beta"] is not None and (a["tasks"], a["ci_method"]) == (1, "single task")


def test_leaderboard_non_bandit_and_single_episode(board):
    c = row_of(board, "C", "experts/x")
    assert c["episodes"] == 1 and c["mean_regret"] == 0.0
    assert c["ci_low"] is None and c["std_regret"] is None  # one episode: no spread
    assert c["suff_fail_freq"] is None and c["min_frac"] is None
    assert c["beta"] is None  # only 2 positive points (0.25, 0.5)
    assert c["invalid_rate"] == 0.0


def test_leaderboard_is_deterministic_and_rounded(run, board):
    again = leaderboard(*run)
    assert again.equals(board)
    for name, dtype in board.schema.items():
        if dtype.is_float():
            values = board[name].drop_nulls().to_list()
            assert all(v == round(v, 6) for v in values), name
            assert not any(math.copysign(1, v) < 0 and v == 0 for v in values), name


def test_leaderboard_accepts_dataframes_and_all_failed(run):
    decisions, episodes = run
    eager = leaderboard(decisions.collect(), episodes.collect())
    assert eager.height == 3
    only_failed = episodes.filter(pl.col("status") == "failed")
    frame = leaderboard(decisions.filter(pl.lit(False)), only_failed)
    row = frame.row(0, named=True)
    assert (row["agent"], row["episodes"], row["failed"], row["mean_regret"]) == ("B", 0, 1, None)


def test_episode_regrets_finished_only(run):
    _, episodes = run
    frame = episode_regrets(episodes)
    assert frame.columns == ["agent", "scenario_id", "task_id", "rollout", "final_regret"]
    assert frame.filter(pl.col("agent") == "B")["final_regret"].to_list() == [1.5, 1.5, 2.0]
    assert frame.height == 7


def test_leaderboard_scales_to_a_million_rows():
    n_episodes, horizon = 500, 2000  # 1e6 decisions
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 4, n_episodes * horizon)
    regret = np.where(actions == 0, 0.0, 0.1)
    decisions = pl.DataFrame({
        "agent": "a", "scenario_id": "bandit/big", "task_id": "bandit/big#0", "family": "bandit/bernoulli",
        "rollout": np.repeat(np.arange(n_episodes), horizon), "t": np.tile(np.arange(horizon), n_episodes),
        "action": actions, "optimal_action": 0, "regret": regret, "parse_status": "ok",
    }).with_columns(cumulative_regret=pl.col("regret").cum_sum().over("rollout"))
    episodes = decisions.group_by("agent", "scenario_id", "task_id", "family", "rollout").agg(
        final_regret=pl.col("regret").sum()).with_columns(
        status=pl.lit("finished"), horizon=horizon, n_actions=4, prompt_tokens=0, completion_tokens=0, cost=0.0)
    # Correctness at a million rows only; speed and memory are measured in benchmarks/bench_scale_memory.py.
    row = leaderboard(decisions.lazy(), episodes.lazy()).row(0, named=True)
    assert row["episodes"] == n_episodes and row["beta"] == pytest.approx(1.0, abs=0.01)
    assert row["min_frac"] == pytest.approx(1.0, abs=0.1) and row["suff_fail_freq"] == 0.0


def test_docstring_examples():
    import doctest

    result = doctest.testmod(metrics, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 5 and result.failed == 0


@pytest.mark.slow
def test_sublinear_verdict_on_real_runs_linear_agents_rarely_ucb1_usually(tmp_path):
    """A small version of benchmarks/stats_calibration.py through the leaderboard itself: 30 runs
    (3 tasks x 2 rollouts each) of uniform play on a Bernoulli bandit, whose regret is exactly
    linear, and 8 runs of UCB1 at T = 1000. The replaced curve-regression test called ~40% of
    such uniform runs sublinear."""
    from harness import parse_suite, run_plan

    def verdicts(agent, horizon, runs):
        plan = parse_suite({"seed": 1, "rollouts": 2, "agents": [agent], "scenarios": [
            {"id": f"r{k:02d}", "family": "bandit/bernoulli", "params": {"n_arms": 5, "horizon": horizon},
             "instances": 3} for k in range(runs)]})
        run_plan(plan, tmp_path / agent)
        return leaderboard(*load_run(tmp_path / agent))["sublinear"].to_list()

    uniform = verdicts("uniform", 200, 30)
    assert sum(v is True for v in uniform) <= 4  # binomial(30, 0.05) exceeds 4 with probability < 2%
    ucb1 = verdicts("ucb1", 1000, 8)
    assert sum(v is True for v in ucb1) >= 7
