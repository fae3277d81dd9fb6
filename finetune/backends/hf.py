"""The `hf` backend: LoRA supervised fine-tuning with transformers + peft + TRL, on a CPU or a GPU.

`fit(base, dataset, config)` trains a LoRA adapter on chat examples (`finetune._text_data`):

- loss on assistant turns only (`assistant_only_loss`): the mask comes from the chat
  template's `{% generation %}` markers, exactly as TRL builds it (a known template without
  markers is patched with TRL's training template); assistant turns marked `"train": false`
  (RISE's earlier attempts) are masked too;
- per-example weights (`weight`, RISE's exp(reward / tau)): TRL's SFTTrainer has no such
  option, so `WeightedSFTTrainer.compute_loss` scales each example's token losses by its weight
  (normalised by the number of trained tokens, as TRL does);
- the adapter goes to `<output_dir>/adapter`, the merged model (what gets served) to
  `<output_dir>/merged`; both are new directories, so a running `transformers serve` picks the
  new checkpoint up by path with no restart;
- when the base has a GGUF beside it (`regret init-model --from smollm2`, or an earlier fit's
  export), the merged model is exported as `<merged>/model.gguf` too (q8_0 by default), so a
  running llama.cpp server plays it by path.

The checkpoint is played through litellm as `openai/<merged path>` (llama.cpp: `openai/<merged
path>/model.gguf`) against ONE local server for the whole loop, which `serving(workdir, first)`
starts and stops (`finetune.serve`); its engine comes from `REGRET_SERVE_ENGINE` (default auto).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from agents import AgentSpec
from finetune._backend import BackendConfig, BackendError, BaseBackend, Checkpoint, Serving, TrainingSet

# litellm prefixes under which a local checkpoint directory may be named
_LOCAL_PREFIXES = ("openai/", "hosted_vllm/", "huggingface/")


@dataclass
class HFConfig(BackendConfig):
    """LoRA SFT settings (TRL names where TRL has one)."""

    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA path"})
    target_modules: Any = field(default="all-linear", metadata={
        "help": "modules that get adapters: 'all-linear' or a list of names (q_proj, v_proj, ...)"})
    top_layers: int | None = field(default=None, metadata={
        "help": "adapters only in the last N transformer layers (None: every layer); on a CPU the backward "
                "pass then stops N layers down, a large saving for a 30-layer model"})
    cache_frozen_layers: bool = field(default=True, metadata={
        "help": "with top_layers: run the frozen layers below the adapters once per example and train from their "
                "cached outputs (the same loss, checked on the first example; on a CPU the frozen layers' forward "
                "pass is most of a fit's time, every epoch)"})
    learning_rate: float = field(default=2e-4, metadata={"help": "peak learning rate"})
    lr_scheduler_type: str = field(default="linear", metadata={"help": "transformers scheduler name"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the dataset (ignored when max_steps > 0)"})
    max_steps: int = field(default=-1, metadata={"help": "optimiser steps; > 0 overrides epochs"})
    batch_size: int = field(default=4, metadata={"help": "examples per device and step"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimiser step"})
    max_length: int | None = field(default=2048, metadata={"help": "truncate longer examples (keep the start)"})
    assistant_only_loss: bool = field(default=True, metadata={"help": "train on assistant tokens only"})
    merge: bool = field(default=True, metadata={"help": "also save the adapter merged into the base (served)"})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 mixed precision (slow on CPUs)"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory (slow on CPUs)"})
    threads: int | None = field(default=1, metadata={"help": "torch CPU threads while training (None: torch's default)"})
    device: str = field(default="auto", metadata={"help": "'auto' (GPU when available) or 'cpu'"})
    logging_steps: int = field(default=1, metadata={"help": "log the loss every N steps"})
    gguf: str = field(default="auto", metadata={
        "help": "export the merged model as model.gguf for llama.cpp: 'auto' (q8_0 when the base has a GGUF), "
                "'none', or a tensor type (f32, f16, q8_0)"})

    def __post_init__(self) -> None:
        checks = [("lora_r", self.lora_r >= 1), ("lora_alpha", self.lora_alpha > 0),
                  ("lora_dropout", 0 <= self.lora_dropout < 1), ("learning_rate", self.learning_rate > 0),
                  ("epochs", self.epochs > 0), ("batch_size", self.batch_size >= 1),
                  ("gradient_accumulation_steps", self.gradient_accumulation_steps >= 1),
                  ("max_length", self.max_length is None or self.max_length >= 8),
                  ("threads", self.threads is None or self.threads >= 1), ("logging_steps", self.logging_steps >= 1),
                  ("device", self.device in ("auto", "cpu", "cuda")), ("seed", self.seed >= 0),
                  ("top_layers", self.top_layers is None or self.top_layers >= 1),
                  ("gguf", self.gguf in ("auto", "none", "f32", "f16", "q8_0"))]
        for name, ok in checks:
            if not ok:
                raise BackendError(f"{type(self).__name__}: invalid {name} {getattr(self, name)!r}")
        if isinstance(self.target_modules, list):
            self.target_modules = tuple(self.target_modules)


def local_model_dir(name: str) -> Path | None:
    """The checkpoint directory `name` refers to (a path, or `openai/<path>`), or None."""
    if not name:
        return None
    candidates = [name] + [name[len(p):] for p in _LOCAL_PREFIXES if name.startswith(p)]
    for candidate in candidates:
        path = Path(candidate).expanduser()
        if (path / "config.json").is_file():
            return path.resolve()
    return None


def _require(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise BackendError(f"the hf backend needs {module!r}; install it with pip install 'regret-harness[finetune]'")


# --- tokenisation ------------------------------------------------------------------------
def training_template(tokenizer) -> str | None:
    """A chat template with generation markers: the tokenizer's own, or TRL's training template."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if tokenizer.chat_template and has_generation_markers(tokenizer.chat_template):
        return None
    try:
        patched = get_training_chat_template(tokenizer)
    except Exception as exc:  # TRL raises for templates it does not know
        raise BackendError(
            "the base model's chat template has no {% generation %} markers and TRL has no training template "
            f"for it ({exc}); set assistant_only_loss=False or give the tokenizer a template with markers") from None
    return patched


