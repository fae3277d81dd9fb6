"""`regret check`: the statistics (against scipy and by hand), verdicts, writers, CLI, and the
gate's behaviour on real runs: a worse agent fails, the same agent re-run passes, and the
false-alarm rate over many re-runs stays near alpha."""

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import polars as pl
import pytest
from scipy import stats

from harness import load_run, parse_suite, run_plan
from harness.check import (
    Baseline,
    BaselineError,
    CheckSettings,
    Sample,
    adjust_pvalues,
    check_run,
    compare,
    compare_samples,
    paired_test,
    parse_fail_above,
    welch_test,
    write_baseline,
)
from harness.cli import main

BERNOULLI = {"id": "bandit/bernoulli-k5", "family": "bandit/bernoulli",
             "params": {"n_arms": 5, "horizon": 50, "gap": 0.2}, "seeds": [11, 12]}
GAUSSIAN = {"id": "bandit/gaussian-k5", "family": "bandit/gaussian",
            "params": {"n_arms": 5, "horizon": 50}, "seeds": [21, 22]}


def suite(agents, seed=0, rollouts=10, scenarios=(BERNOULLI,)):
    return parse_suite({"seed": seed, "rollouts": rollouts, "agents": agents, "scenarios": list(scenarios)})


def eps(value, label="candidate"):
    return {"agent": "epsilon-greedy", "epsilon": value, "label": label}


def sample(regrets, agent="a", scenario="s", tasks=None, rollouts=None, seeds=None, **usage):
    n = len(regrets)
    return Sample(agent, scenario, tuple(tasks or ["s#0"] * n), tuple(rollouts or range(n)),
                  tuple(seeds or range(100, 100 + n)), tuple(map(float, regrets)), **usage)


def baseline_of(*samples):
    return Baseline({s.key: s for s in samples})


def candidate(frame, label):
    """The episodes of agent `label`, renamed to "candidate" (so copies compare with each other)."""
    return Baseline.from_episodes(frame.filter(pl.col("agent") == label).with_columns(agent=pl.lit("candidate")))


# --- the statistics -----------------------------------------------------------------------
def t_sf_by_integration(t, df):
    """P(T_df >= t) by Simpson integration of the Student-t density (no scipy)."""
    const = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    density = lambda x: const * (1 + x * x / df) ** (-(df + 1) / 2)  # noqa: E731
    # P(T >= t) = 1/2 - integral_0^t density
    steps = 20000
    h = t / steps
    total = density(0) + density(t) + sum((4 if k % 2 else 2) * density(k * h) for k in range(1, steps))
    return 0.5 - total * h / 3


def test_welch_pvalue_by_hand_and_scipy():
    now, base = [3.0, 4.0, 5.0, 8.0], [1.0, 2.0, 3.0]
    # by hand: means 5 and 2; variances 14/3 and 1; v = s^2/n
    v1, v2 = (14 / 3) / 4, 1 / 3
    t = 3 / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / 3 + v2**2 / 2)
    result = welch_test(now, base)
    assert result.test == "welch" and result.diff == pytest.approx(3.0)
    assert result.statistic == pytest.approx(t, rel=1e-12)
    assert result.df == pytest.approx(df, rel=1e-12)
    assert result.pvalue == pytest.approx(t_sf_by_integration(t, df), abs=1e-8)
    expected = stats.ttest_ind(now, base, equal_var=False, alternative="greater")
    assert result.pvalue == pytest.approx(expected.pvalue, rel=1e-10)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_welch_and_paired_match_scipy_on_random_data(seed):
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 3.0, size=25)
    now = base + rng.normal(0.5, 2.0, size=25)
    other = rng.gamma(2.0, 3.5, size=18)
    welch = welch_test(other, base)
    assert welch.pvalue == pytest.approx(stats.ttest_ind(other, base, equal_var=False, alternative="greater").pvalue,
                                         rel=1e-9)
    paired = paired_test(now, base)
    expected = stats.ttest_rel(now, base, alternative="greater")
    assert paired.pvalue == pytest.approx(expected.pvalue, rel=1e-9)
    assert paired.df == len(now) - 1
    # by hand for the paired test
    d = now - base
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    assert paired.statistic == pytest.approx(t, rel=1e-10)
    assert paired.pvalue == pytest.approx(t_sf_by_integration(t, len(d) - 1), abs=1e-7)


