"""Calling a provider through litellm: retries with backoff honouring Retry-After, timeouts,
per-provider concurrency and rate limits, the response cache and cost accounting."""

from __future__ import annotations

import asyncio
import collections
import email.utils
import os
import random
import time
from dataclasses import dataclass
from typing import Any

from agents.llm._cache import open_cache, release_cache, request_key
from agents.llm._cost import Pricer, is_self_hosted
from agents.llm._settings import LLMSettings
from scenarios import ConfigError, RegretError

_RETRYABLE_STATUS = {408, 409, 425, 429}


class ProviderError(RegretError, RuntimeError):
    """A provider call failed for good (retries exhausted, or an error retrying cannot fix)."""


@dataclass(slots=True)
class Completion:
    content: str
    reasoning: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_s: float
    calls: int  # provider calls made, retries included (0 for a cache hit)
    cached: bool
    model: str | None = None


class ProviderLimiter:
    """Requests in flight, requests per minute and tokens per minute for one provider endpoint."""

    def __init__(self, max_concurrency: int | None, rpm: float | None, tpm: float | None) -> None:
        self.max_concurrency, self.rpm, self.tpm = max_concurrency, rpm, tpm
        self._semaphore = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._next_start = 0.0
        self._tokens: collections.deque[tuple[float, int]] = collections.deque()
        self._token_sum = 0

    def tighten(self, max_concurrency: int | None, rpm: float | None, tpm: float | None) -> None:
        """Agents sharing an endpoint share its limits: the strictest given wins."""
        if max_concurrency and (self.max_concurrency is None or max_concurrency < self.max_concurrency):
            self.max_concurrency = max_concurrency
            self._semaphore = asyncio.Semaphore(max_concurrency)
        if rpm and (self.rpm is None or rpm < self.rpm):
            self.rpm = rpm
        if tpm and (self.tpm is None or tpm < self.tpm):
            self.tpm = tpm

    async def __aenter__(self) -> ProviderLimiter:
        if self._semaphore is not None:
            await self._semaphore.acquire()
        if self.rpm:  # evenly spaced starts
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + 60.0 / self.rpm
            if start > now:
                await asyncio.sleep(start - now)
        if self.tpm:
            while True:
                now = time.monotonic()
                while self._tokens and self._tokens[0][0] <= now - 60.0:
                    self._token_sum -= self._tokens.popleft()[1]
                if self._token_sum < self.tpm or not self._tokens:
                    break
                await asyncio.sleep(self._tokens[0][0] + 60.0 - now)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._semaphore is not None:
            self._semaphore.release()

    def record_tokens(self, tokens: int) -> None:
        if self.tpm:
            self._tokens.append((time.monotonic(), tokens))
            self._token_sum += tokens


# the strictest limits any agent declared per endpoint (provider, api_base); every agent calling that
# endpoint honours them, declared or not. Limiter objects hold asyncio primitives: one per event loop.
_ENDPOINT_LIMITS: dict[tuple[str, str], tuple[int | None, float | None, float | None]] = {}
_LIMITERS: dict[tuple[int, str, str], ProviderLimiter] = {}


def _endpoint(settings: LLMSettings) -> tuple[str, str]:
    return settings.model.split("/", 1)[0], settings.api_base or ""


def declare_limits(settings: LLMSettings) -> None:
    if not (settings.max_concurrency or settings.rpm or settings.tpm):
        return
    def strictest(a, b):
        return b if a is None else a if b is None else min(a, b)
    old = _ENDPOINT_LIMITS.get(_endpoint(settings), (None, None, None))
    _ENDPOINT_LIMITS[_endpoint(settings)] = (strictest(old[0], settings.max_concurrency),
                                             strictest(old[1], settings.rpm), strictest(old[2], settings.tpm))