def encode_example(tokenizer, messages: list[dict], assistant_only: bool = True,
                   chat_template: str | None = None) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 where no loss) of one chat.

    With `assistant_only`, labels keep the tokens inside the template's generation blocks; the
    j-th contiguous block is the j-th assistant message, masked too when that message has
    `"train": false`.
    """
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    out = tokenizer.apply_chat_template(plain, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=assistant_only,
                                        **({"chat_template": chat_template} if chat_template else {}))
    ids = list(out["input_ids"])
    if not assistant_only:
        return ids, list(ids)
    mask = list(out["assistant_masks"])
    trainable = [m.get("train", True) for m in messages if m["role"] == "assistant"]
    labels, block, inside = [], -1, False
    for token, bit in zip(ids, mask):
        if bit and not inside:
            block += 1
        inside = bool(bit)
        keep = inside and (trainable[block] if block < len(trainable) else True)
        labels.append(token if keep else -100)
    return ids, labels


# --- the weighted trainer ----------------------------------------------------------------
def weighted_loss(model, input_ids, attention_mask, labels, weights=None, num_items_in_batch=None,
                  inputs_embeds=None):
    """Mean token loss over the trained tokens (labels != -100), each example's scaled by its weight.

    Logits are computed only where some example's next token is trained: the vocabulary
    projection (a fifth of a small model's forward pass) and the softmax then skip the prompt.
    With `inputs_embeds` (a `FrozenLayerCache` batch), the model is the top layers only and
    starts from them instead of `input_ids`. Returns (loss, model outputs).
    """
    import torch

    positions = (labels[:, 1:] != -100).any(0).nonzero().squeeze(1)
    given = {"input_ids": input_ids} if inputs_embeds is None else {"inputs_embeds": inputs_embeds}
    outputs = model(**given, attention_mask=attention_mask, use_cache=False, logits_to_keep=positions)
    logits = outputs.logits.float()
    targets = labels[:, 1:][:, positions]
    token_loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100, reduction="none"
    ).view_as(targets)
    trained = (targets != -100).to(token_loss.dtype)
    if weights is not None:
        trained = trained * weights.to(token_loss.dtype).unsqueeze(1)
    count = (targets != -100).sum() if num_items_in_batch is None else num_items_in_batch
    loss = (token_loss * trained).sum() / torch.as_tensor(count, device=token_loss.device).clamp(min=1)
    return loss, outputs


_TRAINER_CLASS = None


def weighted_trainer_class():
    """SFTTrainer whose loss weights each example's token losses by its `weight` column."""
    global _TRAINER_CLASS
    if _TRAINER_CLASS is not None:
        return _TRAINER_CLASS
    from trl import SFTTrainer

    class WeightedSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            cache = getattr(self, "frozen_layer_cache", None)
            embeds = None if cache is None else cache.batch(inputs["example"], inputs["input_ids"].shape[1])
            loss, outputs = weighted_loss(model, inputs["input_ids"], inputs.get("attention_mask"), inputs["labels"],
                                          inputs.get("weight"), num_items_in_batch, embeds)
            return (loss, outputs) if return_outputs else loss

    _TRAINER_CLASS = WeightedSFTTrainer
    return WeightedSFTTrainer


class _Stop(Exception):
    """Raised by the hook that reads the frozen layers' output: nothing above them needs running."""


class FrozenLayerCache:
    """The input of the first adapted layer, per training example, computed once for the whole fit.

    With adapters only in the top layers, everything below them is a fixed function of the
    example's tokens, so it is run once (under no_grad, stopping at the boundary) instead of in
    every epoch; during training the decoder holds only the top layers (`top_only`) and starts
    from the cached states. `matches` checks on one example that this path gives the full
    model's logits (an architecture that transforms `inputs_embeds` further, e.g. by scaling
    them, does not, and the fit then runs the usual way).
    """

    def __init__(self, model, boundary: int) -> None:
        self.decoder = model.get_decoder()
        self.layers = self.decoder.layers
        self.boundary = boundary
        self.states: list[Any] = []

    def boundary_input(self, model, ids: list[int]):
        import torch

        captured = {}

        def hook(module, args, kwargs):
            captured["h"] = (args[0] if args else kwargs["hidden_states"]).detach()
            raise _Stop

        handle = self.layers[self.boundary].register_forward_pre_hook(hook, with_kwargs=True)
        try:
            with torch.no_grad(), contextlib.suppress(_Stop):
                model(input_ids=torch.tensor([ids], device=model.device), use_cache=False)
        finally:
            handle.remove()
        return captured["h"][0]

    def batch(self, indices, length: int):
        import torch

        first = self.states[0]
        out = torch.zeros(len(indices), length, first.shape[-1], dtype=first.dtype)
        for row, index in enumerate(indices.tolist()):
            state = self.states[index][:length]
            out[row, : state.shape[0]] = state  # right padding, as the collator pads input_ids
        return out.to(next(self.layers[0].parameters()).device)

    @contextlib.contextmanager
    def top_only(self):
        import torch

        self.decoder.layers = torch.nn.ModuleList(list(self.layers)[self.boundary:])
        try:
            yield self
        finally:
            self.decoder.layers = self.layers

    def matches(self, model, ids: list[int], state, tolerance: float = 1e-4) -> bool:
        """Whether the top layers started from `state` (ids' cached boundary input) give the full model's logits."""
        import torch

        with torch.no_grad():
            full = model(input_ids=torch.tensor([ids], device=model.device), use_cache=False).logits
            with self.top_only():
                cached = model(inputs_embeds=state[None].to(model.device), use_cache=False).logits
        return bool(torch.allclose(full, cached, atol=tolerance, rtol=tolerance))


class WeightedCollator:
    """TRL's language-modelling collator (padding, labels) plus a `weight` tensor."""

    def __init__(self, pad_token_id: int) -> None:
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        self.inner = DataCollatorForLanguageModeling(pad_token_id=pad_token_id)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = self.inner([{"input_ids": e["input_ids"], "labels": e["labels"]} for e in examples])
        batch["weight"] = torch.tensor([float(e["weight"]) for e in examples], dtype=torch.float32)
        if "example" in examples[0]:  # the row's index into a FrozenLayerCache
            batch["example"] = torch.tensor([int(e["example"]) for e in examples])
        return batch


# --- the backend -------------------------------------------------------------------------
class HFBackend(BaseBackend):
    name: ClassVar[str] = "hf"
    Config: ClassVar[type[BackendConfig]] = HFConfig

    def fit(self, base: str, dataset: TrainingSet | str | Path, config: BackendConfig) -> Checkpoint:
        if not isinstance(config, HFConfig):
            raise BackendError(f"the {self.name} backend needs an {HFConfig.__name__}, got {type(config).__name__}")
        return self._fit(base, dataset, config)

    def _load_model(self, base_dir: str, config: HFConfig):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        return model, tokenizer

    def _use_cpu(self, config: HFConfig) -> bool:
        import torch

        return config.device == "cpu" or not torch.cuda.is_available()

    def _fit(self, base: str, dataset: TrainingSet | str | Path, config: HFConfig) -> Checkpoint:
        for module in ("transformers", "peft", "trl", "datasets"):
            _require(module)
        import torch
        from datasets import Dataset
        from peft import LoraConfig
        from trl import SFTConfig

        from finetune._text_data import chat_examples

        started = time.perf_counter()
        base_dir = local_model_dir(base)
        base_ref = str(base_dir) if base_dir else base
        examples = chat_examples(dataset)
        out = Path(config.output_dir).resolve()
        adapter_dir, merged_dir = out / "adapter", out / "merged"
        for target in (adapter_dir, merged_dir):
            if target.exists() and any(target.iterdir()):
                raise BackendError(f"{target} already holds a checkpoint; fine-tune into a new output_dir")

        threads = torch.get_num_threads()
        if config.threads:
            torch.set_num_threads(config.threads)
        try:
            try:
                model, tokenizer = self._load_model(base_ref, config)
            except OSError as exc:
                raise BackendError(f"cannot load base model {base!r}: {str(exc).splitlines()[0]} "
                                   "(build a local one with `regret init-model DIR`)") from None
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            template = training_template(tokenizer) if config.assistant_only_loss else None
            rows: dict[str, list] = {"input_ids": [], "labels": [], "weight": [], "example": []}
            dropped = 0
            for example in examples:
                ids, labels = encode_example(tokenizer, example["messages"], config.assistant_only_loss, template)
                if config.max_length:
                    ids, labels = ids[: config.max_length], labels[: config.max_length]
                if all(label == -100 for label in labels[1:]):
                    dropped += 1  # nothing left to learn after truncation
                    continue
                rows["input_ids"].append(ids)
                rows["labels"].append(labels)
                rows["weight"].append(example["weight"])
                rows["example"].append(len(rows["example"]))
            if not rows["input_ids"]:
                raise BackendError(f"no example has trainable tokens within max_length={config.max_length}")
            train = Dataset.from_dict(rows)

            args = SFTConfig(
                output_dir=str(out / "trainer"), seed=config.seed, data_seed=config.seed,
                per_device_train_batch_size=config.batch_size,
                gradient_accumulation_steps=config.gradient_accumulation_steps,
                num_train_epochs=config.epochs, max_steps=config.max_steps, learning_rate=config.learning_rate,
                lr_scheduler_type=config.lr_scheduler_type, warmup_steps=0,
                bf16=config.bf16, fp16=False, gradient_checkpointing=config.gradient_checkpointing,
                use_cpu=self._use_cpu(config), logging_steps=config.logging_steps, save_strategy="no",
                report_to=[], disable_tqdm=True, remove_unused_columns=False, max_length=config.max_length,
                assistant_only_loss=False,  # the labels above already carry the assistant mask
                dataloader_num_workers=0, dataset_num_proc=None,
            )
            layers = getattr(model.config, "num_hidden_layers", None)
            top = None
            if config.top_layers and layers:
                top = list(range(max(layers - config.top_layers, 0), layers))
            # peft takes layers_to_transform only with named target modules
            targets = _targets(config.target_modules) if top is None else linear_targets(config.target_modules)
            lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                              target_modules=targets, task_type="CAUSAL_LM", bias="none", layers_to_transform=top)
            trainer = weighted_trainer_class()(model=model, args=args, train_dataset=train,
                                               processing_class=tokenizer,
                                               peft_config=None if hasattr(model, "peft_config") else lora,
                                               data_collator=WeightedCollator(tokenizer.pad_token_id))
            from transformers.trainer_callback import PrinterCallback

            trainer.remove_callback(PrinterCallback)  # the losses go to log_history and training.json
            cache = self._frozen_layer_cache(trainer.model, top, rows["input_ids"], config)
            with cache.top_only() if cache else contextlib.nullcontext():
                trainer.frozen_layer_cache = cache
                result = trainer.train()
            trained = trainer.model
            trained.save_pretrained(adapter_dir)
            tokenizer.save_pretrained(adapter_dir)
            served = adapter_dir
            if config.merge:
                self._save_merged(trained, tokenizer, merged_dir)
                served = merged_dir
                exported = _export_gguf(base_dir, merged_dir, config.gguf)
        finally:
            torch.set_num_threads(threads)
            with contextlib.suppress(OSError):
                (out / "trainer").rmdir()  # the trainer's scratch folder, empty with save_strategy="no"

        metrics = {
            "train_loss": _last_epoch_loss(trainer.state.log_history, result.training_loss),
            "examples": float(len(rows["input_ids"])),
            "dropped_examples": float(dropped),
            "steps": float(result.global_step),
            "trained_tokens": float(sum(sum(1 for x in labels[1:] if x != -100) for labels in rows["labels"])),
            "fit_s": time.perf_counter() - started,
            "cached_frozen_layers": float(cache.boundary if cache else 0),  # layers run once, not every epoch
        }
        if config.merge and exported is not None:
            metrics["gguf_export_s"] = exported
        _write_record(out, base, config, metrics)
        return Checkpoint(str(served), f"openai/{served}", self.name, {}, metrics)

    def _frozen_layer_cache(self, model, top: list[int] | None, examples: list[list[int]],
                            config: HFConfig) -> FrozenLayerCache | None:
        """The cache of the frozen layers' outputs, when adapters sit above frozen layers and the check passes."""
        if not (config.cache_frozen_layers and top and top[0] > 0 and not config.gradient_checkpointing):
            return None
        try:
            cache = FrozenLayerCache(model, top[0])
        except AttributeError:  # no decoder with a `layers` list
            return None
        first = cache.boundary_input(model, examples[0])
        if not cache.matches(model, examples[0], first):
            return None
        cache.states = [first.cpu()] + [cache.boundary_input(model, ids).cpu() for ids in examples[1:]]
        return cache

    def _save_merged(self, trained, tokenizer, merged_dir: Path) -> None:
        merged = trained.merge_and_unload()
        merged.save_pretrained(merged_dir)
        tokenizer.save_pretrained(merged_dir)

    # --- playing checkpoints ---------------------------------------------------------------
    @contextlib.contextmanager
    def serving(self, workdir: str | Path, first: Checkpoint) -> Iterator[Serving]:
        """One local OpenAI-compatible server (started on first use) for every checkpoint of a loop."""
        serving = LocalServing(Path(workdir), first)
        try:
            yield serving
        finally:
            serving.close()

    def initial_checkpoint(self, agent: str, params: Mapping[str, Any], base_model: str | None,
                           output_dir: str | Path, plan: Any = None) -> Checkpoint:
        """Model 0: a local checkpoint directory named by `--base-model` or the agent string."""
        directory = local_model_dir(base_model or "") or local_model_dir(agent)
        if directory is not None:
            return Checkpoint(str(directory), f"openai/{directory}", self.name, dict(params))
        if base_model:  # e.g. a hub id already in the local cache, with the agent served elsewhere
            return Checkpoint(base_model, agent, self.name, dict(params))
        raise BackendError(
            f"the {self.name} backend fine-tunes local checkpoints: name one with --agent openai/<model dir> or "
            f"--base-model DIR (got {agent!r}); build a tiny one with `regret init-model DIR`")


