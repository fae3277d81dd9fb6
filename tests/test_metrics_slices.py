"""Analytics read large decision tables in slices (harness.metrics.CHUNK_ROWS): same results as one pass."""

import polars as pl
import pytest

from harness import load_run, metrics, parse_suite, run_plan
from harness.report import write_report


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    plan = parse_suite({"seed": 8, "rollouts": 4, "agents": ["uniform", "greedy", "ucb1", "exp3"], "scenarios": [
        {"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 4, "horizon": 120}, "instances": 3},
        {"id": "n", "family": "bandit/nonstationary", "params": {"n_arms": 3, "horizon": 90}, "instances": 1},
        {"id": "e", "family": "experts/full-info", "params": {"horizon": 60}, "instances": 2}]})
    directory = tmp_path_factory.mktemp("slices") / "run"
    run_plan(plan, directory)
    return directory


def _analytics(directory):
    decisions, episodes = load_run(directory)
    return (metrics.leaderboard(decisions, episodes), metrics.regret_curves(decisions),
            metrics.episode_growth(decisions, episodes), metrics.bandit_exploration(decisions, episodes))


def test_slices_hold_whole_episodes_and_give_one_pass_results(run_dir, monkeypatch):
    decisions, episodes = load_run(run_dir)
    total = decisions.select(pl.len()).collect().item()
    whole = _analytics(run_dir)
    assert len(metrics.decision_slices(decisions)) == 1 and len(metrics.round_slices(decisions)) == 1
    for rows in (500, 2_345):
        monkeypatch.setattr(metrics, "CHUNK_ROWS", rows)
        slices = metrics.decision_slices(decisions)
        assert len(slices) >= total // rows // 2 and len(metrics.round_slices(decisions)) > 1
        keys = list(metrics.EPISODE_KEYS)
        seen = [part.select(keys).unique().collect() for part in slices]
        assert sum(s.height for s in seen) == episodes.filter(pl.col("status") == "finished").collect().height
        assert sum(part.select(pl.len()).collect().item() for part in slices) == total
        for one_pass, sliced in zip(whole, _analytics(run_dir)):
            assert sliced.equals(one_pass)


def test_tables_out_of_episode_order_or_in_memory_are_read_whole(run_dir, monkeypatch):
    monkeypatch.setattr(metrics, "CHUNK_ROWS", 500)
    decisions, _ = load_run(run_dir)
    assert len(metrics.decision_slices(decisions.sort("t", "agent"))) == 1
    assert len(metrics.decision_slices(decisions.collect())) == 1


def test_report_files_are_the_same_when_read_in_slices(run_dir, tmp_path, monkeypatch):
    import shutil

    write_report(run_dir)
    one_pass = {name: (run_dir / name).read_bytes() for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.parquet")}
    sliced = tmp_path / "run"
    shutil.copytree(run_dir, sliced)
    monkeypatch.setattr(metrics, "CHUNK_ROWS", 700)
    write_report(sliced)
    for name, content in one_pass.items():
        assert (sliced / name).read_bytes() == content, name
    page = (sliced / "report.html").read_text()
    assert page.count("<details><summary>task") == (run_dir / "report.html").read_text().count("<details><summary>task")
