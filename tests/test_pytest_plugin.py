"""The `regret` pytest plugin, run the way a user's project would use it (through pytester)."""

import os
import subprocess
import sys
from pathlib import Path

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]

SUITE = """
seed = 0
rollouts = 6
agents = ["ucb1"]

[[scenarios]]
id = "bandit/bernoulli-k5"
family = "bandit/bernoulli"
params = { n_arms = 5, horizon = 40, gap = 0.3 }
seeds = [3, 4]
"""

USER_TESTS = """
import pytest

@pytest.mark.regret
def test_quality(regret_run, tmp_path):
    result = regret_run("ci.toml", seed=0)
    mean = result.mean_regret("bandit/bernoulli-k5")
    assert 0 < mean < 40
    baseline = result.write_baseline(tmp_path / "baseline.json")
    again = regret_run("ci.toml", seed=0)
    assert again.no_worse_than(baseline)
    assert again.no_worse_than(result)

@pytest.mark.regret
def test_worse_agent_fails(regret_run):
    good = regret_run("ci.toml", agent={"agent": "ucb1", "label": "candidate"})
    bad = regret_run("ci.toml", agent={"agent": "uniform", "label": "candidate"})
    assert bad.mean_regret("bandit/bernoulli-k5") > good.mean_regret("bandit/bernoulli-k5")
    assert bad.no_worse_than(good)

@pytest.mark.regret
def test_worse_agent_full_table(regret_run):
    good = regret_run("ci.toml", agent={"agent": "ucb1", "label": "candidate"})
    bad = regret_run("ci.toml", agent={"agent": "uniform", "label": "candidate"})
    bad.assert_no_worse_than(good)

def test_plain():
    assert True
"""


def test_fixture_and_marker_in_a_user_project(pytester):
    pytester.makefile(".toml", ci=SUITE)
    pytester.makepyfile(test_agents=USER_TESTS)
    result = pytester.runpytest_subprocess("-m", "regret", "-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=1, failed=2, deselected=1)
    # the failure messages name the check, its verdict and p-value; assert_no_worse_than shows the table
    result.stdout.fnmatch_lines(["*regret check FAILED 1/1: candidate x bandit/bernoulli-k5: fail: worse (+*, p=*)*"])
    result.stdout.fnmatch_lines(["*AssertionError: regret check failed*", "*agent*scenario*baseline*now*change*",
                                 "*candidate*bandit/bernoulli-k5*fail: worse*"])
    unmarked = pytester.runpytest_subprocess("-m", "not regret", "-p", "no:cacheprovider", "--strict-markers")
    unmarked.assert_outcomes(passed=1, deselected=3)


def test_helpers_name_bad_input(pytester):
    pytester.makefile(".toml", ci=SUITE)
    pytester.makepyfile(test_bad="""
import pytest

def test_bad_names(regret_run):
    result = regret_run("ci.toml", rollouts=2)
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        result.mean_regret("nope")
    with pytest.raises(ValueError, match="unknown agent 'x'"):
        result.mean_regret("bandit/bernoulli-k5", agent="x")
    with pytest.raises(ValueError, match="no scenario"):
        regret_run("ci.toml", scenario="missing")
""")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_plugin_module_imports_nothing_heavy():
    code = ("import sys, harness.pytest_plugin;"
            "print(sorted({'polars', 'litellm', 'torch', 'scipy', 'matplotlib', 'transformers'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]", out.stderr


def test_loading_the_plugin_imports_neither_numpy_nor_the_registries():
    code = "import sys, harness.pytest_plugin; print(sorted({'numpy', 'scenarios', 'agents'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.stdout.strip() == "[]", out.stderr