def test_paired_is_chosen_for_the_same_episodes_and_is_more_powerful():
    rng = np.random.default_rng(1)
    world = rng.gamma(2.0, 5.0, size=30)  # per-episode difficulty shared by both runs (common random numbers)
    base = sample(world + rng.normal(0, 0.5, 30))
    now = sample(world + 1.0 + rng.normal(0, 0.5, 30))
    paired = compare_samples(now, base)
    assert paired.test == "paired" and paired.pvalue < 1e-6
    welch = compare_samples(now, base, "welch")
    assert welch.pvalue > 0.2  # the world's noise swamps the shift when episodes are not paired


def test_stratified_reduces_to_welch_with_one_task_and_matches_hand_formula_with_two():
    now = sample([5, 6, 9, 4], seeds=[1, 2, 3, 4])
    base = sample([3, 4, 2, 6, 5], seeds=[5, 6, 7, 8, 9])
    result = compare_samples(now, base)
    assert result.test == "stratified"
    assert result.pvalue == pytest.approx(welch_test(now.regret, base.regret).pvalue, rel=1e-12)

    tasks_now, tasks_base = ["A", "A", "A", "B", "B", "B"], ["A", "A", "A", "B", "B", "B"]
    a_now, b_now, a_base, b_base = [10, 12, 14], [1, 2, 4], [9, 10, 11], [1, 1, 2]
    now = sample(a_now + b_now, tasks=tasks_now, seeds=range(6))
    base = sample(a_base + b_base, tasks=tasks_base, seeds=range(10, 16))
    result = compare_samples(now, base)
    assert result.test == "stratified"
    w = 0.5
    diff = w * (12 - 10) + w * (7 / 3 - 4 / 3)
    comps = [w * w * np.var(x, ddof=1) / 3 for x in (a_now, a_base, b_now, b_base)]
    var = sum(comps)
    df = var**2 / sum(c * c / 2 for c in comps)
    assert result.diff == pytest.approx(diff)
    assert result.df == pytest.approx(df)
    assert result.pvalue == pytest.approx(stats.t.sf(diff / math.sqrt(var), df))


def test_task_means_when_tasks_differ():
    now = sample([5, 6, 7, 8], tasks=["x", "x", "y", "y"])
    base = sample([1, 2, 3, 4], tasks=["p", "p", "q", "q"], seeds=range(200, 204))
    result = compare_samples(now, base)
    assert result.test == "task-means"
    assert result.pvalue == pytest.approx(
        stats.ttest_ind([5.5, 7.5], [1.5, 3.5], equal_var=False, alternative="greater").pvalue)
    one_task = sample([1, 2], tasks=["z", "z"], seeds=[300, 301])
    with pytest.raises(ValueError, match="tasks differ"):
        compare_samples(one_task, base)


def test_exact_cases_identical_and_constant_shift():
    base = sample([3, 1, 4, 1, 5])
    assert compare_samples(base, base).pvalue == 1.0
    shifted = sample([4, 2, 5, 2, 6])
    result = compare_samples(shifted, base)
    assert result.test == "paired" and result.pvalue == 0.0 and result.statistic == math.inf
    assert compare_samples(sample([2, 0, 3, 0, 4]), base).pvalue == 1.0


def test_holm_and_bonferroni_by_hand():
    p = [0.01, 0.04, 0.03, 0.20]
    # Holm: sorted 0.01*4=0.04, 0.03*3=0.09, 0.04*2=0.08 -> max so far 0.09, 0.20*1 -> 0.20
    assert adjust_pvalues(p, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.20])
    assert adjust_pvalues(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.80])
    assert adjust_pvalues(p, "none") == p


