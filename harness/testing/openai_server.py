"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests, benchmarks and demos.

It speaks enough of the OpenAI chat-completions API for litellm (`openai/NAME` or
`hosted_vllm/NAME` with `api_base=server.api_base`) and answers with a *policy*: a Python
function of the request's messages, so a test knows exactly what the "model" plays and hence
the exact regret it must get. It runs an aiohttp server in a background thread on an
ephemeral port, with a fixed latency and seeded fault injection.

API::

    from harness.testing.openai_server import ScriptedServer, Faults, round_robin_policy

    with ScriptedServer(round_robin_policy(), latency=0.05,
                        faults=Faults(rate_limit=0.1, server_error=0.05, retry_after=0.2), seed=0) as server:
        server.api_base      # "http://127.0.0.1:PORT/v1"
        server.stats         # Counter: "requests", "ok", "rate_limit", "server_error", "hang", ...,
                             # and "max_in_flight" (most requests being answered at once)
        server.requests      # every request body received (a list of dicts), in arrival order

- A policy is `policy(messages, request) -> str | dict`: the assistant's text, or a dict with
  `content` and optionally `reasoning_content` (a provider's separate reasoning field), or a
  *choice* dict with `answer` (an option name, a list of probabilities in the listed order, or
  a name -> probability mapping) and optionally `reasoning`, which the server renders in the
  form the request asks for: free text ("<reasoning>\nANSWER: <answer>"), a JSON object that
  satisfies the request's `response_format` JSON schema, or a call of the request's forced
  `tool` with such an object as its arguments (as a server with constrained decoding does).
  Built-in policies: `round_robin_policy()` (round t plays option (t-1) mod K, reading
  "Round t of T" and the option names from the prompt), `fixed_policy(i)`,
  `uniform_vector_policy()` (experts: the uniform distribution as a JSON list), and
  `erring_policy(inner, rate, seed)` which replaces a seeded fraction of answers by
  unparseable text (a "model that errs more often"), and `answer_script_policy(script)` for
  self-correction scenarios: `script(question, turn, sample)` gives every answer, so each
  turn's correctness (and every RISE metric) is known exactly.
- `Faults` gives the rate of each fault, drawn per request from a seeded RNG keyed by the
  request body and how many times that body was seen (so a retried request can succeed):
  `rate_limit` (429 with a `Retry-After: retry_after` header), `server_error` (500),
  `hang` (no answer for `hang_s` seconds: past the client's timeout), `malformed` (200 with
  a body that is not JSON), `empty` (an empty message), `garbage` (an unparseable answer).
- `api_key`: when set, requests must carry `Authorization: Bearer <api_key>` (else 401; with
  `echo_key_in_errors=True` its message quotes the key sent, masked to its first 12 and last 4
  characters as OpenAI does and then whole about 450 characters in, to test redaction).
- Usage: `prompt_tokens` = words in the messages, `completion_tokens` = words in the reply;
  a reply longer than the request's `max_tokens` is cut to that many words
  (`finish_reason = "length"`), so a client's worst case per call is exact.
- Structured answers as real servers treat them: `response_format` `{"type": "json_schema"}`
  or `{"type": "json_object"}`, and `tools` with `tool_choice` naming one function; a server
  built with `structured=False` answers such requests with a 400, as servers without
  constrained decoding do. Every structured reply is checked against the schema (`enum`,
  `required`, `additionalProperties`, number bounds) before it is sent.
- Streaming: `stream = true` answers with server-sent events (role, content/reasoning/tool-call
  deltas in several pieces, a finish chunk, then a usage chunk when
  `stream_options.include_usage` is set, then `[DONE]`). `stream_only=True` refuses
  non-streamed requests with a 400, as some gateways do.

From a shell (prints the api_base on its first line, serves until killed)::

    python -m harness.testing.openai_server --policy round-robin --latency 0.05 [--port 0]
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

Policy = Callable[[list[dict], dict], "str | dict"]

_ROUND = re.compile(r"Round (\d+) of (\d+)")
_OPTIONS = re.compile(r"There are (\d+) ([^:]+): (.*?)\. The game lasts")


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    return str(content)


def prompt_round(messages: list[dict]) -> tuple[int, int]:
    """(round, horizon) of the question in the last user message (1-based round)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            found = _ROUND.findall(_text(message))
            if found:
                return int(found[-1][0]), int(found[-1][1])
    raise ValueError("no 'Round t of T' in the user messages")


def prompt_options(messages: list[dict]) -> list[str]:
    """The option names listed in the task description ("There are 3 buttons: blue, green, red.")."""
    for message in messages:
        match = _OPTIONS.search(_text(message))
        if match:
            names = [name.strip() for name in match.group(3).split(",")]
            if len(names) == int(match.group(1)):
                return names
    raise ValueError("no option list ('There are K ...: a, b, c.') in the messages")


def round_robin_policy(reasoning: str = "I will try every option in turn.") -> Policy:
    """Round t plays option (t-1) mod K, answering `<reasoning>\\nANSWER: <name>`."""

    def policy(messages: list[dict], request: dict) -> dict:
        t, _ = prompt_round(messages)
        names = prompt_options(messages)
        return {"answer": names[(t - 1) % len(names)], "reasoning": reasoning}

    return policy


def fixed_policy(index: int = 0, reasoning: str = "I always choose the same option.") -> Policy:
    def policy(messages: list[dict], request: dict) -> dict:
        return {"answer": prompt_options(messages)[index], "reasoning": reasoning}

    return policy


def uniform_vector_policy() -> Policy:
    def policy(messages: list[dict], request: dict) -> dict:
        k = len(prompt_options(messages))
        return {"answer": [1 / k] * k,
                "reasoning_content": "Spreading the weight evenly hedges against every option."}

    return policy


def erring_policy(inner: Policy, rate: float, seed: int = 0) -> Policy:
    """`inner`, except that a seeded fraction `rate` of replies (keyed by the messages) is unparseable."""

    def policy(messages: list[dict], request: dict) -> str | dict:
        digest = hashlib.blake2b(json.dumps([seed, messages], sort_keys=True).encode(), digest_size=8).digest()
        if random.Random(digest).random() < rate:
            return "Hmm, every option looks about the same to me; hard to say."
        return inner(messages, request)

    return policy


_ATTEMPT = re.compile(r"^\[attempt(\d+)\]")


def answer_turn(messages: list[dict]) -> int:
    """The 1-based turn of a self-correction request, read from the scripted model's own last reply.

    `answer_script_policy` starts every reply with "[attemptN]" (glued to a word, so no answer
    reader takes N for a number), so the turn is known even when the scenario's context window
    has dropped earlier attempts.
    """
    for message in reversed(messages):
        if message.get("role") == "assistant":
            found = _ATTEMPT.match(_text(message))
            return int(found.group(1)) + 1 if found else 2
    return 1


def answer_question(messages: list[dict]) -> str:
    """The problem text of a self-correction request: the last paragraph of its first user turn."""
    first = next(_text(m) for m in messages if m.get("role") == "user")
    return first.rsplit("\n\n", 1)[-1]


def answer_script_policy(script: Callable[[str, int, int], "str | None"]) -> Policy:
    """A self-correction "model" whose every answer is scripted: `script(question, turn, sample)`.

    `turn` is 1-based, `sample` is the request's `seed` (0 without one; an LLM agent with
    `seed = 0` asks turn t of rollout r with seed r * turns + t, see `LLMAgent._reply`). The reply is "[attemptN] ... \\boxed{ANSWER}", or a reply with no
    number at all when the script returns None.
    """

    def policy(messages: list[dict], request: dict) -> str:
        turn = answer_turn(messages)
        answer = script(answer_question(messages), turn, int(request.get("seed") or 0))
        if answer is None:
            return f"[attempt{turn}] I cannot work this out."
        return f"[attempt{turn}] working it through, the result is \\boxed{{{answer}}}"

    return policy


@dataclass(frozen=True)
class Faults:
    """Rate of each fault per request (their sum must be <= 1)."""

    rate_limit: float = 0.0
    server_error: float = 0.0
    hang: float = 0.0
    malformed: float = 0.0
    empty: float = 0.0
    garbage: float = 0.0
    retry_after: float = 1.0  # seconds, sent in the 429's Retry-After header
    hang_s: float = 30.0

    def __post_init__(self) -> None:
        rates = [getattr(self, f.name) for f in fields(self) if f.name not in ("retry_after", "hang_s")]
        if any(r < 0 for r in rates) or sum(rates) > 1 + 1e-12:
            raise ValueError(f"fault rates must be >= 0 and sum to <= 1, got {rates}")

    def draw(self, u: float) -> str | None:
        for name in ("rate_limit", "server_error", "hang", "malformed", "empty", "garbage"):
            u -= getattr(self, name)
            if u < 0:
                return name
        return None


class ScriptedServer:
    """See the module docstring. Use as a context manager, or call start()/stop()."""

    def __init__(self, policy: Policy | None = None, *, latency: float = 0.0, faults: Faults | None = None,
                 seed: int = 0, api_key: str | None = None, echo_key_in_errors: bool = False,
                 structured: bool = True, stream_only: bool = False,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.policy = policy or round_robin_policy()
        self.structured, self.stream_only = structured, stream_only
        self.latency = float(latency)
        self.faults = faults or Faults()
        self.seed = seed
        self.api_key = api_key
        self.echo_key_in_errors = echo_key_in_errors
        self.host, self.port = host, port
        self.stats: Counter[str] = Counter()
        self.requests: list[dict] = []
        self._seen: Counter[str] = Counter()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def api_base(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # --- lifecycle ---------------------------------------------------------------------
    def start(self) -> ScriptedServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as exc:  # surfaced to start()'s caller
                failure.append(exc)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=serve, name="scripted-openai-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise RuntimeError(f"scripted server failed to start: {failure[0]}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self, ready: threading.Event) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/chat/completions", self._handle)
        app.router.add_get("/v1/models", self._models)
        # handler_cancellation: a hung answer stops when the client times out and disconnects
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5,
                               handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # the ephemeral port chosen
        self._stopping = asyncio.Event()
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    # --- requests ----------------------------------------------------------------------
    async def _models(self, request):
        from aiohttp import web

        return web.json_response({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    async def _handle(self, request):
        from aiohttp import web

        raw = await request.read()
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            self._count("unauthorized")
            sent = request.headers.get("Authorization", "")
            message = "invalid api key"
            if self.echo_key_in_errors:  # masked first (as OpenAI does), then whole, far enough in to be cut
                key = sent.removeprefix("Bearer ")
                message = (f"Incorrect API key provided: {key[:12]}{'*' * 16}{key[-4:]}. " + "Check the key. " * 28
                           + f"(you sent {sent})")
            return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=401)
        try:
            body = json.loads(raw)
            messages = list(body["messages"])
        except (ValueError, KeyError, TypeError):
            self._count("bad_request")
            return web.json_response({"error": {"message": "expected a JSON body with 'messages'"}}, status=400)
        digest = hashlib.blake2b(raw, digest_size=16).hexdigest()
        with self._lock:
            self.requests.append(body)
            self.stats["requests"] += 1
            occurrence = self._seen[digest]
            self._seen[digest] += 1
            self._in_flight += 1
            self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self._in_flight)
        try:
            return await self._answer(request, body, messages, digest, occurrence)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _answer(self, request, body: dict, messages: list[dict], digest: str, occurrence: int):
        from aiohttp import web

        def refuse(reason: str, message: str):
            self._count(reason)
            return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=400)

        streaming = bool(body.get("stream"))
        if self.stream_only and not streaming:
            return refuse("not_streamed", "this server only streams: set stream to true")
        try:
            wanted = requested_format(body)
        except ValueError as exc:
            return refuse("bad_format", str(exc))
        if wanted is not None and not self.structured:
            return refuse("unsupported_format", f"{wanted[0]} is not supported by this server")
        fault = self.faults.draw(random.Random(f"{self.seed}:{digest}:{occurrence}").random())
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault == "rate_limit":
            self._count(fault)
            return web.json_response({"error": {"message": "rate limit exceeded", "type": "rate_limit_error"}},
                                     status=429, headers={"Retry-After": f"{self.faults.retry_after:g}"})
        if fault == "server_error":
            self._count(fault)
            return web.json_response({"error": {"message": "internal error", "type": "server_error"}}, status=500)
        if fault == "hang":
            self._count(fault)
            await asyncio.sleep(self.faults.hang_s)
        if fault == "malformed":
            self._count(fault)
            return web.Response(body=b'{"id": "chatcmpl-x", "choices": [{"message": ', status=200,
                                content_type="application/json")
        if fault == "empty":
            self._count(fault)
            reply: str | dict = ""
        elif fault == "garbage":
            self._count(fault)
            reply = "I cannot decide between them, they all seem fine!"
        else:
            try:
                reply = self.policy(messages, body)
            except Exception as exc:  # a broken policy is a test bug: make it loud, not a hang
                self._count("policy_error")
                return web.json_response({"error": {"message": f"policy failed: {exc!r}"}}, status=400)
            self._count("ok")
        try:
            message = render_reply(reply, wanted, messages)
        except ValueError as exc:  # a policy answering outside the schema is a test bug too
            self._count("policy_error")
            return web.json_response({"error": {"message": f"policy broke the schema: {exc}"}}, status=500)
        message, finish_reason = _truncate(message, body.get("max_tokens") or body.get("max_completion_tokens"))
        prompt_tokens = sum(len(_text(m).split()) for m in messages)
        completion_tokens = _words(message)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        with self._lock:
            number = self.stats["responses"]
            self.stats["responses"] += 1
        head = {"id": f"chatcmpl-{number}", "created": 0, "model": str(body.get("model", "scripted"))}
        if streaming:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream(request, head, message, finish_reason, usage if include_usage else None)
        return web.json_response({
            **head, "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}], "usage": usage,
        })

    async def _stream(self, request, head: dict, message: dict, finish_reason: str, usage: dict | None):
        """Server-sent events: the message in several deltas, a finish chunk, usage, [DONE]."""
        from aiohttp import web

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        deltas: list[dict] = [{"role": "assistant", "content": ""}]
        for field in ("reasoning_content", "content"):
            deltas += [{field: piece} for piece in _pieces(message.get(field) or "")]
        for index, call in enumerate(message.get("tool_calls") or ()):
            deltas.append({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                           "function": {"name": call["function"]["name"], "arguments": ""}}]})
            deltas += [{"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                       for piece in _pieces(call["function"]["arguments"])]
        chunks = [{"index": 0, "delta": delta, "finish_reason": None} for delta in deltas]
        chunks.append({"index": 0, "delta": {}, "finish_reason": finish_reason})
        for choice in chunks:
            await self._send_event(response, {**head, "object": "chat.completion.chunk", "choices": [choice]})
        if usage is not None:
            await self._send_event(response, {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    @staticmethod
    async def _send_event(response, payload: dict) -> None:
        await response.write(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _count(self, name: str) -> None:
        with self._lock:
            self.stats[name] += 1


# --- structured answers -------------------------------------------------------------------
def requested_format(body: Mapping[str, Any]) -> tuple[str, dict | None, str | None] | None:
    """What a request asks the reply to be: None (free text), ("json_schema", schema, None),
    ("json_object", None, None) or ("tool", parameters schema, function name)."""
    tools = body.get("tools")
    if tools:
        choice = body.get("tool_choice")
        name = None
        if isinstance(choice, Mapping):
            name = (choice.get("function") or {}).get("name")
        elif choice == "required" and len(tools) == 1:
            name = tools[0]["function"]["name"]
        if name is None:
            raise ValueError("tool_choice must name the one function to call")
        for tool in tools:
            if tool.get("function", {}).get("name") == name:
                return "tool", tool["function"].get("parameters") or {"type": "object"}, name
        raise ValueError(f"tool_choice names {name!r}, which is not among the tools")
    response_format = body.get("response_format")
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, Mapping):
            raise ValueError("response_format.json_schema.schema must be a JSON schema object")
        return "json_schema", dict(schema), None
    if kind == "json_object":
        return "json_object", None, None
    if kind == "text":
        return None
    raise ValueError(f"unknown response_format type {kind!r}")


def render_reply(reply: str | Mapping[str, Any], wanted: tuple | None, messages: list[dict]) -> dict:
    """The assistant message for a policy's reply in the requested form."""
    if isinstance(reply, str):
        reply = {"content": reply}
    message: dict[str, Any] = {"role": "assistant"}
    if reply.get("reasoning_content"):
        message["reasoning_content"] = reply["reasoning_content"]
    if "answer" not in reply:  # the policy wrote the reply itself (faults, awkward formats)
        message["content"] = reply.get("content", "")
        return message
    answer, reasoning = reply["answer"], reply.get("reasoning") or ""
    if wanted is None:
        shown = answer if isinstance(answer, str) else json.dumps(answer)
        message["content"] = f"{reasoning}\nANSWER: {shown}" if reasoning else f"ANSWER: {shown}"
        return message
    kind, schema, tool = wanted
    obj = _fill(schema, answer, reasoning, messages)
    if schema is not None:
        check_schema(obj, schema)
    text = json.dumps(obj)
    if kind == "tool":
        message["content"] = None
        message["tool_calls"] = [{"id": "call_0", "type": "function", "function": {"name": tool, "arguments": text}}]
    else:
        message["content"] = text
    return message


