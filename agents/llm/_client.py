"""Calling a provider: retries with backoff honouring Retry-After, timeouts, per-provider
concurrency and rate limits, the response cache and cost accounting, the same whichever
transport (litellm, or the direct client for local servers: agents.llm._transport) sends the call."""

from __future__ import annotations

import asyncio
import collections
import email.utils
import json
import os
import random
import time
from dataclasses import dataclass
from typing import Any

from agents._redact import Redactor, environment_secrets
from agents.llm._cache import ResponseCaches, request_key
from agents.llm._formats import check_support
from agents.llm._cost import Pricer, is_self_hosted
from agents.llm._quirks import apply_quirks
from agents.llm._settings import LLMSettings
from agents.llm._transport import HTTPStatusError, MalformedResponse, open_transport
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
    finish_reason: str | None = None


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
    if headers is None and isinstance(exc, HTTPStatusError):
        headers = exc.headers
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


# errors raised by the HTTP stack are the provider's (retryable unless a 4xx says otherwise); any
# other exception is a bug on this side, and retrying it would only pay for the same reply again
_PROVIDER_MODULES = ("litellm", "openai", "httpx", "httpcore", "aiohttp")


def is_retryable(exc: BaseException) -> bool:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500 and status not in _RETRYABLE_STATUS:
        return False  # bad request, auth, not found, context window: retrying cannot help
    if isinstance(exc, (MalformedResponse, HTTPStatusError, TimeoutError, ConnectionError)):
        return True
    return type(exc).__module__.split(".", 1)[0] in _PROVIDER_MODULES


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

    def __init__(self, settings: LLMSettings, limits: EndpointLimits | None = None,
                 caches: ResponseCaches | None = None) -> None:
        self.settings = settings
        check_support(settings.model, settings.api_base, settings.answer_format, settings.assume_capable)
        self.pricer = _pricer(settings)
        self._api_key = _read_api_key(settings)
        secrets = {}  # its own key first: a fragment shared with another secret is named after it
        if self._api_key and self._api_key != "no-key":
            secrets[settings.api_key_env or "api key"] = self._api_key
        self._redactor = Redactor({**secrets, **environment_secrets()})
        self.limits = limits if limits is not None else EndpointLimits()
        self.limits.declare(settings)
        request: dict[str, Any] = {"model": settings.model}
        for name in ("api_base", "temperature", "max_tokens", "seed"):
            if getattr(settings, name) is not None:
                request[name] = getattr(settings, name)
        request.update(settings.extra)
        # what identifies a response (the cache key); never holds the key
        self._request = apply_quirks(request, settings)
        # the run's open caches (closed with the run), else this client's own (closed by aclose)
        self._caches, self._own_caches = (caches, False) if caches is not None else (ResponseCaches(), True)
        self._cache = None
        self._completion_bound: int | None = None
        self._rng = random.Random()  # backoff jitter only: timing, never results
        # litellm or the direct HTTP client: retries, limits, cache and cost stay here, the same for both
        self._transport = open_transport(settings.model, settings.api_base, settings.client)

    @staticmethod
    def check(settings: LLMSettings) -> None:
        """Raise now what making a client would (an unreadable price file, an unset key variable),
        without making one."""
        check_support(settings.model, settings.api_base, settings.answer_format, settings.assume_capable)
        _pricer(settings)
        _read_api_key(settings)

    def redact(self, text: str | None) -> str | None:
        """No part of 8 characters or more of this client's key (or of any secret-looking
        environment variable) survives in `text`."""
        return self._redactor(text)

    def worst_case_cost(self, call: dict[str, Any]) -> float:
        """The most one call can cost: every byte of the request a prompt token (no tokenizer
        makes fewer bytes per token, and the JSON quoting covers the chat template's few extra
        tokens), plus the completion limit, at the model's price."""
        if self.pricer.free:
            return 0.0
        parts = {k: call[k] for k in ("messages", "tools", "response_format") if k in call}
        prompt_bound = len(json.dumps(parts, ensure_ascii=False).encode()) + 8 * len(call["messages"])
        return self.pricer.cost(prompt_bound, self.completion_bound())

    def completion_bound(self) -> int:
        """max_tokens, else the model's output limit from litellm's table; a priced model with
        neither cannot be capped."""
        if self.settings.max_tokens:
            return self.settings.max_tokens
        if self._completion_bound is None:
            try:
                import litellm

                info = litellm.get_model_info(self.settings.model)
                self._completion_bound = int(info.get("max_output_tokens") or info.get("max_tokens") or 0)
            except Exception:
                self._completion_bound = 0
        if not self._completion_bound:
            raise ConfigError(f"LLM agent {self.settings.model!r}: a cost cap needs max_tokens (litellm knows no "
                             "output limit for this model, so the worst case of a call is unbounded)")
        return self._completion_bound

    async def complete(self, messages: list[dict], rollout: int = 0, *, task: str = "",
                       answer: dict[str, Any] | None = None, budget: Any = None,
                       spend: Any = None) -> Completion:
        """One reply to `messages`. `answer` holds the structured-answer arguments (response_format
        or tools); `task` and `rollout` are part of the cache key, so rollouts of different tasks
        never share a sampled reply even when their prompts are identical. Each provider call
        first reserves its worst case against `budget` (an agents.CostBudget; CostCapReached
        when it does not fit); `spend` (an agents.Spend) adds every call's usage as it lands."""
        settings = self.settings
        request = {**self._request, **(answer or {}), "messages": messages}
        if "seed" in request:  # one seed for every rollout would collapse sampled rollouts into one
            request["seed"] = request["seed"] + rollout
        key = None
        if settings.cache:
            if self._cache is None:
                self._cache = self._caches.open(settings.cache_dir)
            key = request_key(request, rollout, task)
            hit = self._cache.get(key)
            if hit is not None:
                return Completion(hit["content"], hit.get("reasoning"), hit["prompt_tokens"],
                                  hit["completion_tokens"], 0.0, 0.0, 0, True, hit.get("model"),
                                  hit.get("finish_reason"))
        call = dict(request, timeout=settings.timeout, max_retries=0, num_retries=0, drop_params=True)
        if settings.stream:
            call.update(stream=True, stream_options={"include_usage": True})
        if self._api_key:
            call["api_key"] = self._api_key
        limiter = self.limits.limiter(settings)
        worst = self.worst_case_cost(call) if budget is not None and budget.cap is not None else 0.0
        started = time.perf_counter()
        calls = 0
        send = self._transport.send
        while True:
            calls += 1
            if budget is not None:
                budget.reserve(worst)  # CostCapReached: the call is not made
            actual = 0.0
            try:
                if limiter is None:
                    reply = await send(call)
                else:
                    async with limiter:
                        reply = await send(call)
                actual = self.pricer.cost(reply.prompt_tokens, reply.completion_tokens)
                if spend is not None:
                    spend.prompt_tokens += reply.prompt_tokens
                    spend.completion_tokens += reply.completion_tokens
                    spend.cost += actual
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                retry = is_retryable(exc) and calls <= settings.max_retries
                if spend is not None:
                    spend.attempts += 1
                if not retry:
                    raise ProviderError(self._failure(exc, calls)) from None
                delay = min(settings.backoff_max, settings.backoff_base * 2 ** (calls - 1)) * self._rng.random()
                asked = retry_after_s(exc)
                if asked is not None:
                    delay = min(settings.backoff_max, max(delay, asked))
                await asyncio.sleep(delay)
            finally:
                if budget is not None:
                    budget.settle(worst, actual)
        latency = time.perf_counter() - started
        if spend is not None:
            spend.attempts += 1
            spend.latency_s += latency
        if limiter is not None:
            limiter.record_tokens(reply.prompt_tokens + reply.completion_tokens)
        cost = actual
        # a tool call's arguments are the answer; any text the model wrote beside it is reasoning
        content, reasoning = reply.content, reply.reasoning
        if settings.answer_format == "tool" and reply.tool_arguments is not None:
            reasoning = "\n\n".join(p for p in (reasoning, content.strip()) if p) or None
            content = reply.tool_arguments
        if key is not None:
            self._cache.put(key, settings.model, {
                "content": content, "reasoning": reasoning, "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens, "model": reply.model,
                "finish_reason": reply.finish_reason})
        return Completion(content, reasoning, reply.prompt_tokens, reply.completion_tokens, cost, latency, calls,
                          False, reply.model, reply.finish_reason)

    def _failure(self, exc: BaseException, calls: int) -> str:
        """The one-line reason a call failed for good, redacted before it is shortened."""
        settings = self.settings
        what = "gave up after" if is_retryable(exc) else "not retryable, after"
        text = f"{type(exc).__name__}: {exc}"
        hint = ""
        if not settings.stream and getattr(exc, "status_code", None) == 400 and "stream" in str(exc).lower():
            hint = " (the server seems to answer only streamed requests: set stream = true)"
        return self.redact(f"{settings.model}: {what} {calls} call(s): {text}")[:600] + hint

    async def aclose(self) -> None:
        if self._own_caches:
            self._caches.close()
        self._cache = None
        await self._transport.aclose()
