"""`regret compare`: paired rows against statsmodels' cluster-robust OLS on the differences, Holm,
tied-for-best, win rates by hand, across-run matching and warnings, the written files and the CLI."""

import json

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from statsmodels.stats.multitest import multipletests

from harness import load_run, parse_suite, run_plan
from harness._compare import compare_episodes, compare_runs
from harness.cli import main

SCENARIOS = [{"id": "bandit/k5", "family": "bandit/bernoulli", "params": {"n_arms": 5, "horizon": 60}, "instances": 4},
             {"id": "bandit/gauss", "family": "bandit/gaussian", "params": {"n_arms": 5, "horizon": 60},
              "instances": 3}]
AGENTS = ["ucb1", "uniform", {"agent": "epsilon-greedy", "epsilon": 0.1, "label": "eps"}]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    run_plan(parse_suite({"seed": 0, "rollouts": 4, "agents": AGENTS, "scenarios": SCENARIOS}), root / "one")
    other = [{"agent": "epsilon-greedy", "epsilon": 0.3, "label": "eps"}, "ucb1"]
    run_plan(parse_suite({"seed": 0, "rollouts": 4, "agents": other, "scenarios": SCENARIOS}), root / "two")
    run_plan(parse_suite({"seed": 5, "rollouts": 4, "agents": ["ucb1"], "scenarios": SCENARIOS}), root / "reseeded")
    return root


def test_paired_rows_match_statsmodels_and_holm(runs):
    comparison = compare_runs([runs / "one"])
    episodes = load_run(runs / "one")[1].collect()
    for row in comparison.rows:
        keys = ["task_id", "rollout", "env_seed"]
        part = episodes.filter(pl.col("scenario_id") == row.scenario_id)
        a = part.filter(pl.col("agent") == row.agent).select(*keys, "final_regret")
        b = part.filter(pl.col("agent") == row.versus).select(*keys, "final_regret")
        joined = a.join(b, on=keys, suffix="_b").sort(keys)
        d = (joined["final_regret"] - joined["final_regret_b"]).to_numpy()
        groups = joined["task_id"].to_numpy()
        codes = np.unique(groups, return_inverse=True)[1]
        reference = sm.OLS(d, np.ones(d.size)).fit(cov_type="cluster", cov_kwds={"groups": codes}, use_t=True)
        assert row.design == "paired" and row.pairs == joined.height == {"bandit/k5": 16, "bandit/gauss": 12}[row.scenario_id]
        assert row.estimate.estimate == pytest.approx(d.mean())
        assert row.estimate.ci_low == pytest.approx(reference.conf_int()[0][0], rel=1e-9)
        assert row.pvalue == pytest.approx(reference.pvalues[0], rel=1e-8)
    raw = [r.pvalue for r in comparison.rows]
    assert [r.pvalue_holm for r in comparison.rows] == pytest.approx(list(multipletests(raw, method="holm")[1]))
    assert len(comparison.rows) == 2 * 3  # every pair in each scenario


def test_tied_for_best_and_win_rates(runs):
    comparison = compare_runs([runs / "one"])
    episodes = load_run(runs / "one")[1].collect()
    for scenario in comparison.scenarios:
        means = {a: e.estimate for a, e in scenario.means.items()}
        assert scenario.best == min(means, key=means.get) and scenario.tied_for_best[0] == scenario.best
        part = episodes.filter(pl.col("scenario_id") == scenario.scenario_id)
        a = part.filter(pl.col("agent") == "ucb1").sort("task_id", "rollout")["final_regret"].to_numpy()
        b = part.filter(pl.col("agent") == "uniform").sort("task_id", "rollout")["final_regret"].to_numpy()
        assert scenario.win_rate["ucb1"]["uniform"] == pytest.approx(((a < b).sum() + 0.5 * (a == b).sum()) / a.size)
        assert scenario.win_rate["ucb1"]["uniform"] + scenario.win_rate["uniform"]["ucb1"] == pytest.approx(1.0)
    # uniform loses almost every episode, but with 3 instances (df 2) of very different difficulty the
    # instances scope cannot exclude it; conditional on these tasks it is clearly worse
    fixed = compare_runs([runs / "one"], scope="tasks")
    gauss = next(s for s in fixed.scenarios if s.scenario_id == "bandit/gauss")
    assert "uniform" not in gauss.tied_for_best and gauss.win_rate["ucb1"]["uniform"] > 0.9