class LocalServing(Serving):
    """Plays local checkpoint directories through one `finetune.serve.ModelServer`.

    The server starts when the first local checkpoint is played (so a loop resumed past its
    last evaluation starts none) and serves every later one by path; only vLLM, which serves
    one model per process, is restarted when the checkpoint changes.
    """

    def __init__(self, workdir: Path, first: Checkpoint) -> None:
        from finetune.serve import ServeConfig

        self.workdir = workdir
        self.config = ServeConfig(engine=os.environ.get("REGRET_SERVE_ENGINE", "auto"),
                                  threads=int(os.environ.get("REGRET_SERVE_THREADS", "1")))
        self.first = first
        self.server = None
        self.finished_cpu_s = 0.0  # CPU of servers already stopped (vLLM restarts)
        self.died: list[str] = []  # how servers that died ended, not yet reported

    def spec(self, checkpoint: Checkpoint) -> AgentSpec:
        from finetune.serve import ModelServer

        directory = local_model_dir(checkpoint.path)
        if directory is None:  # a hosted model or a hub id: played as it is
            return checkpoint.agent_spec()
        self._reap()  # a server that died mid-loop is started again below
        if self.server is not None and not self.server.serves(directory):
            self.close()
        if self.server is None:
            import dataclasses

            from finetune.serve import resolve_engine

            engine = resolve_engine(self.config.engine, directory)
            # transformers serve started without a model loads any checkpoint directory a request names
            pinned = None if engine == "transformers" else directory
            self.server = ModelServer(self.workdir, dataclasses.replace(self.config, engine=engine), checkpoint=pinned)
            self.server.start()
        params = {k: v for k, v in checkpoint.params.items() if k != "api_base"}
        return self.server.agent_spec(directory, **params)

    def cpu_s(self) -> float:
        return self.finished_cpu_s + (self.server.cpu_s() if self.server is not None else 0.0)

    def _reap(self) -> None:
        """Record and drop a server that has died."""
        problem = self.server.exit_problem() if self.server is not None else None
        if problem:
            self.died.append(problem)
            self.close()

    def problem(self) -> str | None:
        self._reap()
        died, self.died = self.died, []
        return "; ".join(died) or None

    def close(self) -> None:
        if self.server is not None:
            self.finished_cpu_s += self.server.cpu_s()
            self.server.stop()
            self.server = None


