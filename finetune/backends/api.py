"""The `api` backend: a closed model's supervised fine-tuning API through litellm's provider-neutral calls.

`fit(base, dataset, config)` writes the examples as OpenAI fine-tuning JSONL
(`<output_dir>/train.jsonl`), uploads it (`litellm.create_file`, purpose "fine-tune"), creates
the job (`litellm.create_fine_tuning_job`), polls it (`litellm.retrieve_fine_tuning_job`) with
exponential backoff until it succeeds, fails or is cancelled, and returns the new model's name
as the checkpoint (agent `<provider>/<fine_tuned_model>`), as the paper did with GPT-4o mini.
A failed or cancelled job raises with the job's own error message.

The API key is read from the environment variable named by `api_key_env` at call time and is
never written anywhere: `job.json` holds the job's id, status and model name only.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from finetune._backend import BackendConfig, BackendError, BaseBackend, Checkpoint, TrainingSet

TERMINAL_FAILURES = ("failed", "cancelled")


@dataclass
class APIConfig(BackendConfig):
    """Settings of a hosted fine-tuning job."""

    provider: str = field(default="openai", metadata={"help": "litellm provider: openai, azure, vertex_ai"})
    api_base: str | None = field(default=None, metadata={"help": "provider base URL (None: the provider's)"})
    api_key_env: str | None = field(default="OPENAI_API_KEY", metadata={
        "help": "name of the environment variable holding the API key (the key itself is never stored)"})
    suffix: str | None = field(default="regret", metadata={"help": "suffix of the fine-tuned model's name"})
    epochs: int | None = field(default=None, metadata={"help": "n_epochs hyper-parameter (None: the provider's)"})
    batch_size: int | None = field(default=None, metadata={"help": "batch_size hyper-parameter"})
    learning_rate_multiplier: float | None = field(default=None, metadata={"help": "learning_rate_multiplier"})
    poll_initial_s: float = field(default=5.0, metadata={"help": "first wait between status polls"})
    poll_max_s: float = field(default=60.0, metadata={"help": "longest wait between polls (doubles up to it)"})
    timeout_s: float = field(default=6 * 3600.0, metadata={"help": "give up waiting after this long"})

    def __post_init__(self) -> None:
        if self.poll_initial_s <= 0 or self.poll_max_s < self.poll_initial_s or self.timeout_s <= 0:
            raise BackendError("APIConfig: need 0 < poll_initial_s <= poll_max_s and timeout_s > 0")


def _strip_provider(base: str, provider: str) -> str:
    return base[len(provider) + 1:] if base.startswith(provider + "/") else base


class APIBackend(BaseBackend):
    name: ClassVar[str] = "api"
    Config: ClassVar[type[BackendConfig]] = APIConfig

    def fit(self, base: str, dataset: TrainingSet | str | Path, config: BackendConfig) -> Checkpoint:
        if not isinstance(config, APIConfig):
            raise BackendError(f"the api backend needs an APIConfig, got {type(config).__name__}")
        import litellm

        from finetune._text_data import chat_examples, write_openai_jsonl

        out = Path(config.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        examples = chat_examples(dataset)
        train_path = write_openai_jsonl(examples, out / "train.jsonl")
        connection: dict[str, Any] = {"custom_llm_provider": config.provider}
        if config.api_base:
            connection["api_base"] = config.api_base
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise BackendError(f"the api backend reads the API key from ${config.api_key_env}, which is not set")
            connection["api_key"] = key
        started = time.monotonic()
        try:
            with train_path.open("rb") as handle:
                uploaded = litellm.create_file(file=(train_path.name, handle), purpose="fine-tune", **connection)
            hyper = {k: v for k, v in (("n_epochs", config.epochs), ("batch_size", config.batch_size),
                                       ("learning_rate_multiplier", config.learning_rate_multiplier)) if v is not None}
            model = _strip_provider(base, config.provider)
            job = litellm.create_fine_tuning_job(model=model, training_file=uploaded.id, hyperparameters=hyper,
                                                 suffix=config.suffix, seed=config.seed, **connection)
            record = {"job_id": job.id, "file_id": uploaded.id, "base": model, "status": job.status}
            self._record(out, record)
            delay = config.poll_initial_s
            while job.status not in ("succeeded", *TERMINAL_FAILURES):
                if time.monotonic() - started > config.timeout_s:
                    raise BackendError(f"fine-tuning job {job.id} still {job.status!r} after {config.timeout_s:g} s")
                time.sleep(delay)
                delay = min(delay * 2, config.poll_max_s)
                job = litellm.retrieve_fine_tuning_job(fine_tuning_job_id=job.id, **connection)
                self._record(out, {**record, "status": job.status})
        except BackendError:
            raise
        except Exception as exc:  # provider errors: one clear line, never the key
            raise BackendError(f"fine-tuning API call failed: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        if job.status != "succeeded":
            error = getattr(job, "error", None)
            message = (error.get("message") if isinstance(error, dict) else getattr(error, "message", None)) or "no message"
            self._record(out, {**record, "status": job.status, "error": message})
            raise BackendError(f"fine-tuning job {job.id} {job.status}: {message}")
        name = job.fine_tuned_model
        if not name:
            raise BackendError(f"fine-tuning job {job.id} succeeded but names no fine_tuned_model")
        self._record(out, {**record, "status": job.status, "fine_tuned_model": name})
        params = {"api_base": config.api_base} if config.api_base else {}
        if config.api_key_env:
            params["api_key_env"] = config.api_key_env
        metrics = {"train_loss": float("nan"), "examples": float(len(examples)),
                   "trained_tokens": float(getattr(job, "trained_tokens", None) or float("nan")),
                   "fit_s": time.monotonic() - started}
        return Checkpoint(name, f"{config.provider}/{name}", self.name, params, metrics)

    @staticmethod
    def _record(out: Path, record: dict[str, Any]) -> None:
        (out / "job.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