def test_reference_filters_and_bad_names(runs):
    comparison = compare_runs([runs / "one"], reference="uniform", agents=["ucb1", "uniform"])
    assert {(r.agent, r.versus) for r in comparison.rows} == {("ucb1", "uniform")}
    with pytest.raises(ValueError, match="unknown agent"):
        compare_runs([runs / "one"], agents=["nobody"])
    with pytest.raises(ValueError, match="unknown reference"):
        compare_runs([runs / "one"], reference="nobody")


def test_across_runs_pairs_by_episode_and_warns_on_settings_and_plans(runs):
    same_plan = compare_runs([runs / "one", runs / "two"], reference="one:ucb1")
    designs = {(r.scenario_id, r.agent): r.design for r in same_plan.rows}
    assert set(designs.values()) == {"paired"}  # same suite and seed: every episode pairs
    ucb = next(r for r in same_plan.rows if r.agent == "two:ucb1")
    assert ucb.estimate.exact and ucb.pvalue == 1.0  # a deterministic agent on the same worlds: identical regrets
    assert any("'eps' has different settings" in w for w in same_plan.warnings)
    assert not any("different plans" in w for w in same_plan.warnings)
    reseeded = compare_runs([runs / "one", runs / "reseeded"], reference="one:ucb1")
    assert any("different plans" in w for w in reseeded.warnings)
    assert {r.design for r in reseeded.rows if r.agent == "reseeded:ucb1"} == {"unpaired"}


def test_files_and_cli(runs, tmp_path, capsys):
    assert main(["compare", str(runs / "one"), "--out", str(tmp_path / "out"), "--power", "0.2",
                 "--reference", "ucb1"]) == 0
    out = capsys.readouterr().out
    assert "tied for best" in out and "p (holm)" in out and "paired episodes" in out
    data = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert data["format"] == "regret-compare" and len(data["rows"]) == 4  # 2 agents vs the reference x 2
    assert pl.read_parquet(tmp_path / "out" / "comparison.parquet").height == 4
    assert pl.read_csv(tmp_path / "out" / "comparison.csv")["pvalue_holm"].is_not_null().all()
    assert (tmp_path / "out" / "comparison_forest.png").read_bytes().startswith(b"\x89PNG")
    assert "Win rate" in (tmp_path / "out" / "comparison.md").read_text()
    assert main(["compare", str(tmp_path / "nowhere")]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    assert main(["compare", str(runs / "one"), "--power", "0.2"]) == 2
    assert main(["compare", str(runs / "one"), "--agent", "nobody", "--out", str(tmp_path / "o2")]) == 2


def test_two_copies_of_one_agent_rarely_differ():
    """A small version of benchmarks/stats_calibration.py's false-positive measurement: episodes of
    two copies of one agent (only agent seeds differ) simulated as task effect + noise, 300 runs."""
    rng = np.random.default_rng(0)
    rejections = 0
    for rep in range(300):
        tasks = np.repeat(np.arange(5), 4)
        world = rng.normal(10, 3, 5)[tasks] + rng.normal(0, 1, tasks.size)
        frame = pl.DataFrame({
            "agent": ["a"] * 20 + ["b"] * 20, "scenario_id": "s", "task_id": np.tile(tasks, 2).astype(str),
            "rollout": np.tile(np.arange(20), 2), "env_seed": np.tile(np.arange(20), 2), "status": "finished",
            "final_regret": np.concatenate([world + rng.normal(0, 1, 20), world + rng.normal(0, 1, 20)]),
        })
        rejections += compare_episodes(frame).rows[0].pvalue < 0.05
    assert rejections / 300 <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 300)
