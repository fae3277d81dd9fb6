import hashlib

import pytest

from harness.cli import main
from tests._tiny_model import tiny_model  # noqa: F401  (fixture)

pytest.importorskip("transformers")


def _digest(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_cli_builds_a_deterministic_loadable_model(tmp_path, capsys):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for name in ("a", "b"):
        assert main(["init-model", str(tmp_path / name), "--format-steps", "3", "--seed", "1"]) == 0
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert main(["init-model", str(tmp_path / "c"), "--format-steps", "3", "--seed", "2"]) == 0
    assert _digest(tmp_path / "a")["model.safetensors"] != _digest(tmp_path / "c")["model.safetensors"]

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "a")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "a")
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 64
    assert model.generation_config.do_sample is True
    chat = [{"role": "user", "content": "Round 1 of 5."}, {"role": "assistant", "content": "ANSWER: blue"}]
    out = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    # the assistant mask covers the answer and the end-of-turn token (so the model learns to stop)
    assert tokenizer.decode(trained) == "ANSWER: blue<|im_end|>"
    with torch.no_grad():
        logits = model(torch.tensor([out["input_ids"]])).logits
    assert logits.shape == (1, len(out["input_ids"]), len(tokenizer))


def test_bad_arguments_are_usage_errors(tmp_path, capsys):
    assert main(["init-model", str(tmp_path / "m"), "--hidden", "66", "--heads", "4"]) == 2
    assert "hidden (66) must be a multiple of heads (4)" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert main(["init-model", str(tmp_path / "full")]) == 2
    assert "not an empty directory" in capsys.readouterr().err


def test_format_warmup_teaches_the_answer_line(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agents.llm import parse_answer
    from finetune.init_model import format_examples
    from scenarios import get_framing

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    torch.manual_seed(0)
    starts = 0
    for chat in format_examples(8, seed=123):  # prompts the warm-up never saw
        inputs = tokenizer.apply_chat_template(chat[:-1], add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)
        output = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        text = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        starts += text.startswith("ANSWER:")
    assert starts >= 6
