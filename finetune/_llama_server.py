"""llama-cpp-python's OpenAI-compatible server, serving any GGUF file named in a request.

`python -m finetune._llama_server --model FIRST.gguf --host H --port P [--n-threads N ...]`

llama-cpp-python's own server knows only the models listed when it starts. Here its model
proxy also accepts an absolute path to a `.gguf` file as the request's `model` (what litellm
sends for `openai/<path>`), loading it with the first model's settings in place of the one
loaded before. So one long-lived server plays every checkpoint of an RMFT loop: each fit
writes a new GGUF, and the next request names it. Requests are served one at a time (the
server's own lock); a request for the loaded file reuses its KV cache prefix.

OpenAI's structured-output form `response_format = {"type": "json_schema", "json_schema":
{"schema": S}}` (what litellm sends for `answer_format = "json"`) is rewritten to the form this
server reads, `{"type": "json_object", "schema": S}`, which it enforces with a grammar.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m finetune._llama_server", description=__doc__)
    parser.add_argument("--model", required=True, help="GGUF loaded at start (and the default model)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-threads", type=int, default=1, help="threads for generation and prompt processing")
    parser.add_argument("--n-ctx", type=int, default=4096, help="context length")
    parser.add_argument("--n-batch", type=int, default=512, help="prompt tokens per evaluation batch")
    parser.add_argument("--seed", type=int, default=0, help="the model's default sampling seed")
    return parser.parse_args(argv)


def openai_response_format(body: dict) -> dict:
    """`body` with an OpenAI json_schema response_format in llama-cpp-python's json_object form."""
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        body = {**body, "response_format": {"type": "json_object", **({"schema": schema} if schema else {})}}
    return body


class ResponseFormatMiddleware:
    """ASGI middleware applying `openai_response_format` to chat completion request bodies."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST" or not scope["path"].endswith("/chat/completions"):
            return await self.app(scope, receive, send)
        import json

        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        try:
            raw = json.dumps(openai_response_format(json.loads(raw))).encode()
        except (ValueError, AttributeError):
            pass  # not a JSON object: the server answers it with its own validation error
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(raw)).encode()))
        return await self.app({**scope, "headers": headers}, replay, send)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import uvicorn
    from llama_cpp.server import app as server_app
    from llama_cpp.server.model import LlamaProxy
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    class PathProxy(LlamaProxy):
        """A proxy that also loads any existing `.gguf` path it is asked for."""

        def __call__(self, model: str | None = None):
            if model and model not in self._model_settings_dict and model.endswith(".gguf") and Path(model).is_file():
                self[model] = self._default_model_settings.model_copy(update={"model": model, "model_alias": model})
            return super().__call__(model)

    first = str(Path(args.model).resolve())
    settings = ModelSettings(model=first, model_alias=first, n_ctx=args.n_ctx, n_batch=args.n_batch,
                             n_threads=args.n_threads, n_threads_batch=args.n_threads, seed=args.seed,
                             verbose=False, chat_format=None)
    server = ServerSettings(host=args.host, port=args.port)
    server_app.LlamaProxy = PathProxy  # the name create_app builds its proxy from (this process only)
    app = server_app.create_app(server_settings=server, model_settings=[settings])
    uvicorn.run(ResponseFormatMiddleware(app), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