# --- verdicts -----------------------------------------------------------------------------
def test_verdicts_worse_min_effect_ceiling_invalid_cost_new_missing():
    rng = np.random.default_rng(0)
    world = rng.normal(10, 3, 20)
    base = baseline_of(
        sample(world, agent="a", scenario="s1"),
        sample(world, agent="a", scenario="s2"),
        sample(world, agent="a", scenario="gone"),
    )
    current = baseline_of(
        sample(world + 3 + rng.normal(0, 0.1, 20), agent="a", scenario="s1"),  # significantly, clearly worse
        sample(world + 0.5 + rng.normal(0, 0.1, 20), agent="a", scenario="s2"),  # significant but < 10%
        sample(world, agent="a", scenario="fresh", invalid_rate=0.3, cost=2.0),
    )
    report = compare(current, base)
    verdicts = {c.scenario_id: c.verdict for c in report.checks}
    assert verdicts == {"s1": "fail: worse", "s2": "pass", "fresh": "new", "gone": "fail: missing"}
    assert not report and len(report.failures) == 2
    assert report["a", "s2"].test.pvalue < 1e-6  # significant, yet below the minimum effect
    strict = compare(current, base, CheckSettings(min_effect=0.0, fail_above={"s*": 12.0, "fresh": 100.0},
                                                  max_invalid_rate=0.1, max_cost=1.0))
    verdicts = {c.scenario_id: c.verdict for c in strict.checks}
    assert verdicts["s1"] == "fail: worse, ceiling"
    assert verdicts["s2"] == "fail: worse"
    assert verdicts["fresh"] == "fail: invalid rate, cost"
    assert "above the ceiling 12" in strict["a", "s1"].message


def test_fail_above_parsing_and_ceiling_lookup():
    ceilings = parse_fail_above(["bandit/*=20", "bandit/bernoulli-k5=5", "30"])
    settings = CheckSettings(fail_above=ceilings)
    assert settings.ceiling_for("bandit/bernoulli-k5") == 5
    assert settings.ceiling_for("bandit/gaussian-k5") == 20
    assert settings.ceiling_for("experts/gaussian") == 30
    with pytest.raises(ValueError, match="--fail-above 'x=y'"):
        parse_fail_above(["x=y"])


def test_invalid_rate_and_cost_come_from_the_episodes_table():
    frame = pl.DataFrame({
        "agent": ["m"] * 3, "scenario_id": ["s"] * 3, "task_id": ["s#1"] * 3, "rollout": [0, 1, 2],
        "env_seed": [7, 8, 9], "status": ["finished", "finished", "failed"], "final_regret": [1.0, 3.0, None],
        "n_invalid": [2, 0, 0], "n_decisions": [10, 10, 0], "cost": [0.25, 0.25, 0.0],
    })
    (only,) = Baseline.from_episodes(frame).samples.values()
    assert only.n == 2 and only.mean == 2.0 and only.failed == 1
    assert only.invalid_rate == pytest.approx(0.1) and only.cost == pytest.approx(0.5)


# --- baseline file ------------------------------------------------------------------------
def test_baseline_round_trip_and_malformed_files(tmp_path):
    base = baseline_of(sample([1, 2, 3]), sample([4, 5], scenario="t")).with_settings(CheckSettings(alpha=0.01))
    path = base.save(tmp_path / "b.json")
    loaded = Baseline.load(path)
    assert loaded.samples == base.samples and loaded.settings.alpha == 0.01
    data = json.loads(path.read_text())
    assert data["checks"][0]["mean"] == 2.0 and data["checks"][0]["n"] == 3
    for text, message in [
        ("{", "not valid JSON"),
        ('{"checks": []}', "not a regret baseline"),
        ('{"format": "regret-baseline", "version": 9, "checks": []}', "unsupported baseline version 9"),
        ('{"format": "regret-baseline", "version": 1, "checks": [{"agent": "a"}]}', r"checks\[0\] is malformed"),
        ('{"format": "regret-baseline", "version": 1, "settings": {"alpha": 3}, "checks": []}', "alpha must be"),
    ]:
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(BaselineError, match=message):
            Baseline.load(tmp_path / "bad.json")
    with pytest.raises(BaselineError, match="cannot read baseline"):
        Baseline.load(tmp_path / "missing.json")


# --- real runs ----------------------------------------------------------------------------
COPIES = 60


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """One run at seed 0 holding the same agent under COPIES+1 labels (only its own seeds differ:
    every copy meets the same worlds) plus deliberately worse agents."""
    agents = [eps(0.1, f"same{k}") for k in range(COPIES + 1)]
    agents += [eps(0.5, "eps0.5"), {"agent": "uniform", "label": "uniform"}, {"agent": "ucb1", "label": "ucb1"}]
    directory = tmp_path_factory.mktemp("copies") / "run"
    run_plan(suite(agents, rollouts=10), directory)
    return load_run(directory)[1].collect()


