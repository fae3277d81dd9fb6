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


class EndpointLimits:
    """The strictest limits any agent of one run declared per endpoint (provider, api_base).

    Every agent calling that endpoint in the run honours them, declared or not. One object per
    run (in the run's `RunResources`), created inside the run's event loop, so the limiters'
    asyncio primitives belong to it and a later run starts from its own settings.
    """

    def __init__(self) -> None:
        self._limits: dict[tuple[str, str], tuple[int | None, float | None, float | None]] = {}
        self._limiters: dict[tuple[str, str], ProviderLimiter] = {}

    def declare(self, settings: LLMSettings) -> None:
        if not (settings.max_concurrency or settings.rpm or settings.tpm):
            return

        def strictest(a, b):
            return b if a is None else a if b is None else min(a, b)

        old = self._limits.get(_endpoint(settings), (None, None, None))
        self._limits[_endpoint(settings)] = (strictest(old[0], settings.max_concurrency),
                                             strictest(old[1], settings.rpm), strictest(old[2], settings.tpm))

    def limiter(self, settings: LLMSettings) -> ProviderLimiter | None:
        endpoint = _endpoint(settings)
        limits = self._limits.get(endpoint)
        if limits is None:
            return None
        limiter = self._limiters.get(endpoint)
        if limiter is None:
            limiter = self._limiters[endpoint] = ProviderLimiter(*limits)
        elif (limiter.max_concurrency, limiter.rpm, limiter.tpm) != limits:
            limiter.tighten(*limits)
        return limiter


def _endpoint(settings: LLMSettings) -> tuple[str, str]:
    return settings.model.split("/", 1)[0], settings.api_base or ""


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


def _pricer(settings: LLMSettings) -> Pricer:
    return Pricer(settings.model, settings.api_base, settings.price_file,
                  settings.input_cost_per_token, settings.output_cost_per_token)


def _read_api_key(settings: LLMSettings) -> str | None:
    name = settings.api_key_env
    if name:
        value = os.environ.get(name)
        if not value:
            raise ConfigError(f"LLM agent {settings.model!r}: environment variable {name} "
                              "(api_key_env) is not set")
        return value
    if settings.api_base and is_self_hosted(settings.model, settings.api_base) \
            and not os.environ.get("OPENAI_API_KEY"):
        return "no-key"  # local OpenAI-compatible servers ignore it, the OpenAI client needs one
    return None


class LLMClient:
    """One per agent spec and run; all agents of that factory (one per episode) share it."""

    def __init__(self, settings: LLMSettings, limits: EndpointLimits | None = None) -> None:
        self.settings = settings
        self.pricer = _pricer(settings)
        self._api_key = _read_api_key(settings)
        self.limits = limits if limits is not None else EndpointLimits()
        self.limits.declare(settings)
        request: dict[str, Any] = {"model": settings.model}
        for name in ("api_base", "temperature", "max_tokens", "seed"):
            if getattr(settings, name) is not None:
                request[name] = getattr(settings, name)
        request.update(settings.extra)
        self._request = request  # what identifies a response (the cache key); never holds the key
        self._cache = None
        self._rng = random.Random()  # backoff jitter only: timing, never results
        self._quiet: tuple[Any, bool] | None = None  # litellm and its suppress_debug_info before this client

    def _litellm(self):
        """litellm, told once per client (not per call) to print no "Give Feedback" banner for retried
        errors; `aclose` restores the setting, so the client leaves no process-wide change behind."""
        if self._quiet is None:
            import litellm

            self._quiet = (litellm, litellm.suppress_debug_info)
            litellm.suppress_debug_info = True
        return self._quiet[0]

    @staticmethod
    def check(settings: LLMSettings) -> None:
        """Raise now what making a client would (an unreadable price file, an unset key variable),
        without making one."""
        _pricer(settings)
        _read_api_key(settings)

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
        litellm = self._litellm()
        call = dict(request, timeout=settings.timeout, max_retries=0, num_retries=0, drop_params=True)
        if self._api_key:
            call["api_key"] = self._api_key
        limiter = self.limits.limiter(settings)
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
        if self._quiet is not None:
            litellm, previous = self._quiet
            litellm.suppress_debug_info = previous
            self._quiet = None