def _fill(schema: Mapping[str, Any] | None, answer: Any, reasoning: str, messages: list[dict]) -> dict:
    """An object for the schema's properties: 'reasoning', an option 'answer', or 'probabilities'."""
    properties = (schema or {}).get("properties") or {"reasoning": {}, "answer": {}}
    obj: dict[str, Any] = {}
    for key, spec in properties.items():
        if key == "reasoning":
            obj[key] = reasoning
        elif spec.get("type") == "object" or key == "probabilities":
            names = list((spec.get("properties") or {})) or prompt_options(messages)
            if isinstance(answer, str):
                obj[key] = {name: float(name == answer) for name in names}
            elif isinstance(answer, Mapping):
                obj[key] = {name: float(answer.get(name, 0.0)) for name in names}
            else:
                obj[key] = dict(zip(names, map(float, answer)))
        elif spec.get("type") == "array":
            obj[key] = list(answer)
        else:
            obj[key] = answer
    return obj


def check_schema(value: Any, schema: Mapping[str, Any], where: str = "$") -> None:
    """The subset of JSON schema that constrained decoders enforce; raises ValueError naming the path."""
    kind = schema.get("type")
    types = {"object": Mapping, "array": list, "string": str, "boolean": bool}
    if kind in types and not isinstance(value, types[kind]):
        raise ValueError(f"{where} must be of type {kind}")
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where} must be a number")
        if "minimum" in schema and value < schema["minimum"] or "maximum" in schema and value > schema["maximum"]:
            raise ValueError(f"{where} = {value} is outside [{schema.get('minimum')}, {schema.get('maximum')}]")
    if "enum" in schema and value not in schema["enum"]:
        raise ValueError(f"{where} = {value!r} is not in the enum")
    if kind == "object":
        properties = schema.get("properties") or {}
        missing = [key for key in schema.get("required", ()) if key not in value]
        if missing:
            raise ValueError(f"{where} lacks the required {missing}")
        if schema.get("additionalProperties") is False and set(value) - set(properties):
            raise ValueError(f"{where} has keys outside the schema: {sorted(set(value) - set(properties))}")
        for key, item in value.items():
            if key in properties:
                check_schema(item, properties[key], f"{where}.{key}")
    if kind == "array":
        if "minItems" in schema and len(value) < schema["minItems"] or \
                "maxItems" in schema and len(value) > schema["maxItems"]:
            raise ValueError(f"{where} has {len(value)} items")
        for i, item in enumerate(value):
            check_schema(item, schema.get("items") or {}, f"{where}[{i}]")