def test_a_worse_agent_fails_and_the_same_agent_passes(copies):
    base = candidate(copies, "same0")
    for worse in ("eps0.5", "uniform"):
        report = compare(candidate(copies, worse), base)
        assert not report, report
        assert report.checks[0].verdict == "fail: worse" and report.checks[0].test.test == "paired"
    assert compare(candidate(copies, "same0"), base)  # the very same episodes
    assert compare(candidate(copies, "ucb1"), candidate(copies, "uniform"))  # better is never a failure


def test_false_alarm_rate_over_reruns_with_fresh_agent_randomness(copies):
    base = candidate(copies, "same0")
    reports = [compare(candidate(copies, f"same{k}"), base) for k in range(1, COPIES + 1)]
    assert {r.checks[0].test.test for r in reports} == {"paired"}
    rate = sum(not r.passed for r in reports) / len(reports)
    # against one fixed baseline the rate depends on that baseline's own luck; over independent
    # baselines (copies 2k vs 2k+1) it measures the test's size
    independent = [compare(candidate(copies, f"same{2 * k + 1}"), candidate(copies, f"same{2 * k}"))
                   for k in range(COPIES // 2)]
    size = sum(not r.passed for r in independent) / len(independent)
    print(f"paired false-alarm rate: {rate:.3f} vs one baseline ({len(reports)} re-runs), "
          f"{size:.3f} over {len(independent)} independent pairs")
    # alpha 0.05: binomial(60, 0.05) exceeds 8 w.p. < 1%, binomial(30, 0.05) exceeds 4 w.p. < 2%
    assert rate <= 8 / COPIES
    assert size <= 4 / len(independent)


def test_false_alarm_rate_over_master_seeds_and_detection(tmp_path):
    """Re-runs with master seeds 1..N against the run with seed 0: same instances (fixed `seeds`),
    other env and agent seeds, so the stratified test is used. Two scenarios per gate."""
    seeds = 30
    scenarios = (BERNOULLI, GAUSSIAN)
    frames = []
    for seed in range(seeds + 1):
        run_plan(suite([eps(0.1), eps(0.6, "worse")], seed=seed, rollouts=8, scenarios=scenarios), tmp_path / f"s{seed}")
        frames.append(load_run(tmp_path / f"s{seed}")[1].collect())
    base = candidate(frames[0], "candidate")
    same = [compare(candidate(f, "candidate"), base) for f in frames[1:]]
    worse = [compare(candidate(f, "worse"), base) for f in frames[1:]]
    assert {c.test.test for r in same for c in r.checks} == {"stratified"}
    false_alarms = sum(not r.passed for r in same) / seeds
    detection = sum(not r.passed for r in worse) / seeds
    print(f"stratified: family-wise false-alarm rate {false_alarms:.3f}, detection {detection:.3f} over {seeds} seeds")
    assert false_alarms <= 5 / seeds  # alpha 0.05 family-wise (Holm); binomial(30, 0.05) > 5 w.p. < 1%
    assert detection >= 0.8


# --- CLI and writers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    scenarios = (BERNOULLI, GAUSSIAN)
    run_plan(suite([eps(0.1), "ucb1"], rollouts=8, scenarios=scenarios), root / "base")
    run_plan(suite([eps(0.1), "ucb1"], rollouts=8, scenarios=scenarios), root / "same")
    run_plan(suite([eps(0.1), {"agent": "uniform", "label": "ucb1"}], rollouts=8, scenarios=scenarios), root / "worse")
    return root


def test_cli_exit_codes_summary_and_junit(runs, tmp_path, monkeypatch, capsys):
    baseline = tmp_path / "regret-baseline.json"
    assert main(["check", str(runs / "base"), "--baseline", str(baseline), "--write-baseline", "--alpha", "0.01"]) == 0
    assert json.loads(baseline.read_text())["settings"]["alpha"] == 0.01
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["check", str(runs / "same"), "--baseline", str(baseline)]) == 0
    out = capsys.readouterr().out
    assert "p-value (holm)" in out and "p-value  " in out and "passed: 4 check(s)" in out and "alpha=0.01" in out
    assert "| agent | scenario | baseline | now | change | p-value | p-value (holm) | verdict |" in summary.read_text()

    junit = tmp_path / "junit.xml"
    assert main(["check", str(runs / "worse"), "--baseline", str(baseline), "--junit", str(junit)]) == 1
    out = capsys.readouterr().out
    assert "fail: worse" in out and "2 of 4 checks failed" in out
    assert summary.read_text().count("## regret check") == 2  # appended, as GitHub expects
    suite_el = ET.parse(junit).getroot().find("testsuite")
    cases = suite_el.findall("testcase")
    assert len(cases) == 4 and suite_el.get("tests") == "4" and suite_el.get("failures") == "2"
    failed = {(c.get("classname"), c.get("name")) for c in cases if c.find("failure") is not None}
    assert failed == {("regret.ucb1", "bandit/bernoulli-k5"), ("regret.ucb1", "bandit/gaussian-k5")}
    assert cases[0].find("failure") is None or "fail: worse" in cases[0].find("failure").get("message")

    assert main(["check", str(runs / "worse"), "--baseline", str(baseline), "--fail-above", "1000",
                 "--min-effect", "100"]) == 0  # flags override the stored settings
    capsys.readouterr()


def test_cli_usage_errors_exit_2(runs, tmp_path, capsys):
    assert main(["check", str(runs / "base"), "--baseline", str(tmp_path / "none.json")]) == 2
    assert "cannot read baseline" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"format": "regret-baseline", "version": 1, "checks": 3}')
    assert main(["check", str(runs / "base"), "--baseline", str(tmp_path / "bad.json")]) == 2
    assert "'checks' must be a list" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "nowhere"), "--baseline", str(tmp_path / "bad.json")]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    write_baseline(runs / "base", tmp_path / "b.json")
    assert main(["check", str(runs / "base"), "--baseline", str(tmp_path / "b.json"), "--alpha", "1.5"]) == 2
    assert "alpha must be in (0, 1)" in capsys.readouterr().err


