"""A free-form-answer family (tests/toy_answer.py) end to end through runner, store, metrics and datasets,
with no special case anywhere; and agents explaining their own decisions."""

from __future__ import annotations

import json

import polars as pl
import pytest

import toy_answer
from agents import AgentFactory, AgentSpec, explain, resolve
from finetune.dataset import DatasetConfig, KLowestRegret, build_dataset
from harness import load_run, parse_suite, run_plan
from harness.metrics import leaderboard
from scenarios import FreeForm, ScenarioError, get_framing, make


def _plan():
    return parse_suite({"seed": 3, "rollouts": 2, "agents": ["off-by-one"],
                        "scenarios": [{"id": "sum", "family": "toy/sum", "params": {"horizon": 3}, "instances": 3}]})


def test_the_answer_space_validates_parses_and_renders():
    env = make("toy/sum", {}, 1)
    space = env.action_space
    assert isinstance(space, FreeForm) and env.validate_action("12") == (None, "12")
    with pytest.raises(ScenarioError, match="expected a number"):
        env.validate_action("twelve")
    parsed = space.parse("Adding: 5 + 7.\n**ANSWER:** 12.", get_framing("buttons"))
    assert parsed.ok and parsed.answer == "12" and parsed.reasoning == "Adding: 5 + 7."
    assert not space.parse("It is twelve", get_framing("buttons")).ok
    assert "ANSWER: <your number>" in space.instructions(get_framing("buttons"))


def test_a_toy_answer_family_runs_end_to_end(tmp_path):
    plan = _plan()
    spec = plan.agents[0]
    factory = AgentFactory(spec, toy_answer.OffByOne, toy_answer.OffByOne.kinds)
    result = run_plan(plan, tmp_path / "run", factories={spec.name: factory})
    assert (result.finished, result.failed) == (6, 0)

    decisions, episodes = (frame.collect() for frame in load_run(tmp_path / "run"))
    assert decisions["answer"].null_count() == 0 and decisions["action"].null_count() == decisions.height
    first = decisions.filter(pl.col("t") == 0)
    summaries = {r["task_id"]: json.loads(r["scenario_summary"]) for r in episodes.iter_rows(named=True)}
    for row in first.iter_rows(named=True):  # the stored answer is what the agent said, checked by the scenario
        facts = summaries[row["task_id"]]
        assert int(row["answer"]) == facts["a"] + facts["b"] - 1 and row["regret"] == 1.0
    # ranking regret = turns wasted before the first right answer: exactly one per episode
    assert episodes["final_regret"].to_list() == [1.0] * 6 and episodes["n_decisions"].to_list() == [2] * 6
    assert set(episodes["explainer"]) == {"toy/off-by-one"}

    board = leaderboard(*load_run(tmp_path / "run"))
    row = board.row(0, named=True)
    assert row["mean_regret"] == 1.0 and row["suff_fail_freq"] is None  # no best arm: exploration does not apply

    data = build_dataset([tmp_path / "run"], KLowestRegret(k=1), tmp_path / "data", DatasetConfig(val_fraction=0))
    example = json.loads(data.train_path.read_text().splitlines()[0])
    system, user, wrong, retry, right = (m["content"] for m in example["messages"][:5])
    assert system.startswith("What is ") and "ANSWER: <your number>" in system
    assert wrong.startswith("I add the two numbers.\nANSWER: ")
    assert toy_answer.RETRY in retry and right.startswith("I was one short")
    a, b = (int(x) for x in system.split("?")[0].removeprefix("What is ").split(" + "))
    assert wrong.endswith(f"ANSWER: {a + b - 1}") and right.endswith(f"ANSWER: {a + b}")


def test_agents_explain_their_own_decisions(tmp_path):
    """A torch policy's decision is explained as a policy network's, never as EXP3's exponential weights."""
    framing = get_framing("buttons")
    row = {"action": 1, "policy": None, "context": None, "info": json.dumps({"probs": [0.25, 0.75]})}
    policy_text, exp3_text = explain("torch-policy", framing, row), explain("exp3", framing, row)
    assert "policy network" in policy_text and "Exponential weights" not in policy_text
    assert "Exponential weights" in exp3_text
    plan = parse_suite({"agents": ["exp3", "ucb1"], "rollouts": 1,
                        "scenarios": [{"family": "bandit/bernoulli", "params": {"n_arms": 2, "horizon": 3}}]})
    run_plan(plan, tmp_path / "run")
    _, episodes = load_run(tmp_path / "run")
    assert dict(episodes.select("agent", "explainer").collect().iter_rows()) == {"exp3": "exp3", "ucb1": "ucb1"}
    assert resolve(AgentSpec("ucb1"))().explainer == "ucb1"
