"""The advantage selector (signed weights against each task's mean), signed fits, the teacher warm start."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from finetune._select import AdvantageWeighted, select_episodes
from scenarios import ConfigError


def _episodes(regrets_by_task: dict[str, list[float]]) -> pl.LazyFrame:
    rows = [{"run": "r", "agent": "model", "task_id": task, "rollout": j, "status": "finished", "n_invalid": 0,
             "final_regret": regret, "total_reward": -regret}
            for task, regrets in regrets_by_task.items() for j, regret in enumerate(regrets)]
    return pl.DataFrame(rows).lazy()


def _weights(selector, regrets_by_task):
    kept = select_episodes(_episodes(regrets_by_task), selector).collect()
    return {(r["task_id"], r["rollout"]): r["weight"] for r in kept.iter_rows(named=True)}


def test_weights_are_standardised_advantages_within_each_task():
    weights = _weights(AdvantageWeighted(), {"a": [1.0, 2.0, 4.0, 7.0], "b": [10.0, 20.0], "tie": [4.0, 4.0]})
    a = np.array([1.0, 2.0, 4.0, 7.0])
    expected = (a.mean() - a) / a.std()
    assert [weights[("a", j)] for j in range(4)] == pytest.approx(expected.tolist())
    # only relative regret counts: task b's scale does not give it more weight
    assert weights[("b", 0)] == pytest.approx(1.0) and weights[("b", 1)] == pytest.approx(-1.0)
    assert not any(task == "tie" for task, _ in weights)  # no signal in a task whose rollouts all tie
    positive = _weights(AdvantageWeighted(signed=False), {"a": [1.0, 2.0, 4.0, 7.0]})
    assert set(positive) == {("a", 0), ("a", 1)} and all(w > 0 for w in positive.values())


def test_risk_aversion_weighs_the_tail():
    """Two rules with the same mean: a steady 5 and a gamble of 0 or 10. With risk aversion the gamble loses."""
    task = {"t": [5.0, 5.0, 0.0, 10.0]}
    neutral = _weights(AdvantageWeighted(), task)
    assert ("t", 0) not in neutral and neutral[("t", 2)] == -neutral[("t", 3)]  # the gamble's two draws cancel
    averse = _weights(AdvantageWeighted(risk_aversion=0.5), task)
    assert averse[("t", 0)] > 0 and averse[("t", 2)] + averse[("t", 3)] < 0  # steady play favoured, gamble not
    assert averse[("t", 3)] < averse[("t", 0)] < averse[("t", 2)]
    assert all(math.isfinite(w) for w in _weights(AdvantageWeighted(risk_aversion=50.0), task).values())
    with pytest.raises(ConfigError, match="risk_aversion"):
        AdvantageWeighted(risk_aversion=-1.0)


def test_signed_fit_pushes_down_what_the_worse_rollouts_did(tmp_path):
    torch = pytest.importorskip("torch")
    from agents.torch_policy import history_features, load_module
    from finetune._backend import TrainingSet
    from finetune.backends import BackendError, get_backend, make_config
    from harness._plan import parse_suite

    plan = parse_suite({"agents": [], "scenarios": [
        {"family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 6}, "instances": 1}]})
    backend = get_backend("torch")
    start = backend.initial_checkpoint("torch:new", {}, None, tmp_path / "init", plan=plan)
    # one episode always played arm 1 and did worse than its task's mean (weight -1), nothing else
    decisions = pl.DataFrame({"agent": ["model"] * 6, "task_id": ["t"] * 6, "rollout": [0] * 6, "t": list(range(6)),
                              "action": [1] * 6, "reward": [0.0] * 6, "policy": [None] * 6},
                             schema_overrides={"policy": pl.String})
    episodes = pl.DataFrame({"agent": ["model"], "task_id": ["t"], "rollout": [0], "weight": [-1.0]})
    probability = {}
    for loss in ("unlikelihood", "likelihood"):
        config = make_config(backend, {"epochs": 20, "learning_rate": 0.01, "permute_actions": False,
                                       "negative_loss": loss}, output_dir=str(tmp_path / loss), seed=0)
        trained = backend.fit(start.path, TrainingSet(episodes, decisions, tmp_path), config)
        module, policy_config = load_module(trained.path)
        actions, rewards = torch.tensor([[1] * 6]), torch.zeros(1, 6)
        with torch.no_grad():
            logits = module(history_features(policy_config, actions, rewards, torch.zeros(1, 6, 3)))
        probability[loss] = torch.softmax(logits, -1)[0, :, 1].mean().item()
    assert probability["unlikelihood"] < 0.25 and probability["likelihood"] < 0.25  # from 1/3 (uniform)
    with pytest.raises(BackendError, match="negative_loss"):
        make_config(backend, {"negative_loss": "hinge"})


SUITE = {"name": "tiny", "agents": [], "scenarios": [
    {"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 15, "gap": 0.4}, "instances": 2}]}


def test_loop_with_a_teacher_and_the_advantage_selector(tmp_path):
    pytest.importorskip("torch")
    from finetune.iterate import IterateConfig, iterate
    from harness._plan import parse_suite

    config = IterateConfig(out=str(tmp_path / "loop"), suite=parse_suite(SUITE), iterations=2, rollouts=4,
                           selector="advantage", risk_aversion=0.2, teacher="ucb1", teacher_params={"c": 0.5},
                           eval_instances=2, backend_config={"epochs": 2})
    iterate(config)
    rollouts = {i: pl.read_parquet(tmp_path / "loop" / f"iter-00{i}" / "rollouts" / "decisions.parquet")
                for i in (0, 1)}
    # iteration 0's rollouts are the teacher's (its decisions carry UCB's reasoning, no policy probabilities)
    assert not rollouts[0]["info"].str.contains('"probs"', literal=True).any()
    assert rollouts[1]["info"].str.contains('"probs"', literal=True).all()  # then the model plays its own
    kept = pl.read_parquet(tmp_path / "loop" / "iter-000" / "dataset" / "episodes.parquet")
    assert (kept["weight"] < 0).any() and (kept["weight"] > 0).any()
    assert kept.group_by("task_id").agg(pl.col("weight").sum())["weight"].abs().max() < 1e-9
    with pytest.raises(ConfigError, match="signed weights need the torch backend"):
        IterateConfig(out=str(tmp_path / "x"), suite=parse_suite(SUITE), selector="advantage", backend="hf")