def test_a_scenario_dropped_from_the_run_fails_as_missing(runs, tmp_path):
    baseline = write_baseline(runs / "base", tmp_path / "b.json")
    assert len(baseline.samples) == 4
    partial = tmp_path / "partial"
    run_plan(suite([eps(0.1), "ucb1"], rollouts=8, scenarios=(BERNOULLI,)), partial)
    report = check_run(partial, tmp_path / "b.json")
    missing = [c for c in report.checks if c.verdict == "fail: missing"]
    assert {c.scenario_id for c in missing} == {"bandit/gaussian-k5"} and len(missing) == 2


def test_raw_and_adjusted_pvalues_and_mismatch_warnings(runs, tmp_path):
    baseline = write_baseline(runs / "base", tmp_path / "b.json")
    report = check_run(runs / "worse", tmp_path / "b.json")
    header = report.header()
    assert header[5:7] == ["p-value", "p-value (holm)"]
    for check, row in zip(report.checks, report.rows()):
        if check.test is not None and row.p_value not in ("<1e-4", "-"):
            assert float(row.p_value) == pytest.approx(check.test.pvalue, abs=5e-5)
            assert check.pvalue_adjusted >= check.test.pvalue
    # the label "ucb1" is the uniform agent in the "worse" run: its settings changed
    assert any("'ucb1' has different settings" in w for w in report.warnings)
    assert "warning: agent 'ucb1'" in report.table() and "> warning:" in report.markdown()
    assert not check_run(runs / "same", tmp_path / "b.json").warnings
    reseeded = tmp_path / "reseeded"
    run_plan(suite([eps(0.1), "ucb1"], seed=4, rollouts=8, scenarios=(BERNOULLI, GAUSSIAN)), reseeded)
    assert any("different plans" in w for w in check_run(reseeded, baseline).warnings)


def test_paired_check_is_the_task_stratified_paired_difference():
    from harness._stats import paired_difference

    now = sample([5, 6, 9, 4, 7, 8], tasks=["a", "a", "a", "b", "b", "b"])
    base = sample([3, 4, 2, 6, 5, 5], tasks=["a", "a", "a", "b", "b", "b"])
    result = compare_samples(now, base)
    estimate = paired_difference(now.regret, base.regret, now.task_id, scope="tasks")
    assert result.test == "paired" and result.pvalue == pytest.approx(estimate.pvalue(0.0, "greater"))
    one_task = compare_samples(sample([5, 6, 9, 4]), sample([3, 4, 2, 6]))
    assert one_task.pvalue == pytest.approx(stats.ttest_rel([5, 6, 9, 4], [3, 4, 2, 6], alternative="greater").pvalue)
