"""A tiny causal LM built entirely on this machine: no weights or tokenizers from any hub.

`init_model(directory)` writes a randomly initialised (seeded) Llama-architecture model, a
byte-level BPE tokenizer trained here on a built-in corpus (the framings' own texts, so the
scenario prompts tokenize compactly), a ChatML chat template with `{% generation %}` markers
(TRL's assistant-only loss) and a generation config that samples. The result is an ordinary
`save_pretrained` directory: `transformers serve` can serve it, the `hf` backend can fine-tune
it, and the whole text loop runs on a CPU in seconds.

Deterministic: the same arguments give byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scenarios import ConfigError

IM_START, IM_END, EOS = "<|im_start|>", "<|im_end|>", "<|endoftext|>"

# ChatML; the assistant's content and its end-of-turn token sit inside {% generation %} so
# that TRL's assistant-only loss trains the model both to answer and to stop.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@dataclass(frozen=True)
class TinyModelConfig:
    """Shape of the tiny model `regret init-model` builds."""

    layers: int = field(default=2, metadata={"help": "number of transformer layers"})
    hidden: int = field(default=64, metadata={"help": "hidden size (a multiple of heads)"})
    heads: int = field(default=4, metadata={"help": "attention heads"})
    vocab_size: int = field(default=2048, metadata={"help": "BPE vocabulary size (including 256 byte tokens)"})
    max_positions: int = field(default=8192, metadata={"help": "longest sequence the model accepts"})
    max_new_tokens: int = field(default=48, metadata={"help": "generation_config default completion length"})
    seed: int = field(default=0, metadata={"help": "seed of the random initialisation and the warm-up"})
    format_steps: int = field(default=150, metadata={
        "help": "optimiser steps teaching the answer format ('ANSWER: <k>', a uniformly random position) "
                "on prompts like the LLM agent's; 0 leaves the model random (every answer invalid)"})

    def __post_init__(self) -> None:
        for name in ("layers", "hidden", "heads", "max_positions", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"init-model: {name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads or (self.hidden // self.heads) % 2:
            raise ConfigError(
                f"init-model: hidden ({self.hidden}) must be a multiple of heads ({self.heads}) "
                "with an even head size"
            )
        if self.vocab_size < 300:
            raise ConfigError(f"init-model: vocab_size must be >= 300 (256 bytes + merges), got {self.vocab_size}")
        if self.format_steps < 0:
            raise ConfigError(f"init-model: format_steps must be >= 0, got {self.format_steps}")
        if self.seed < 0:
            raise ConfigError(f"init-model: seed must be >= 0, got {self.seed}")


def builtin_corpus() -> list[str]:
    """Texts the tokenizer is trained on: every framing's description, rounds, feedback and answers."""
    from scenarios import list_framings, make
    from scenarios.framing import ANSWER_PREFIX, KINDS, get_framing

    instances = [
        make("bandit/bernoulli", {"n_arms": 5, "horizon": 100}),
        make("bandit/gaussian", {"n_arms": 5, "horizon": 100}),
        make("bandit/nonstationary", {"n_arms": 3, "horizon": 200}),
        make("contextual/linear", {"n_arms": 4, "horizon": 100, "dim": 3}),
        make("experts/full-info", {"n_experts": 5, "horizon": 50}),
    ]
    texts: list[str] = []
    for name in list_framings():
        fr = get_framing(name)
        for env in instances:
            texts.append(fr.describe(env))
        for kind in KINDS:
            texts.append(fr.answer_instructions(kind, reasoning=True, n_options=5))
            texts.append(fr.answer_instructions(kind, reasoning=False, n_options=5))
        for t in range(0, 100, 7):
            action = t % 5
            texts.append(fr.round_text(t, 100))
            texts.append(fr.feedback_text(t, action=action, feedback={"reward": (t % 3) / 2}))
            texts.append(fr.feedback_text(t, action=action, feedback={"losses": [((t + i) % 10) / 10 for i in range(5)]}))
            texts.append(f"I will {fr.choose_verb} {fr.phrase(action)}.\n{ANSWER_PREFIX} {fr.option_name(action)}")
        texts.append(fr.summary_text("bandit", 3, [2, 0, 1], [0.5, None, 1.0]))
    texts.append(" ".join(str(i) for i in range(1000)))
    texts.append("0.1 0.25 0.5 0.75 -0.3 1.0 [0.7, 0.3] {\"A\": 0.5, \"B\": 0.5}")
    return texts