def _words(message: Mapping[str, Any]) -> int:
    calls = message.get("tool_calls") or ()
    texts = [message.get("content") or "", message.get("reasoning_content") or "",
             *(call["function"]["arguments"] for call in calls)]
    return sum(len(str(text).split()) for text in texts)


def _truncate(message: dict, max_tokens: int | None) -> tuple[dict, str]:
    """Cut a reply to `max_tokens` words (reasoning, content, then tool arguments), as a length-limited server."""
    calls = message.get("tool_calls")
    if not max_tokens or _words(message) <= max_tokens:
        return message, "tool_calls" if calls else "stop"
    left, cut = int(max_tokens), dict(message)

    def take(text: str | None) -> str:
        nonlocal left
        words = str(text or "").split()
        kept, left = words[:left], max(0, left - len(words))
        return " ".join(kept)

    for field in ("reasoning_content", "content"):
        if cut.get(field):
            cut[field] = take(cut[field])
    if calls:
        cut["tool_calls"] = [{**call, "function": {**call["function"], "arguments": take(call["function"]["arguments"])}}
                             for call in calls]
    return cut, "length"


def _pieces(text: str, size: int = 7) -> list[str]:
    """A text in the few-character pieces a token stream delivers."""
    return [text[i:i + size] for i in range(0, len(text), size)]


_POLICIES = {"round-robin": round_robin_policy, "fixed": fixed_policy, "uniform-vector": uniform_vector_policy}


def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys
    import time

    parser = argparse.ArgumentParser(description="Serve a scripted OpenAI-compatible model on 127.0.0.1.")
    parser.add_argument("--policy", choices=sorted(_POLICIES), default="round-robin")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction of unparseable answers")
    args = parser.parse_args(argv)
    policy = _POLICIES[args.policy]()
    if args.error_rate:
        policy = erring_policy(policy, args.error_rate)
    with ScriptedServer(policy, latency=args.latency, port=args.port) as server:
        print(server.api_base, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            sys.exit(0)


if __name__ == "__main__":
    main()
