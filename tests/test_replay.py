"""Replay: earlier iterations' kept trajectories (the teacher's, with a warm start) join later fits."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

import polars as pl  # noqa: E402

from finetune import _loop  # noqa: E402
from finetune.iterate import IterateConfig, iterate, prepare  # noqa: E402
from harness import parse_suite  # noqa: E402
from scenarios import ConfigError  # noqa: E402

SUITE = {"name": "tiny", "agents": [], "scenarios": [
    {"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 10, "gap": 0.4}, "instances": 2}]}


def _config(tmp_path, name: str, **settings) -> IterateConfig:
    # resample_tasks off: every iteration draws the same tasks, so the replayed episodes' keys
    # (agent, task_id, rollout) collide with the current ones unless the loop keeps them apart
    settings = {"iterations": 3, "rollouts": 4, "k": 2, "teacher": "ucb1", "resample_tasks": False,
                "eval_instances": 2, "backend_config": {"epochs": 1}, **settings}
    return IterateConfig(out=str(tmp_path / name), suite=parse_suite(SUITE), **settings)


def _examples(directory, iteration: int) -> float:
    return json.loads((directory / f"iter-{iteration:03d}" / "checkpoint.json").read_text())["metrics"]["examples"]


def _kept(directory, iteration: int) -> int:
    return pl.read_parquet(directory / f"iter-{iteration:03d}" / "dataset" / "episodes.parquet").height


@pytest.mark.parametrize("replay", ["none", "first", "all"])
def test_each_fit_trains_on_its_own_and_the_replayed_iterations_kept_trajectories(tmp_path, replay):
    config = _config(tmp_path, replay, replay=replay)
    iterate(config)
    directory = tmp_path / replay
    kept = [_kept(directory, i) for i in range(3)]
    assert kept == [4, 4, 4]  # 2 tasks x k=2
    replayed = {"none": [0, 0, 0], "first": [0, kept[0], kept[0]], "all": [0, kept[0], kept[0] + kept[1]]}[replay]
    # checkpoint i + 1 was fitted at iteration i; "examples" counts the episodes the backend trained on
    assert [_examples(directory, i + 1) for i in range(3)] == [kept[i] + replayed[i] for i in range(3)]


def test_replayed_episodes_keep_their_own_keys_and_get_the_replay_weight(tmp_path):
    config = _config(tmp_path, "weighted", replay="all", replay_weight=0.25)
    iterate(config)
    loop, _ = prepare(config)
    folders = _loop.replayed_folders(loop, 2)
    assert [f.name for f in folders] == ["iter-000", "iter-001"]
    training = _loop._training_set(loop.folder(2), config, folders)
    episodes = training.episodes
    own = episodes.filter(~pl.col("task_id").str.starts_with("iter-"))
    replayed = episodes.filter(pl.col("task_id").str.starts_with("iter-"))
    assert own.height == 4 and replayed.height == 8
    assert set(own["weight"]) == {1.0} and set(replayed["weight"]) == {0.25}
    # the same task, drawn in every iteration, stays three different sets of episodes
    assert episodes.select("agent", "task_id", "rollout").unique().height == episodes.height
    bare = replayed["task_id"].str.replace(r"^iter-00\d/", "")
    assert set(bare) == set(own["task_id"])
    # every replayed episode brings its own decisions, under the same tagged key
    counts = training.decisions.group_by("task_id", "rollout").len()
    assert counts.height == episodes.height and set(counts["len"]) == {10}  # horizon 10
    assert set(training.decisions["task_id"]) == set(episodes["task_id"])


def test_replay_settings_are_checked_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="replay must be one of none, first, all"):
        _config(tmp_path, "x", replay="some")
    with pytest.raises(ConfigError, match="replay_weight must be a finite number > 0"):
        _config(tmp_path, "x", replay="first", replay_weight=0.0)
    with pytest.raises(ConfigError, match="needs the torch backend"):
        IterateConfig(out=str(tmp_path / "x"), suite=parse_suite(SUITE), replay="first", backend="hf")
    assert not (tmp_path / "x").exists()


def test_the_recipe_flags_are_derived_from_the_config_fields(tmp_path, capsys):
    from harness.cli import build_parser, main

    parser = build_parser()
    args = parser.parse_args(["iterate", "--teacher", "ucb1", "--teacher-params", '{"c": 0.5}', "--no-signed",
                              "--replay", "first", "--replay-weight", "0.5", "--risk-aversion", "0.3"])
    assert (args.teacher, args.teacher_params, args.signed, args.replay, args.replay_weight, args.risk_aversion) \
        == ("ucb1", {"c": 0.5}, False, "first", 0.5, 0.3)
    unset = parser.parse_args(["iterate"])
    assert all(getattr(unset, name) is None for name in ("teacher", "teacher_params", "signed", "replay"))
    help_text = parser._subparsers._group_actions[0].choices["iterate"].format_help()
    assert "anchored to what it first imitated" in help_text  # the field's own help

    suite = tmp_path / "tiny.toml"
    suite.write_text('[[scenarios]]\nfamily = "bandit/bernoulli"\nparams = { n_arms = 3, horizon = 10 }\ninstances = 2\n')
    out = tmp_path / "cli"
    assert main(["iterate", "--suite", str(suite), "--iterations", "2", "--rollouts", "3", "--k", "2",
                 "--eval-instances", "2", "--teacher", "ucb1", "--teacher-params", '{"c": 0.5}', "--replay", "first",
                 "--set", "epochs=1", "--out", str(out)]) == 0
    settings = json.loads((out / "state.json").read_text())["settings"]
    assert (settings["teacher"], settings["teacher_params"], settings["replay"]) == ("ucb1", {"c": 0.5}, "first")
    assert _examples(out, 2) == _kept(out, 1) + _kept(out, 0)
    capsys.readouterr()

    for bad, message in ((["--teacher-params", "c=0.5"], "not JSON"), (["--teacher-params", "[1]"], "a JSON object"),
                         (["--replay", "most"], "invalid choice")):
        with pytest.raises(SystemExit) as exit_info:
            main(["iterate", "--suite", str(suite), "--out", str(tmp_path / "bad"), *bad])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
