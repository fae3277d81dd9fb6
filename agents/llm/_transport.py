"""How a request reaches the model: through litellm, or straight to a local OpenAI-compatible server.

A transport sends one chat-completions call and reads the answer into a `Reply`; it knows
nothing of retries, limits, the cache or cost, which `LLMClient` does once for every
transport. Two exist:

- `LiteLLMTransport`: `litellm.acompletion`, any provider (the default);
- `DirectTransport`: one pooled aiohttp session posting the OpenAI chat API to `api_base`
  (`openai/` and `hosted_vllm/` models): about a fifth of litellm's CPU per call, which is what
  limits rollouts against a local vLLM, llama.cpp or `transformers serve` endpoint.

`client = "auto"` (the default) picks the direct one for those models at a loopback api_base,
litellm otherwise. Both send the same request body and read the same reply fields, so the
records of a run are the same whichever sent it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from scenarios import ConfigError, RegretError

CLIENTS = ("auto", "litellm", "direct")
DIRECT_PREFIXES = ("openai/", "hosted_vllm/")  # litellm sends these to api_base as the OpenAI API, unchanged
_LOOPBACK_HOSTS = {"localhost", "::1"}
# keyword arguments of litellm.acompletion that steer litellm itself, not the request body
_LITELLM_ONLY = {"model", "api_base", "api_key", "timeout", "max_retries", "num_retries", "drop_params",
                 "extra_body", "extra_headers"}


class MalformedResponse(RegretError, RuntimeError):
    """A 200 answer without a usable message (no choices, a stream that ended early): retried."""


class HTTPStatusError(RegretError, RuntimeError):
    """A non-2xx answer of the direct transport; `status_code` and `headers` as litellm's errors
    carry them. Subclasses bear the OpenAI SDK's (and litellm's) names, so a failed episode's
    error reads the same whichever client made the call."""

    def __init__(self, status_code: int, message: str, headers: Any) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code, self.headers = status_code, headers


class BadRequestError(HTTPStatusError): ...


class AuthenticationError(HTTPStatusError): ...


class PermissionDeniedError(HTTPStatusError): ...


class NotFoundError(HTTPStatusError): ...


class RateLimitError(HTTPStatusError): ...


class InternalServerError(HTTPStatusError): ...


_STATUS_ERRORS = {400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
                  429: RateLimitError}


def status_error(status_code: int, message: str, headers: Any) -> HTTPStatusError:
    kind = _STATUS_ERRORS.get(status_code, InternalServerError if status_code >= 500 else HTTPStatusError)
    return kind(status_code, message, headers)


def is_loopback(api_base: str | None) -> bool:
    host = (urlparse(api_base or "").hostname or "").lower()
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


def uses_direct(model: str, api_base: str | None, client: str) -> bool:
    """Whether requests go through the direct transport (`client` is an LLMSettings.client value)."""
    if client == "auto":
        return model.startswith(DIRECT_PREFIXES) and is_loopback(api_base)
    return client == "direct"


def direct_problem(model: str, api_base: str | None, client: str) -> str | None:
    """Why `client = "direct"` cannot serve this model, or None."""
    if client != "direct":
        return None
    if not model.startswith(DIRECT_PREFIXES):
        return (f"client 'direct' speaks the OpenAI chat API for {' and '.join(DIRECT_PREFIXES)} models only; "
                "use client = 'litellm' for this provider")
    if not api_base:
        return "client 'direct' needs an api_base (the server's URL, e.g. http://127.0.0.1:8000/v1)"
    return None


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _text_of(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


@dataclass(slots=True)
class Reply:
    content: str = ""
    reasoning: str | None = None
    tool_arguments: str | None = None  # the first tool call's arguments, as sent
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None


def read_response(response: Any, message: Any = None) -> Reply:
    """A whole answer (a parsed JSON dict or litellm's response object). `message`, when given,
    is the first choice's message exactly as the provider sent it."""
    choices = _get(response, "choices")
    if not choices:
        raise MalformedResponse("the provider's answer has no choices")
    if message is None:
        message = _get(choices[0], "message")
    reasoning = _get(message, "reasoning_content") or _get(message, "reasoning")
    calls = _get(message, "tool_calls") or ()
    arguments = _get(_get(calls[0], "function"), "arguments") if calls else None
    usage = _get(response, "usage")
    return Reply(_text_of(_get(message, "content")), reasoning if isinstance(reasoning, str) else None,
                 arguments, _get(choices[0], "finish_reason"),
                 int(_get(usage, "prompt_tokens") or 0), int(_get(usage, "completion_tokens") or 0),
                 _get(response, "model"))


async def read_stream(stream: Any) -> Reply:
    """Assemble a streamed answer: content, reasoning and tool-call deltas; usage from the last chunk."""
    content: list[str] = []
    reasoning: list[str] = []
    arguments: list[str] = []
    reply = Reply()
    saw_chunk = False
    async for chunk in stream:
        saw_chunk = True
        reply.model = reply.model or _get(chunk, "model")
        usage = _get(chunk, "usage")
        if usage is not None and _get(usage, "prompt_tokens"):
            reply.prompt_tokens = int(_get(usage, "prompt_tokens") or 0)
            reply.completion_tokens = int(_get(usage, "completion_tokens") or 0)
        for choice in _get(chunk, "choices") or ():
            if _get(choice, "index"):
                continue
            delta = _get(choice, "delta")
            if delta is not None:
                content.append(_text_of(_get(delta, "content")))
                piece = _get(delta, "reasoning_content") or _get(delta, "reasoning")
                if isinstance(piece, str):
                    reasoning.append(piece)
                for call in _get(delta, "tool_calls") or ():
                    if (_get(call, "index") or 0) == 0:
                        arguments.append(_get(_get(call, "function"), "arguments") or "")
            if _get(choice, "finish_reason"):
                reply.finish_reason = _get(choice, "finish_reason")
    if not saw_chunk:
        raise MalformedResponse("the stream ended before any chunk")
    reply.content = "".join(content)
    reply.reasoning = "".join(reasoning) or None
    reply.tool_arguments = "".join(arguments) if arguments else None
    return reply


def _message_of(original: Any) -> dict | None:
    """The first choice's message exactly as the provider sent it (litellm's `original_response`).

    litellm moves a leading `<think>` block out of the content into `reasoning_content`; the
    stored raw output must be the reply as returned, so it is read from the provider's JSON.
    """
    if not isinstance(original, str) or not original.startswith("{"):
        return None
    try:
        choices = json.loads(original).get("choices")
        message = choices[0].get("message") if choices else None
    except (ValueError, AttributeError, TypeError, IndexError):
        return None
    return message if isinstance(message, dict) else None


class LiteLLMTransport:
    """`litellm.acompletion`. litellm is told, once per transport (not per call), to print no "Give
    Feedback" banner for retried errors; `aclose` restores the setting, so no process-wide change
    outlives the run."""

    def __init__(self) -> None:
        self._litellm: Any = None  # imported on the first call: a run answered from the cache never needs it
        self._quiet = False

    async def send(self, call: dict[str, Any]) -> Reply:
        if self._litellm is None:
            import litellm

            self._litellm, self._quiet = litellm, litellm.suppress_debug_info
            litellm.suppress_debug_info = True
        original: list[Any] = []

        def keep_original(details: dict) -> None:
            if details.get("log_event_type") == "post_api_call":
                original.append(details.get("original_response"))

        response = await self._litellm.acompletion(**call, logger_fn=keep_original)
        if call.get("stream"):
            return await read_stream(response)
        sent = next((o for o in reversed(original) if isinstance(o, str)), None)
        return read_response(response, _message_of(sent))

    async def aclose(self) -> None:
        if self._litellm is not None:
            self._litellm.suppress_debug_info = self._quiet
            self._litellm = None


class DirectTransport:
    """The OpenAI chat API over one aiohttp session per client (a pooled keep-alive connection per
    request in flight; the run's endpoint limits, not the pool, bound how many)."""

    def __init__(self, api_base: str) -> None:
        self.url = api_base.rstrip("/") + "/chat/completions"
        self._session = None  # made on the first call, inside the run's event loop

    def _open(self):
        if self._session is None:
            import aiohttp

            self._aiohttp = aiohttp
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                                  skip_auto_headers=("User-Agent",))
        return self._session

    @staticmethod
    def body_of(call: dict[str, Any]) -> dict[str, Any]:
        """The JSON body litellm would send for `call`: the model without its provider prefix, then
        every request field (extra ones included, `extra_body` merged in)."""
        body = {"model": call["model"].split("/", 1)[1]}
        body.update((k, v) for k, v in call.items() if k not in _LITELLM_ONLY)
        body.update(call.get("extra_body") or {})
        return body

    async def send(self, call: dict[str, Any]) -> Reply:
        import orjson

        session = self._open()
        headers = {"Content-Type": "application/json", **(call.get("extra_headers") or {})}
        if call.get("api_key"):
            headers["Authorization"] = f"Bearer {call['api_key']}"
        seconds = call.get("timeout")
        try:
            async with session.post(self.url, data=orjson.dumps(self.body_of(call)), headers=headers,
                                    timeout=self._aiohttp.ClientTimeout(total=seconds)) as response:
                if response.status >= 300:
                    raise status_error(response.status, _error_message(await response.read()), response.headers)
                if call.get("stream"):
                    return await read_stream(_events(response))
                data = await response.read()
        except TimeoutError:
            raise TimeoutError(f"no answer from {self.url} within {seconds} s") from None
        try:
            answer = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise MalformedResponse(f"the provider's answer is not JSON: {data[:200]!r}") from None
        if not isinstance(answer, dict):
            raise MalformedResponse("the provider's answer is not a JSON object")
        return read_response(answer)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _events(response: Any):
    """The JSON payloads of a server-sent event stream, up to `data: [DONE]`."""
    import orjson

    async for line in response.content:
        line = line.strip()
        if not line.startswith(b"data:"):
            continue  # blank separators, comments, event names
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return
        try:
            yield orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise MalformedResponse(f"a streamed chunk is not JSON: {payload[:200]!r}") from None


def _error_message(data: bytes) -> str:
    try:
        message = json.loads(data)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = data.decode(errors="replace")
    return str(message)[:1000]


def open_transport(model: str, api_base: str | None, client: str) -> LiteLLMTransport | DirectTransport:
    if uses_direct(model, api_base, client):
        problem = direct_problem(model, api_base, "direct")
        if problem:
            raise ConfigError(f"LLM agent {model!r}: {problem}")
        return DirectTransport(api_base)
    return LiteLLMTransport()
