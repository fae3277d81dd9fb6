import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]


def regret(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_help_imports_no_heavy_module():
    code = (
        "import sys; from harness.cli import build_parser; build_parser().format_help();"
        "heavy = {'polars', 'litellm', 'torch', 'matplotlib', 'transformers', 'langchain_core'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]", out.stderr


def test_run_default_suite_end_to_end(tmp_path):
    out = regret("run", "--out", str(tmp_path / "run"), "--no-progress", "--rollouts", "2")
    assert out.returncode == 0, out.stderr
    assert "run directory:" in out.stdout
    for name in ("plan.json", "store.sqlite", "decisions.parquet", "episodes.parquet", "leaderboard.md",
                 "report.html", "regret_curves.png"):
        assert (tmp_path / "run" / name).exists(), name


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--agent", "ucb"], "did you mean 'ucb1'"),
        (["run", "--scenario", "bandit/bernouli"], "did you mean"),
        (["run", "--suite", "nope.toml"], "cannot read suite file"),
        (["run", "--rollouts", "0"], "--rollouts must be >= 1"),
        (["run", "--seed", "-1"], "--seed must be >= 0"),
        (["run", "--concurrency", "0"], "--concurrency must be >= 1"),
        (["report", "/nonexistent/run"], "not a run directory"),
        (["run", "--resume", "/nonexistent/run"], "not a run directory"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0 and err.startswith("regret: error:")


def test_malformed_suite_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("agents = [ucb1\n")
    assert main(["run", "--suite", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_negative_horizon_in_suite_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('agents = ["ucb1"]\n[[scenarios]]\nfamily = "bandit/bernoulli"\nparams = {horizon = -3}\n')
    assert main(["run", "--suite", str(bad)]) == 2
    assert "horizon must be >= 1, got -3" in capsys.readouterr().err


def test_listing_commands(capsys):
    assert main(["scenarios"]) == 0
    assert "bandit/bernoulli" in capsys.readouterr().out
    assert main(["agents"]) == 0
    assert "ucb1" in capsys.readouterr().out
