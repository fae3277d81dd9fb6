"""LLMSettings: every per-agent setting of an LLM agent, validated with clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from agents.llm._formats import ANSWER_FORMATS
from agents.llm._prompts import SHUFFLE_MODES
from agents.llm._transport import CLIENTS, direct_problem
from scenarios import ConfigError, unknown_key_message

HISTORY_MODES = ("full", "summary")
# litellm keyword arguments that settings own: in `extra` they would bypass what the agent does with them
_OWNED_EXTRA = {"stream": "stream = true", "stream_options": "stream = true", "response_format": "answer_format = 'json'",
                "tools": "answer_format = 'tool'", "tool_choice": "answer_format = 'tool'",
                "messages": "the scenario's prompts", "model": "agent", "api_base": "api_base"}


def _help(default: Any, text: str) -> Any:
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class LLMSettings:
    """Settings of an LLM agent: from the suite file's agent table, or from `regret run` flags."""

    model: str = _help("", "litellm model string, e.g. openai/gpt-4o-mini, hosted_vllm/NAME, ollama/NAME")
    api_base: str | None = _help(None, "base URL of an OpenAI-compatible server (self-hosted models)")
    api_key_env: str | None = _help(None, "name of the environment variable holding the API key "
                                          "(the key itself never goes in a suite file)")
    temperature: float | None = _help(None, "sampling temperature (None: the provider's default)")
    max_tokens: int | None = _help(None, "maximum completion tokens per call")
    seed: int | None = _help(None, "sampling seed sent to providers that accept one, plus a sample index of "
                                   "its own per task, rollout, round and attempt (answer scenarios: per rollout, "
                                   "turn and sample), so no two draws share a seed")
    system_prompt: str | None = _help(None, "system message (default: a short decision-maker instruction)")
    history: str = _help("full", "history shown to the model: 'full' (every round) or 'summary' "
                                 "(per option: times chosen and mean reward; experts: total loss)")
    framing: str | None = _help(None, "story the scenario is told in (default: the scenario's, else buttons)")
    reasoning: bool = _help(True, "ask for brief reasoning before the final answer (False: the answer alone)")
    multi_turn: bool = _help(False, "play the episode as one growing multi-turn chat instead of one "
                                    "self-contained prompt per round")
    answer_format: str = _help("text", "how the model answers: 'text' (a final 'ANSWER: <name>' line), 'json' "
                                       "(the provider's structured output: a JSON schema whose enum is the option "
                                       "names, or a probability per option for experts) or 'tool' (a forced "
                                       "function call with the same schema)")
    assume_capable: bool = _help(False, "use answer_format json/tool although litellm's model table does not list "
                                        "the model as supporting it (self-hosted models are assumed capable)")
    shuffle_options: bool | str = _help(False, "show the options in a seeded random order: true or 'episode' (one "
                                               "order per episode), 'round' (a fresh order every round, so a listed "
                                               "position tells nothing even within an episode); recorded in each "
                                               "decision's info as option_order; actions stay in the scenario's "
                                               "numbering")
    stream: bool = _help(False, "stream each reply (assembled from the chunks; usage from the final chunk): for "
                                "servers that only stream, or to keep long replies under a proxy's idle timeout")
    max_invalid_retries: int = _help(2, "re-asks with a correction message after an invalid answer, "
                                        "before the recorded uniform-random fallback")
    max_retries: int = _help(6, "retries of a failed provider call (429, 5xx, timeout, malformed response)")
    timeout: float = _help(60.0, "seconds before one provider call times out")
    backoff_base: float = _help(1.0, "first retry delay in seconds; doubles each retry, with full jitter")
    backoff_max: float = _help(60.0, "longest delay between retries (Retry-After included)")
    max_concurrency: int | None = _help(None, "requests in flight to this provider at once (shared by "
                                              "every agent of the run with the same provider and api_base)")
    rpm: float | None = _help(None, "requests per minute allowed to this provider")
    tpm: float | None = _help(None, "tokens per minute allowed to this provider")
    cache: bool = _help(True, "reuse cached responses (keyed by the full request and rollout index)")
    cache_dir: str | None = _help(None, "response cache folder (default $REGRET_CACHE_DIR, else "
                                        "~/.cache/regret-harness)")
    price_file: str | None = _help(None, "TOML or JSON file of per-model prices overriding litellm's table")
    input_cost_per_token: float | None = _help(None, "USD per prompt token (overrides every price table)")
    output_cost_per_token: float | None = _help(None, "USD per completion token (overrides every price table)")
    extra: dict = _help({}, "further keyword arguments passed to litellm.acompletion as they are (with "
                            "client 'direct': request body fields; extra_body merged, extra_headers sent)")
    client: str = _help("auto", "who sends the calls: 'litellm'; 'direct' (one pooled HTTP client speaking the "
                                "OpenAI chat API straight to api_base, openai/ and hosted_vllm/ models only, about "
                                "a fifth of litellm's CPU per call); 'auto': direct for those models at a loopback "
                                "api_base, litellm otherwise")
    best_of: int = _help(1, "answer scenarios: sample N replies per turn and play the one the scenario scores best "
                            "(RISE self-distillation data; the agent then sees the scenario's checker)")
    teacher: str | None = _help(None, "answer scenarios: a litellm model string (same api_base) that writes "
                                      "every turn after the first (RISE distillation data)")

    def __post_init__(self) -> None:
        problems = []
        if not self.model or "/" not in self.model:
            problems.append(f"model must be a litellm model string such as 'openai/gpt-4o-mini', got {self.model!r}")
        if self.history not in HISTORY_MODES:
            problems.append(f"history must be one of {', '.join(HISTORY_MODES)}, got {self.history!r}")
        if self.answer_format not in ANSWER_FORMATS:
            problems.append(f"answer_format must be one of {', '.join(ANSWER_FORMATS)}, got {self.answer_format!r}")
        if not (isinstance(self.shuffle_options, bool) or self.shuffle_options in SHUFFLE_MODES):
            problems.append(f"shuffle_options must be true, false or one of {', '.join(SHUFFLE_MODES)}, "
                            f"got {self.shuffle_options!r}")
        elif self.shuffle_mode == "round" and self.multi_turn:
            problems.append("shuffle_options = 'round' cannot be used with multi_turn: the model's earlier replies "
                            "in the chat name options by the order of their own round")
        for name in ("reasoning", "multi_turn", "assume_capable", "stream", "cache"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.framing is not None:
            problem = _framing_problem(self.framing)
            if problem:
                problems.append(problem)
        for name in ("max_invalid_retries", "max_retries"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                problems.append(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        for name in ("timeout", "backoff_base", "backoff_max"):
            if not isinstance(getattr(self, name), (int, float)) or getattr(self, name) <= 0:
                problems.append(f"{name} must be a number > 0, got {getattr(self, name)!r}")
        if not isinstance(self.best_of, int) or isinstance(self.best_of, bool) or self.best_of < 1:
            problems.append(f"best_of must be an integer >= 1, got {self.best_of!r}")
        if self.teacher is not None and (not isinstance(self.teacher, str) or "/" not in self.teacher):
            problems.append(f"teacher must be a litellm model string such as 'openai/gpt-4o', got {self.teacher!r}")
        for name in ("max_concurrency", "max_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                problems.append(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or value <= 0):
                problems.append(f"{name} must be a number > 0, got {value!r}")
        if self.temperature is not None and not (isinstance(self.temperature, (int, float)) and self.temperature >= 0):
            problems.append(f"temperature must be a number >= 0, got {self.temperature!r}")
        if not isinstance(self.extra, Mapping):
            problems.append(f"extra must be a table of litellm keyword arguments, got {self.extra!r}")
        elif "api_key" in self.extra:
            problems.append("extra.api_key: never put a key in a suite file; name its environment variable "
                            "with api_key_env")
        else:
            for key in sorted(set(self.extra) & set(_OWNED_EXTRA)):
                if key == "response_format" and self.answer_format == "text":
                    continue  # a hand-made schema with free-text parsing: the parser reads JSON replies
                problems.append(f"extra.{key}: set it with {_OWNED_EXTRA[key]} instead")
        if self.client not in CLIENTS:
            problems.append(f"client must be one of {', '.join(CLIENTS)}, got {self.client!r}")
        elif direct_problem(self.model, self.api_base, self.client):
            problems.append(direct_problem(self.model, self.api_base, self.client))
        if problems:
            raise ConfigError(f"LLM agent {self.model!r}: " + "; ".join(problems))

    @property
    def shuffle_mode(self) -> str | None:
        """None (the scenario's order), 'episode' or 'round'."""
        if self.shuffle_options is True:
            return "episode"
        return self.shuffle_options or None

    @classmethod
    def from_params(cls, model: str, params: Mapping[str, Any]) -> LLMSettings:
        """Build from an AgentSpec's params, naming unknown keys (with a suggestion) and bad values."""
        known = {f.name for f in fields(cls)} - {"model"}
        for key in params:
            if key == "api_key":
                raise ConfigError(f"LLM agent {model!r}: never put an API key in a suite file or flag; put it in an "
                                  "environment variable and name that variable with api_key_env")
            if key not in known:
                raise ConfigError(unknown_key_message(f"LLM agent {model!r}", key, known))
        return cls(model=model, **dict(params))

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}


def _framing_problem(name: Any) -> str | None:
    from scenarios import UnknownNameError
    from scenarios.framing import get_framing

    if not isinstance(name, str):
        return f"framing must be a framing name, got {name!r}"
    try:
        get_framing(name)
    except UnknownNameError as exc:
        return str(exc)
    return None
