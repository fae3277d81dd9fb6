"""Cost per call: a user price file, else litellm's price table; an explicit zero for self-hosted models.

Price file (TOML or JSON), keyed by the model string as given to --agent (or without its
provider prefix)::

    ["openai/gpt-4o-mini"]
    input_cost_per_token = 1.5e-7
    output_cost_per_token = 6e-7

    ["my-finetune"]                 # or per million tokens
    input_per_million = 0.3
    output_per_million = 1.2
"""

from __future__ import annotations

import json
import tomllib
import warnings
from pathlib import Path
from urllib.parse import urlparse

from scenarios import ConfigError

SELF_HOSTED_PREFIXES = ("hosted_vllm/", "ollama/", "ollama_chat/", "lm_studio/", "llamafile/", "vllm/")
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "host.docker.internal"}


def is_self_hosted(model: str, api_base: str | None) -> bool:
    if model.startswith(SELF_HOSTED_PREFIXES):
        return True
    if api_base:
        host = (urlparse(api_base).hostname or "").lower()
        return host in _LOCAL_HOSTS or host.endswith(".local") or host.startswith("127.")
    return False


def load_price_file(path: str | Path) -> dict[str, tuple[float, float]]:
    """model -> (USD per prompt token, USD per completion token)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read price file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"price file {path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from None
    prices = {}
    for model, entry in data.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"price file {path}: [{model}] must be a table")
        if "input_cost_per_token" in entry or "output_cost_per_token" in entry:
            pair = (entry.get("input_cost_per_token", 0.0), entry.get("output_cost_per_token", 0.0))
        elif "input_per_million" in entry or "output_per_million" in entry:
            pair = (entry.get("input_per_million", 0.0) / 1e6, entry.get("output_per_million", 0.0) / 1e6)
        else:
            raise ConfigError(f"price file {path}: [{model}] needs input_cost_per_token/output_cost_per_token "
                              "or input_per_million/output_per_million")
        if any(not isinstance(p, (int, float)) or p < 0 for p in pair):
            raise ConfigError(f"price file {path}: [{model}] prices must be numbers >= 0")
        prices[model] = (float(pair[0]), float(pair[1]))
    return prices


class Pricer:
    """cost(prompt_tokens, completion_tokens) -> USD; `source` says where the price came from."""

    def __init__(self, model: str, api_base: str | None = None, price_file: str | None = None,
                 input_cost_per_token: float | None = None, output_cost_per_token: float | None = None) -> None:
        self.model = model
        self._unit: tuple[float, float] | None = None
        if input_cost_per_token is not None or output_cost_per_token is not None:
            self._unit, self.source = (input_cost_per_token or 0.0, output_cost_per_token or 0.0), "settings"
            return
        if price_file:
            prices = load_price_file(price_file)
            bare = model.split("/", 1)[1]
            if model in prices or bare in prices:
                self._unit, self.source = prices.get(model, prices.get(bare)), f"price file {price_file}"
                return
        if is_self_hosted(model, api_base):
            self._unit, self.source = (0.0, 0.0), "self-hosted"
            return
        import litellm

        try:
            litellm.cost_per_token(model=model, prompt_tokens=1, completion_tokens=1)
            self.source = "litellm"
        except Exception:
            self._unit, self.source = (0.0, 0.0), "unknown"
            warnings.warn(f"no price known for {model!r}: its cost is recorded as 0; give one with price_file "
                          "or input_cost_per_token/output_cost_per_token", stacklevel=2)

    @property
    def free(self) -> bool:
        return self._unit == (0.0, 0.0)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        if self._unit is not None:
            return prompt_tokens * self._unit[0] + completion_tokens * self._unit[1]
        import litellm

        prompt_cost, completion_cost = litellm.cost_per_token(
            model=self.model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        return float(prompt_cost + completion_cost)
