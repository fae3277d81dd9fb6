"""The `unsloth` backend: the `hf` backend's contract through unsloth's FastLanguageModel on an NVIDIA GPU.

unsloth is an optional extra (`pip install 'regret-harness[unsloth]'`), imported only inside
`fit`, after the GPU check: on a machine without CUDA `import unsloth` fails (and its
torchvision can break transformers), so `fit` refuses at once with a message naming the `hf`
backend, which trains the same LoRA on a CPU. Data, masking, per-example weights, outputs and
serving are the `hf` backend's (`finetune.backends.hf`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from finetune._backend import BackendConfig, BackendError
from finetune.backends.hf import HFBackend, HFConfig, linear_targets


@dataclass
class UnslothConfig(HFConfig):
    """HFConfig plus unsloth's loading options."""

    load_in_4bit: bool = field(default=False, metadata={"help": "load the base in 4-bit (QLoRA)"})
    max_seq_length: int = field(default=2048, metadata={"help": "FastLanguageModel max_seq_length"})
    use_gradient_checkpointing: str | bool = field(default="unsloth", metadata={
        "help": "unsloth's gradient checkpointing ('unsloth', True or False)"})
    bf16: bool | None = field(default=None, metadata={"help": "bfloat16 (None: when the GPU supports it)"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (None: torch's default)"})


def require_cuda() -> None:
    """Fail at once, naming the `hf` backend, where no NVIDIA GPU is usable."""
    try:
        import torch
    except ImportError:
        raise BackendError("the unsloth backend needs torch and an NVIDIA GPU; on this machine use the hf "
                           "backend (--backend hf), which trains the same LoRA on a CPU") from None
    if not torch.cuda.is_available():
        raise BackendError("the unsloth backend needs an NVIDIA GPU with CUDA, and none is available here; "
                           "use the hf backend (--backend hf), which trains the same LoRA on a CPU")


class UnslothBackend(HFBackend):
    name: ClassVar[str] = "unsloth"
    Config: ClassVar[type[BackendConfig]] = UnslothConfig

    def fit(self, base, dataset, config):
        require_cuda()
        try:
            import unsloth  # noqa: F401  (must come before transformers/trl are used: it patches them)
        except ImportError as exc:
            raise BackendError(f"the unsloth backend needs the unsloth package ({exc}); install it with "
                               "pip install 'regret-harness[unsloth]', or use the hf backend") from None
        if not isinstance(config, UnslothConfig):
            raise BackendError(f"the unsloth backend needs an UnslothConfig, got {type(config).__name__}")
        return self._fit(base, dataset, config)

    def _use_cpu(self, config) -> bool:
        return False

    def _load_model(self, base_dir: str, config: UnslothConfig):
        import torch
        from unsloth import FastLanguageModel

        bf16 = torch.cuda.is_bf16_supported() if config.bf16 is None else config.bf16
        config.bf16 = bf16
        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=base_dir, max_seq_length=config.max_seq_length, load_in_4bit=config.load_in_4bit,
            dtype=torch.bfloat16 if bf16 else torch.float16)
        # unsloth applies LoRA itself (its fused kernels); the trainer then gets no peft_config
        model = FastLanguageModel.get_peft_model(
            model, r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
            target_modules=linear_targets(config.target_modules), bias="none",
            use_gradient_checkpointing=config.use_gradient_checkpointing, random_state=config.seed)
        return model, tokenizer

    def _save_merged(self, trained, tokenizer, merged_dir) -> None:
        # unsloth dequantises 4-bit bases while merging; plain merge_and_unload would not
        trained.save_pretrained_merged(str(merged_dir), tokenizer, save_method="merged_16bit")