def _export_gguf(base_dir: Path | None, merged_dir: Path, setting: str) -> float | None:
    """Export `merged_dir` as model.gguf when asked (or, with 'auto', when the base has one); seconds taken."""
    from finetune.serve import GGUF_NAME, gguf_file

    template = gguf_file(base_dir) if base_dir is not None else None
    if setting == "none" or (setting == "auto" and template is None):
        return None
    if template is None:
        raise BackendError(f"gguf={setting!r}: the base {base_dir} has no {GGUF_NAME} whose metadata the export "
                           "copies (convert the base with `regret init-model --from smollm2`)")
    from finetune._gguf import export_gguf

    started = time.perf_counter()
    export_gguf(merged_dir, template, merged_dir / GGUF_NAME, tensor_type="q8_0" if setting == "auto" else setting)
    return time.perf_counter() - started


LLAMA_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def linear_targets(value: Any) -> list[str]:
    """Target module names, with 'all-linear' spelled out as the Llama-family projections."""
    if value == "all-linear":
        return list(LLAMA_LINEAR)
    return [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)


def _targets(value: Any) -> Any:
    if isinstance(value, str):
        return value if value == "all-linear" else [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


def _last_epoch_loss(history: list[dict[str, Any]], fallback: float) -> float:
    """Mean logged training loss over the last epoch (TRL logs `loss` with a fractional `epoch`)."""
    logged = [(float(h["epoch"]), float(h["loss"])) for h in history if "loss" in h and "epoch" in h]
    if not logged:
        return float(fallback) if fallback is not None else math.nan
    last = logged[-1][0]
    window = [loss for epoch, loss in logged if epoch > last - 1.0 + 1e-9] or [logged[-1][1]]
    return sum(window) / len(window)


def _write_record(out: Path, base: str, config: HFConfig, metrics: Mapping[str, float]) -> None:
    import json

    record = {"base": base, "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
              "metrics": dict(metrics)}
    (out / "training.json").write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
