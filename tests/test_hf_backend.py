import json

import pytest

from finetune.backends import get_backend, make_config
from finetune._backend import BackendError
from tests._tiny_model import tiny_model  # noqa: F401  (fixture)

pytest.importorskip("trl")
pytest.importorskip("peft")

SYSTEM = {"role": "system", "content": "There are 3 buttons: blue, green, red. The game lasts 5 rounds."}
USER = {"role": "user", "content": "Round 1 of 5."}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _logprob(model_dir, answer):
    """log p(answer | the shared prompt) under the checkpoint in model_dir."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finetune.backends.hf import encode_example

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids, labels = encode_example(tokenizer, [SYSTEM, USER, {"role": "assistant", "content": answer}])
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
    targets = torch.tensor(labels[1:])
    keep = targets != -100
    return float(logits[keep].gather(1, targets[keep].unsqueeze(1)).sum())


def _fit(base, dataset, out, **settings):
    backend = get_backend("hf")
    config = make_config(backend, {"max_steps": 20, "learning_rate": 1e-2, "lr_scheduler_type": "constant",
                                     "batch_size": 2, **settings},
                         output_dir=str(out), seed=0)
    return backend.fit(str(base), dataset, config)


def test_only_assistant_tokens_carry_loss(tiny_model):
    from transformers import AutoTokenizer

    from finetune.backends.hf import encode_example

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    chat = [SYSTEM, USER, {"role": "assistant", "content": "ANSWER: blue", "train": False},
            {"role": "user", "content": "The answer is incorrect. Please try again."},
            {"role": "assistant", "content": "ANSWER: green"}]
    ids, labels = encode_example(tokenizer, chat)
    assert len(ids) == len(labels)
    assert tokenizer.decode([t for t in labels if t != -100]) == "ANSWER: green<|im_end|>"
    _, all_turns = encode_example(tokenizer, [{**m, "train": True} if m["role"] == "assistant" else m for m in chat])
    assert tokenizer.decode([t for t in all_turns if t != -100]) == "ANSWER: blue<|im_end|>ANSWER: green<|im_end|>"
    _, everything = encode_example(tokenizer, chat, assistant_only=False)
    assert everything == ids


def test_weighted_loss_on_kept_positions_equals_the_full_logits_loss(tiny_model):
    """Logits only at trained positions: the same loss (and gradients) as over every position."""
    import torch
    from transformers import AutoModelForCausalLM

    from finetune.backends.hf import weighted_loss

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    ids = torch.randint(3, model.config.vocab_size, (3, 12))
    labels = torch.full_like(ids, -100)
    labels[0, 9:] = ids[0, 9:]  # trained tokens at different positions per example
    labels[1, 4:7] = ids[1, 4:7]
    labels[2, 11] = ids[2, 11]
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0  # right padding
    weights = torch.tensor([1.0, 0.5, 2.0])
    loss, _ = weighted_loss(model, ids, mask, labels, weights)
    loss.backward()
    fast = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    targets = labels[:, 1:]
    token = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-100, reduction="none")
    reference = (token * (targets != -100) * weights[:, None]).sum() / (targets != -100).sum()
    reference.backward()
    assert abs(loss.item() - reference.item()) < 1e-5
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(fast, model.parameters()))


def test_fit_changes_weights_and_saves_adapter_and_merged_checkpoint(tiny_model, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    rows = [{"messages": [SYSTEM, USER, {"role": "assistant", "content": "ANSWER: green"}]}] * 4
    checkpoint = _fit(tiny_model, _write(tmp_path / "d.jsonl", rows), tmp_path / "ck")
    merged = tmp_path / "ck" / "merged"
    assert checkpoint.path == str(merged.resolve()) and checkpoint.agent == f"openai/{merged.resolve()}"
    assert checkpoint.backend == "hf" and checkpoint.metrics["examples"] == 4
    assert checkpoint.metrics["train_loss"] > 0 and checkpoint.metrics["steps"] == 20
    assert (tmp_path / "ck" / "adapter" / "adapter_config.json").exists()
    assert json.loads((tmp_path / "ck" / "training.json").read_text())["metrics"]["examples"] == 4
    before, after = load_file(tiny_model / "model.safetensors"), load_file(merged / "model.safetensors")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all("proj" in k for k in changed)  # LoRA targets only
    AutoModelForCausalLM.from_pretrained(merged)  # the merged checkpoint loads on its own
    assert _logprob(merged, "ANSWER: green") > _logprob(tiny_model, "ANSWER: green") + 0.5


def test_example_weights_decide_what_is_learned(tiny_model, tmp_path):
    def fit(w_green, w_red, name):
        rows = [{"messages": [SYSTEM, USER, {"role": "assistant", "content": "ANSWER: green"}], "weight": w_green},
                {"messages": [SYSTEM, USER, {"role": "assistant", "content": "ANSWER: red"}], "weight": w_red}]
        return _fit(tiny_model, _write(tmp_path / f"{name}.jsonl", rows), tmp_path / name).path

    def preference(model_dir):  # how much more likely green is than red
        return _logprob(model_dir, "ANSWER: green") - _logprob(model_dir, "ANSWER: red")

    base = preference(tiny_model)
    green, red = fit(1.0, 0.0, "green"), fit(0.0, 1.0, "red")
    assert preference(green) > base + 0.5
    assert preference(red) < base - 0.5


def test_clear_errors(tiny_model, tmp_path):
    backend = get_backend("hf")
    with pytest.raises(BackendError, match="unknown setting 'lora_rank'; did you mean 'lora_r'"):
        make_config(backend, {"lora_rank": 4})
    with pytest.raises(ValueError, match="no assistant turn"):
        _fit(tiny_model, _write(tmp_path / "x.jsonl", [{"messages": [SYSTEM, USER]}]), tmp_path / "x")
    with pytest.raises(ValueError, match="weight must be a finite number >= 0"):
        rows = [{"messages": [SYSTEM, USER, {"role": "assistant", "content": "A"}], "weight": -1}]
        _fit(tiny_model, _write(tmp_path / "w.jsonl", rows), tmp_path / "w")
    with pytest.raises(BackendError, match="regret init-model"):
        backend.initial_checkpoint("openai/gpt-4o-mini", {}, None, tmp_path / "c0")
    start = backend.initial_checkpoint(f"openai/{tiny_model}", {"temperature": 1.0}, None, tmp_path / "c0")
    assert start.path == str(tiny_model.resolve()) and start.params == {"temperature": 1.0}


def test_cached_frozen_layers_train_the_same_adapter(tiny_model, tmp_path):
    """top_layers with the frozen layers' outputs cached gives the adapter a full pass gives."""
    import torch
    from safetensors.torch import load_file

    # answers of different lengths, so batches are padded (the cached states are padded the same way)
    rows = [{"messages": [SYSTEM, USER, {"role": "assistant", "content": f"ANSWER: {colour}"}]}
            for colour in ("green", "red, because it paid most so far", "blue", "green then red", "green")]
    data = _write(tmp_path / "d.jsonl", rows)
    runs = {}
    for cached in (True, False):
        out = tmp_path / f"ck-{cached}"
        checkpoint = _fit(tiny_model, data, out, top_layers=1, max_steps=6, cache_frozen_layers=cached)
        assert checkpoint.metrics["cached_frozen_layers"] == (1 if cached else 0)
        runs[cached] = (load_file(out / "adapter" / "adapter_model.safetensors"), checkpoint.metrics["train_loss"])
    (with_cache, loss_cached), (without, loss_full) = runs[True], runs[False]
    assert with_cache.keys() == without.keys() and all(".1." in key for key in with_cache)  # top layer only
    assert all(torch.allclose(with_cache[k], without[k], atol=1e-5) for k in with_cache)
    assert abs(loss_cached - loss_full) < 1e-5
    assert any(not torch.equal(with_cache[k], torch.zeros_like(with_cache[k])) for k in with_cache)
