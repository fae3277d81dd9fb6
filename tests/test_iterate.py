"""The Iterative RMFT loop: steps, table, plot, resume, held-out seeds, CLI."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

import polars as pl  # noqa: E402

from finetune.iterate import IterateConfig, check_disjoint, heldout_entries, iterate, training_entries  # noqa: E402
from harness._plan import parse_suite  # noqa: E402

SUITE = {"name": "tiny", "agents": [], "scenarios": [
    {"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 15, "gap": 0.4}, "instances": 2},
]}


def _config(tmp_path, **changes):
    values = dict(out=str(tmp_path / "loop"), suite=parse_suite(SUITE), iterations=2, rollouts=4, k=2,
                  eval_instances=3, backend_config={"epochs": 2}, baselines=("ucb1",))
    values.update(changes)
    return IterateConfig(**values)


class Interrupted(Exception):
    pass


def test_loop_writes_table_and_plot_and_resumes_without_redoing_steps(tmp_path):
    def stop_after_rollout_1(step):
        if step == "1/rollout":
            raise Interrupted

    with pytest.raises(Interrupted):
        iterate(_config(tmp_path), on_step=stop_after_rollout_1)
    assert not (tmp_path / "loop" / "iter-002").exists()
    result = iterate(_config(tmp_path))
    assert result.steps_run == ["1/select", "1/fit", "2/eval"]  # nothing finished is redone
    rows = pl.read_csv(tmp_path / "loop" / "iterations.csv")
    assert rows["iteration"].to_list() == [0, 1, 2]
    assert rows["mean_regret"].to_list() == pl.read_parquet(tmp_path / "loop" / "iterations.parquet")["mean_regret"].to_list()
    first, later = rows.row(0, named=True), rows.row(2, named=True)
    assert first["episodes"] == 3 and first["train_loss"] is None
    assert later["dataset_size"] == 4.0 and later["acceptance_rate"] == pytest.approx(0.5)
    assert later["train_loss"] > 0 and later["cumulative_cpu_s"] > first["cumulative_cpu_s"]
    for column in ("mean_regret", "ci_low", "ci_high", "median_regret", "p90_regret", "invalid_rate", "wall_s"):
        assert rows[column].null_count() == 0, column
    assert (tmp_path / "loop" / "iterations.png").stat().st_size > 1000
    assert (tmp_path / "loop" / "iter-002" / "checkpoint" / "model.npz").exists()
    assert result.checkpoint.agent.endswith("iter-002/checkpoint")
    assert pl.read_csv(tmp_path / "loop" / "baselines.csv")["agent"].to_list() == ["ucb1"]
    # untrained iteration 0 plays exactly uniformly on held-out instances
    decisions = pl.read_parquet(tmp_path / "loop" / "iter-000" / "eval" / "decisions.parquet")
    assert decisions["info"].str.contains('"probs":[0.3333,0.3333,0.3333]', literal=True).all()
    # raising the iteration count continues the same loop
    more = iterate(_config(tmp_path, iterations=3))
    assert more.steps_run == ["2/rollout", "2/select", "2/fit", "3/eval"]
    with pytest.raises(ValueError, match="other settings .*rollouts"):
        iterate(_config(tmp_path, rollouts=5))


def test_heldout_seeds_never_train(tmp_path):
    for resample in (True, False):
        config = _config(tmp_path, resample_tasks=resample, eval_instances=50, train_instances=50)
        plan = parse_suite(SUITE)
        heldout = heldout_entries(plan, config)
        assert len(heldout[0].instance_seeds) == 50
        suite_seeds = set(plan.scenarios[0].instance_seeds)
        assert not suite_seeds & set(heldout[0].instance_seeds)
        for i in range(5):
            training = training_entries(plan, config, i)
            check_disjoint(heldout, training)
            assert not set(training[0].instance_seeds) & set(heldout[0].instance_seeds)
    with pytest.raises(AssertionError, match="held-out instance"):
        check_disjoint(heldout, heldout)


def test_curriculum_goes_from_easy_to_hard(tmp_path):
    suite = {"agents": [], "scenarios": [
        {"id": f"h{h}", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": h}, "instances": 2}
        for h in (30, 10, 20)]}
    config = _config(tmp_path, suite=parse_suite(suite), schedule="easy-to-hard", iterations=3)
    stages = [[e.id for e in training_entries(config.suite, config, i)] for i in range(3)]
    assert stages == [["h10"], ["h20"], ["h30"]]
    # the whole budget (2 tasks per level) goes to the stage's level
    assert [len(training_entries(config.suite, config, i)[0].instance_seeds) for i in range(3)] == [6, 6, 6]


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="k \\(9\\) cannot exceed"):
        _config(tmp_path, k=9)
    with pytest.raises(ValueError, match="unknown selector 'best'"):
        _config(tmp_path, selector="best")
    assert _config(tmp_path, selector="reward-filtered").selector == "top-reward"


def test_cli_iterate(tmp_path, capsys):
    from harness.cli import main

    suite = tmp_path / "tiny.toml"
    suite.write_text('[[scenarios]]\nfamily = "bandit/bernoulli"\nparams = { n_arms = 3, horizon = 10 }\ninstances = 2\n')
    out = tmp_path / "cli"
    code = main(["iterate", "--suite", str(suite), "--iterations", "1", "--rollouts", "3", "--k", "1",
                 "--eval-instances", "2", "--selector", "reward-filtered", "--set", "epochs=1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "mean_regret" in printed and "0/fit: done" in printed
    assert pl.read_csv(out / "iterations.csv").height == 2
    assert main(["iterate", "--suite", str(suite), "--set", "epoch=1", "--out", str(tmp_path / "bad")]) == 2
    assert "unknown setting 'epoch'" in capsys.readouterr().err
