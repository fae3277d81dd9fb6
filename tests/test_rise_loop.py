"""End to end: the RISE loop with a tiny local model through `transformers serve` and litellm."""

import json

import pytest

from tests._tiny_model import tiny_model  # noqa: F401  (fixture)

pytest.importorskip("trl")
pytest.importorskip("fastapi")


@pytest.mark.slow
def test_rise_loop_one_iteration(tiny_model, tmp_path, monkeypatch):
    import polars as pl
    from safetensors.torch import load_file

    from finetune._loop import IterateConfig, iterate
    from harness._plan import Plan, ScenarioEntry

    monkeypatch.setenv("REGRET_SERVE_ENGINE", "transformers")
    entry = ScenarioEntry("arith", "self-correction/arithmetic", {"turns": 3, "steps": 1, "max_number": 5}, None, (0,))
    config = IterateConfig(
        out=str(tmp_path / "loop"), suite=Plan((), (entry,), 0, 1, "tiny-rise"), agent=f"openai/{tiny_model}",
        agent_params={"temperature": 1.0, "max_tokens": 6, "cache": False, "seed": 0},
        backend="hf", backend_config={"max_steps": 4, "learning_rate": 1e-2, "batch_size": 2},
        selector="rise", rise_filter="all", iterations=1, rollouts=2, k=1, train_instances=2, eval_instances=2,
        eval_rollouts=5, concurrency=2, seed=0)
    iterate(config)

    rows = pl.read_parquet(tmp_path / "loop" / "iterations.parquet")
    assert rows["iteration"].to_list() == [0, 1]
    for name in ("m1@t1", "m5@t1", "m1@t5", "p1@t5"):
        assert rows[name].is_between(0, 1).all(), name
        assert name + "_low" in rows.columns
    # the data: one weighted example per attempt (2 tasks x 2 rollouts, 3 turns unless solved early)
    examples = [json.loads(line) for line in (tmp_path / "loop" / "iter-000" / "dataset" / "train.jsonl").open()]
    assert rows["dataset_size"][1] == len(examples) >= 4
    assert {round(e["weight"], 3) for e in examples} <= {0.082, 1.0, 12.182}
    assert all(sum(m["train"] for m in e["messages"]) == 1 and e["messages"][-1]["train"] for e in examples)
    merged = tmp_path / "loop" / "iter-001" / "checkpoint" / "merged"
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not (load_file(tiny_model / "model.safetensors")[key] == load_file(merged / "model.safetensors")[key]).all()
    evaluation = pl.read_parquet(tmp_path / "loop" / "iter-001" / "eval" / "episodes.parquet")
    assert evaluation.height == 2 * 5 and (evaluation["status"] == "finished").all()