def _limiter(settings: LLMSettings) -> ProviderLimiter | None:
    limits = _ENDPOINT_LIMITS.get(_endpoint(settings))
    if limits is None:
        return None
    loop = asyncio.get_running_loop()
    key = (id(loop), *_endpoint(settings))
    limiter = _LIMITERS.get(key)
    if limiter is None:
        for stale in [k for k in _LIMITERS if k[0] != id(loop)]:  # limiters of finished event loops
            del _LIMITERS[stale]
        limiter = _LIMITERS[key] = ProviderLimiter(*limits)
    elif (limiter.max_concurrency, limiter.rpm, limiter.tpm) != limits:
        limiter.tighten(*limits)
    return limiter


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (Retry-After / retry-after-ms headers), if it said."""
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        value = headers.get("retry-after-ms")
        if value is not None:
            return max(0.0, float(value) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, AttributeError):
        return None


def is_retryable(exc: BaseException) -> bool:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in _RETRYABLE_STATUS:
        return False  # bad request, auth, not found, context window: retrying cannot help
    return True


class LLMClient:
    """One per agent factory; all agents of that factory (one per episode) share it."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self.pricer = Pricer(settings.model, settings.api_base, settings.price_file,
                             settings.input_cost_per_token, settings.output_cost_per_token)
        self._api_key = self._read_api_key()
        declare_limits(settings)
        request: dict[str, Any] = {"model": settings.model}
        for name in ("api_base", "temperature", "max_tokens", "seed"):
            if getattr(settings, name) is not None:
                request[name] = getattr(settings, name)
        request.update(settings.extra)
        self._request = request  # what identifies a response (the cache key); never holds the key
        self._cache = None
        self._rng = random.Random()  # backoff jitter only: timing, never results

    def _read_api_key(self) -> str | None:
        name = self.settings.api_key_env
        if name:
            value = os.environ.get(name)
            if not value:
                raise ConfigError(f"LLM agent {self.settings.model!r}: environment variable {name} "
                                  "(api_key_env) is not set")
            return value
        if self.settings.api_base and is_self_hosted(self.settings.model, self.settings.api_base) \
                and not os.environ.get("OPENAI_API_KEY"):
            return "no-key"  # local OpenAI-compatible servers ignore it, the OpenAI client needs one
        return None

    def redact(self, text: str) -> str:
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, f"<{self.settings.api_key_env or 'api key'}>")
        return text

    async def complete(self, messages: list[dict], rollout: int = 0) -> Completion:
        settings = self.settings
        request = {**self._request, "messages": messages}
        if "seed" in request:  # one seed for every rollout would collapse sampled rollouts into one
            request["seed"] = request["seed"] + rollout
        key = None
        if settings.cache:
            if self._cache is None:
                self._cache = open_cache(settings.cache_dir)
            key = request_key(request, rollout)
            hit = self._cache.get(key)
            if hit is not None:
                return Completion(hit["content"], hit.get("reasoning"), hit["prompt_tokens"],
                                  hit["completion_tokens"], 0.0, 0.0, 0, True, hit.get("model"))
        import litellm

        litellm.suppress_debug_info = True  # no "Give Feedback" banner on stdout for every retried error
        call = dict(request, timeout=settings.timeout, max_retries=0, num_retries=0, drop_params=True)
        if self._api_key:
            call["api_key"] = self._api_key
        limiter = _limiter(settings)
        started = time.perf_counter()
        calls = 0
        while True:
            calls += 1
            try:
                if limiter is None:
                    response = await litellm.acompletion(**call)
                else:
                    async with limiter:
                        response = await litellm.acompletion(**call)
                choice = response.choices[0]
                message = choice.message
                content = message.content or ""
                reasoning = getattr(message, "reasoning_content", None)
                usage = getattr(response, "usage", None)
                prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
                completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                retry = is_retryable(exc) and calls <= settings.max_retries
                if not retry:
                    what = "gave up after" if is_retryable(exc) else "not retryable, after"
                    raise ProviderError(self.redact(f"{settings.model}: {what} {calls} call(s): "
                                                    f"{type(exc).__name__}: {str(exc)[:500]}")) from None
                delay = min(settings.backoff_max, settings.backoff_base * 2 ** (calls - 1)) * self._rng.random()
                asked = retry_after_s(exc)
                if asked is not None:
                    delay = min(settings.backoff_max, max(delay, asked))
                await asyncio.sleep(delay)
        latency = time.perf_counter() - started
        if limiter is not None:
            limiter.record_tokens(prompt_tokens + completion_tokens)
        cost = self.pricer.cost(prompt_tokens, completion_tokens)
        model = getattr(response, "model", None)
        if key is not None:
            self._cache.put(key, settings.model, {
                "content": content, "reasoning": reasoning, "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens, "model": model})
        return Completion(content, reasoning, prompt_tokens, completion_tokens, cost, latency, calls, False, model)

    async def aclose(self) -> None:
        if self._cache is not None:
            release_cache(self._cache)
            self._cache = None