def build_tokenizer(vocab_size: int = 2048):
    """A byte-level BPE tokenizer trained on `builtin_corpus()`, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(builtin_corpus(), trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,  # generation stops at the end of the assistant's turn
        pad_token=EOS,
        bos_token=None,
        unk_token=None,
        additional_special_tokens=[IM_START],
        model_max_length=8192,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def init_model(directory: str | Path, config: TinyModelConfig | None = None, **overrides) -> Path:
    """Write a tiny model, tokenizer and generation config to `directory` (created; must be empty)."""
    if config is not None and overrides:
        raise TypeError("init_model: pass a TinyModelConfig or keyword overrides, not both")
    config = config or TinyModelConfig(**overrides)
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigError(f"init-model: {directory} exists and is not an empty directory")

    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(config.vocab_size)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden,
        intermediate_size=2 * config.hidden,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=config.max_positions,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(config.seed)
    try:
        model = LlamaForCausalLM(model_config)
        if config.format_steps:
            _teach_format(model, tokenizer, config.format_steps, config.seed)
    finally:
        torch.random.set_rng_state(generator_state)  # leave the caller's random stream untouched
    model.generation_config = GenerationConfig(
        do_sample=True,  # `transformers serve` honours temperature only when sampling is on
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        max_new_tokens=config.max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "regret_init.json").write_text(json.dumps(asdict(config), indent=2, sort_keys=True) + "\n")
    return directory


def format_examples(count: int, seed: int = 0) -> list[list[dict[str, str]]]:
    """Chats like the LLM agent's single-turn prompts (random framing, scenario and history),
    each answered with a bare `ANSWER: <k>` line naming a uniformly random valid option by position."""
    import random

    from agents import EpisodeInfo
    from agents.llm._prompts import EpisodePrompts
    from scenarios import list_framings, make
    from scenarios.framing import ANSWER_PREFIX, get_framing

    rng = random.Random(seed)
    framings = list_framings()
    chats = []
    for j in range(count):
        framing = get_framing(rng.choice(framings))
        n, horizon = rng.randint(2, 5), rng.choice((5, 10, 20, 50, 100))
        env = make("bandit/bernoulli", {"n_arms": n, "horizon": horizon}, j)
        env.reset(j)
        info = EpisodeInfo(env.family, env.kind, env.feedback, n, horizon, False, f"warmup-{j}", "warmup", 0, j,
                           framing.name, framing.describe(env))
        prompts = EpisodePrompts(info, framing, history=rng.choice(("full", "summary")), reasoning=rng.random() < 0.5)
        for t in range(rng.randint(0, min(4, horizon - 1))):
            action = rng.randrange(n)
            step = env.step(action)
            prompts.record(t, action, None, {"reward": step.reward}, None, "")
        t = len(prompts.rounds)
        messages = prompts.messages(t)
        # the 1-based position ("ANSWER: 2") is a valid answer in every framing, so a model this small
        # answers validly without having to copy option names from the prompt
        messages.append({"role": "assistant", "content": f"{ANSWER_PREFIX} {rng.randrange(n) + 1}"})
        chats.append(messages)
    return chats


def _teach_format(model, tokenizer, steps: int, seed: int, batch_size: int = 8, lr: float = 3e-3) -> None:
    """A few full-model steps on `format_examples`, loss on the assistant's answer only.

    Without it the random model never answers validly, every trajectory is dropped as invalid,
    and the loop has nothing to train on.
    """
    import torch

    chats = format_examples(max(batch_size * 8, 64), seed)
    encoded = []
    for chat in chats:
        out = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        ids = torch.tensor(out["input_ids"])
        labels = torch.where(torch.tensor(out["assistant_masks"]) == 1, ids, torch.tensor(-100))
        encoded.append((ids, labels))
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    order = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        picks = torch.randint(len(encoded), (batch_size,), generator=order).tolist()
        width = max(len(encoded[i][0]) for i in picks)
        ids = torch.full((batch_size, width), tokenizer.pad_token_id)
        labels = torch.full((batch_size, width), -100)
        mask = torch.zeros((batch_size, width), dtype=torch.long)
        for row, i in enumerate(picks):
            n = len(encoded[i][0])
            ids[row, :n], labels[row, :n], mask[row, :n] = encoded[i][0], encoded[i][1], 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    model.eval()


def init_from_package(source: str, directory: str | Path, *, log=None) -> Path:
    """Write packaged model `source` (e.g. "smollm2") as an fp32 HF checkpoint in `directory`,
    with its GGUF kept beside it (`model.gguf`) for llama.cpp; checked before anything is written."""
    from finetune._gguf import INIT_RECORD, gguf_to_checkpoint, model_source, packaged_gguf, sha256

    info = model_source(source)
    gguf_path = packaged_gguf(source)
    directory = Path(directory)
    gguf_to_checkpoint(gguf_path, directory, log=log)  # needs gguf; refuses a non-empty directory before reading anything
    record = {"source": source, "distribution": info.distribution, "version": info.version, "file": info.filename,
              "sha256": sha256(gguf_path), "license": info.license, "description": info.description}
    (directory / INIT_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return directory
