"""docs/extending.md's worked examples, each registered the way the document says and run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import extension_examples as ex
from agents.llm import QUIRKS
from finetune.backends import BACKENDS
from finetune.dataset import DATASET_FORMATS, DatasetConfig, KLowestRegret, build_dataset
from harness import load_run, parse_suite, run_plan
from harness.metrics import METRICS, leaderboard, metric
from harness.report import leaderboard_markdown
from harness.testing.openai_server import ScriptedServer, round_robin_policy

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"


@pytest.fixture
def registered():
    """Register extensions for one test and forget them afterwards."""
    added = []

    def add(registry, name, obj, **kw):
        registry.add(name, obj, **kw)
        added.append((registry, name))

    yield add
    for registry, name in added:
        registry.remove(name)


def _bandit_run(directory, agents=("ucb1", "uniform")):
    plan = parse_suite({"seed": 1, "rollouts": 3, "agents": list(agents), "scenarios": [
        {"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 20}, "instances": 2}]})
    run_plan(plan, directory)
    return directory


def test_the_document_names_one_file_per_extension():
    text = DOC.read_text()
    for heading in ("A scenario family", "A provider quirk", "A metric", "A dataset format",
                    "A fine-tuning backend", "An executor"):
        assert f"## {heading}" in text, heading


def test_a_metric_in_one_function(tmp_path):
    try:
        metric("mean_reward", ("mean_reward",), position=60,
               table=(("mean reward", lambda r: f"{r['mean_reward']:.3f}"),))(ex.mean_reward)
        board = leaderboard(*load_run(_bandit_run(tmp_path / "run")))
        assert board.columns[-1] == "mean_reward" and board["mean_reward"].null_count() == 0
        assert "| mean reward |" in leaderboard_markdown(board)
    finally:
        METRICS.remove("mean_reward")
    assert "mean_reward" not in leaderboard(*load_run(tmp_path / "run")).columns


def test_a_dataset_format_in_one_function(tmp_path, registered):
    registered(DATASET_FORMATS, "alpaca", ex.alpaca)
    result = build_dataset([_bandit_run(tmp_path / "run")], KLowestRegret(k=1), tmp_path / "data",
                           DatasetConfig(format="alpaca", val_fraction=0))
    row = json.loads(result.train_path.read_text().splitlines()[0])
    assert set(row) == {"instruction", "output", "task_id"} and "ANSWER:" in row["output"]


def test_a_provider_quirk_in_one_function(tmp_path, registered):
    registered(QUIRKS, "openai/quirky", ex.no_temperature)
    with ScriptedServer(round_robin_policy()) as server:
        plan = parse_suite({"seed": 0, "rollouts": 1, "agents": [
            {"agent": "openai/quirky", "api_base": server.api_base, "temperature": 0.7, "cache": False},
            {"agent": "openai/plain", "api_base": server.api_base, "temperature": 0.7, "cache": False}],
            "scenarios": [{"family": "bandit/bernoulli", "params": {"n_arms": 2, "horizon": 2}}]})
        run_plan(plan, tmp_path / "run")
        sent = {r["model"]: r for r in server.requests}
    assert "temperature" not in sent["quirky"] and sent["plain"]["temperature"] == 0.7


def test_a_backend_in_one_file(tmp_path, registered):
    from finetune._loop import IterateConfig, iterate

    registered(BACKENDS, "epsilon", ex.EpsilonBackend)
    suite = {"seed": 0, "rollouts": 1, "agents": [],
             "scenarios": [{"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 30}}]}
    config = IterateConfig(out=str(tmp_path / "loop"), suite=parse_suite(suite), agent="epsilon-greedy",
                           backend="epsilon", iterations=1, rollouts=4, k=2, eval_instances=2)
    result = iterate(config)
    assert result.checkpoint.agent == "epsilon-greedy" and result.checkpoint.backend == "epsilon"
    assert 0.01 <= result.checkpoint.params["epsilon"] <= 1.0 and result.rows.height == 2
