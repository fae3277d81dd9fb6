"""LLM agents through litellm: any provider, reasoning plus actions, robust at scale.

`llm_factory(spec)` turns an AgentSpec whose `agent` is a litellm model string
(`openai/gpt-4o-mini`, `anthropic/...`, `hosted_vllm/NAME`, `ollama/NAME`, `openai/NAME` with
an `api_base`) into an AgentFactory; `agents.resolve()` calls it for any name with a "/".
The settings (`LLMSettings`) come from the spec's params: the suite file's agent table or
`regret run` flags. litellm and langchain-core are imported only when first needed.

In a suite file (every key but `agent` and `label` is an `LLMSettings` field)::

    agents = [
        "ucb1",
        {agent = "openai/gpt-4o-mini", temperature = 0.7, history = "summary", api_key_env = "OPENAI_API_KEY"},
        {agent = "hosted_vllm/my-model", label = "mine", api_base = "http://127.0.0.1:8000/v1", multi_turn = true},
    ]

Each decision: the prompt (framing's task text, history, question) goes to the model, the reply
is parsed (`parse_answer`; with `answer_format = "json"` or `"tool"` the provider enforces a JSON
schema whose enum is the option names, see `agents.llm._formats`, and `parse_structured` reads
it). `shuffle_options = true` (or "episode") relabels the options by a seeded per-episode
permutation, `"round"` by a fresh one every round; each decision records its order in
`info.option_order`; `stream = true` streams replies. `raw_output` is the
reply exactly as the provider returned it (think blocks included); the reasoning goes beside it; an invalid reply is re-asked with a correction up to
`max_invalid_retries` times, then a uniform-random fallback is played and recorded as
`parse_status = "fallback"`. Provider calls retry with exponential backoff and full jitter,
honouring Retry-After; a call that fails for good raises `ProviderError`, which the runner
records as a failed episode (`--resume` retries it). Responses are cached in
`$REGRET_CACHE_DIR/responses.sqlite` (default `~/.cache/regret-harness`).
"""

from agents.llm._agent import LLMAgent, llm_factory
from agents.llm._cache import CACHE_ENV, ResponseCache, ResponseCaches, default_cache_dir, request_key
from agents.llm._client import Completion, EndpointLimits, LLMClient, ProviderError, retry_after_s
from agents.llm._cost import Pricer, is_self_hosted, load_price_file
from agents.llm._formats import ANSWER_FORMATS, AnswerSchema, check_support
from agents.llm._parse import ParsedAnswer, parse_answer, parse_structured, split_reasoning
from agents.llm._prompts import DEFAULT_SYSTEM_PROMPT, EpisodePrompts, OptionOrder, OptionOrders
from agents.llm._quirks import QUIRKS, apply_quirks
from agents.llm._settings import LLMSettings

__all__ = [
    "ANSWER_FORMATS",
    "AnswerSchema",
    "CACHE_ENV",
    "DEFAULT_SYSTEM_PROMPT",
    "Completion",
    "EndpointLimits",
    "EpisodePrompts",
    "LLMAgent",
    "LLMClient",
    "LLMSettings",
    "OptionOrder",
    "OptionOrders",
    "ParsedAnswer",
    "Pricer",
    "ProviderError",
    "QUIRKS",
    "ResponseCache",
    "ResponseCaches",
    "apply_quirks",
    "default_cache_dir",
    "is_self_hosted",
    "llm_factory",
    "load_price_file",
    "check_support",
    "parse_answer",
    "parse_structured",
    "request_key",
    "retry_after_s",
    "split_reasoning",
]
