"""End to end: the text RMFT loop with a tiny local model, two iterations, through litellm and `transformers serve`."""

import pytest

from tests._tiny_model import tiny_model  # noqa: F401  (fixture)

pytest.importorskip("trl")
pytest.importorskip("fastapi")


@pytest.mark.slow
def test_text_loop_two_iterations(tiny_model, tmp_path, monkeypatch):
    import polars as pl
    from safetensors.torch import load_file

    from finetune._loop import IterateConfig, iterate
    from harness._plan import Plan, ScenarioEntry

    monkeypatch.setenv("REGRET_SERVE_ENGINE", "transformers")
    entry = ScenarioEntry("bandit/bernoulli-k5", "bandit/bernoulli", {"n_arms": 5, "horizon": 4}, "buttons", (0,))
    plan = Plan((), (entry,), 0, 1, "tiny")
    config = IterateConfig(
        out=str(tmp_path / "loop"), suite=plan, agent=f"openai/{tiny_model}",
        agent_params={"temperature": 1.0, "max_tokens": 8, "cache": False, "max_invalid_retries": 2,
                      "reasoning": False, "history": "summary"},
        backend="hf", backend_config={"max_steps": 6, "learning_rate": 1e-2, "batch_size": 2},
        iterations=2, rollouts=3, k=2, train_instances=1, eval_instances=2, eval_rollouts=1, concurrency=2, seed=0)
    result = iterate(config)

    rows = pl.read_parquet(tmp_path / "loop" / "iterations.parquet")
    assert rows["iteration"].to_list() == [0, 1, 2]
    assert rows.filter(pl.col("iteration") > 0)["dataset_size"].to_list() == [2.0, 2.0]
    assert all(loss > 0 for loss in rows.filter(pl.col("iteration") > 0)["train_loss"].to_list())
    first, second = (tmp_path / "loop" / f"iter-00{i}" / "checkpoint" / "merged" for i in (1, 2))
    weights = [load_file(p / "model.safetensors") for p in (tiny_model, first, second)]
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not (weights[0][key] == weights[1][key]).all() and not (weights[1][key] == weights[2][key]).all()
    assert result.checkpoint.agent == f"openai/{second.resolve()}"
    assert result.checkpoint.params["temperature"] == 1.0  # settings carried to the fine-tune
    # the fine-tuned checkpoint was served and played through litellm in the last evaluation
    decisions = pl.read_parquet(tmp_path / "loop" / "iter-002" / "eval" / "decisions.parquet")
    assert decisions.height == 2 * 4 and decisions["attempts"].min() >= 1
    assert decisions["raw_output"].str.len_chars().min() > 0
