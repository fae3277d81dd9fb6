"""Serve local checkpoints behind an OpenAI-compatible HTTP server on 127.0.0.1.

A checkpoint from the `hf` or `unsloth` backend is played through the same litellm path as any
provider: `ModelServer` starts `transformers serve`, llama.cpp (llama-cpp-python's server, for
checkpoints with a GGUF beside them) or vLLM (where it is installed and a GPU exists) as a
subprocess on a free port, waits until `/v1/models` answers, and stops it (the
whole process group) afterwards, also when the body raises. The agent spec for a checkpoint is
`openai/<absolute checkpoint path>` with the server's `api_base` (`agent_spec`).

`transformers serve` started without a pinned model loads any local checkpoint directory named
in a request, so one server plays every iteration's checkpoint (each lives in a new directory)
with no restart. The llama.cpp engine does the same with GGUF files (`finetune._llama_server`
loads any `.gguf` path a request names; the spec is `openai/<absolute .gguf path>`), starting
from `checkpoint`'s GGUF. vLLM serves one model per process, so it needs `checkpoint` too.

Measured on the 2-core machine (SmolLM2-135M, T=20 bandit prompts, JSON answers): see
benchmarks/results/smollm2_serving.txt; llama.cpp is several times faster per call on a CPU.

Offline by construction: `HF_HUB_OFFLINE=1`, and `HF_HOME` points into `workdir` (with the
`hub/` folder `transformers serve` needs to list models). One thread per process by default:
on a small shared CPU the server and the trainer are far faster that way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scenarios import ConfigError, RegretError

ENGINES = ("auto", "transformers", "llama.cpp", "vllm")
GGUF_NAME = "model.gguf"  # the GGUF kept beside a checkpoint (init-model's copy, or the hf backend's export)


class ServerError(RegretError, RuntimeError):
    """The model server failed to start or died; the message carries the end of its log."""


@dataclass(frozen=True)
class ServeConfig:
    """How checkpoints are served for rollouts and evaluation."""

    engine: str = field(default="auto", metadata={
        "help": "'transformers' (`transformers serve`, CPU or GPU), 'llama.cpp' (llama-cpp-python, GGUF beside "
                "each checkpoint; fastest on a CPU), 'vllm' (GPU, one checkpoint per server) or 'auto' (vllm when "
                "importable and a GPU exists, else llama.cpp when importable and the checkpoint has a GGUF, "
                "else transformers)"})
    host: str = field(default="127.0.0.1", metadata={"help": "address the server listens on"})
    port: int = field(default=0, metadata={"help": "port; 0 picks a free one"})
    device: str = field(default="auto", metadata={"help": "transformers serve --device (auto, cpu, cuda:0)"})
    threads: int = field(default=1, metadata={"help": "OMP/MKL threads of the server process (llama.cpp: its threads)"})
    context: int = field(default=4096, metadata={"help": "llama.cpp: context length in tokens"})
    seed: int | None = field(default=0, metadata={"help": "server's default torch seed (None: unseeded)"})
    startup_timeout_s: float = field(default=120.0, metadata={"help": "give up if /v1/models does not answer"})
    extra_args: tuple[str, ...] = field(default=(), metadata={"help": "more command-line arguments for the server"})

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"serve: unknown engine {self.engine!r} (engines: {', '.join(ENGINES)})")
        if not 0 <= self.port < 65536:
            raise ConfigError(f"serve: port must be in 0..65535, got {self.port}")
        if self.threads < 1:
            raise ConfigError(f"serve: threads must be >= 1, got {self.threads}")
        if self.startup_timeout_s <= 0:
            raise ConfigError(f"serve: startup_timeout_s must be > 0, got {self.startup_timeout_s}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def resolve_engine(engine: str, checkpoint: str | Path | None = None) -> str:
    """'auto' -> 'vllm' when vLLM is importable and CUDA is available; else 'llama.cpp' when
    llama-cpp-python is importable and `checkpoint` has a GGUF; else 'transformers'."""
    if engine != "auto":
        return engine
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        try:
            import torch

            if torch.cuda.is_available():
                return "vllm"
        except ImportError:
            pass
    if checkpoint is not None and gguf_file(checkpoint) is not None and importlib.util.find_spec("llama_cpp"):
        return "llama.cpp"
    return "transformers"


def gguf_file(checkpoint: str | Path) -> Path | None:
    """The GGUF that plays `checkpoint`: the path itself (a .gguf file) or `model.gguf` inside it."""
    path = Path(checkpoint)
    if path.suffix == ".gguf" and path.is_file():
        return path.resolve()
    inside = path / GGUF_NAME
    return inside.resolve() if inside.is_file() else None


def model_name(checkpoint: str | Path, engine: str = "transformers") -> str:
    """The litellm model string for a local checkpoint: `openai/<absolute path>` (of its GGUF for llama.cpp)."""
    if engine == "llama.cpp":
        path = gguf_file(checkpoint)
        if path is None:
            raise ConfigError(f"serve: {checkpoint} has no {GGUF_NAME} for llama.cpp (the hf backend exports one "
                             "when the base came from `regret init-model --from smollm2`)")
        return f"openai/{path}"
    return f"openai/{Path(checkpoint).resolve()}"


class ModelServer:
    """A local OpenAI-compatible server in a subprocess; use as a (sync or async) context manager.

    >>> with ModelServer(workdir) as server:
    ...     spec = server.agent_spec(checkpoint, temperature=1.0, max_tokens=32)
    """

    def __init__(self, workdir: str | Path, config: ServeConfig | None = None,
                 checkpoint: str | Path | None = None) -> None:
        self.config = config or ServeConfig()
        self.engine = resolve_engine(self.config.engine, checkpoint)
        self.workdir = Path(workdir)
        self.checkpoint = None if checkpoint is None else Path(checkpoint).resolve()
        if self.engine in ("vllm", "llama.cpp") and self.checkpoint is None:
            raise ConfigError(f"serve: the {self.engine} engine starts from a checkpoint; pass checkpoint=")
        if self.engine == "llama.cpp":
            model_name(self.checkpoint, self.engine)  # names a missing GGUF now, not at the first request
        elif self.checkpoint is not None and not (self.checkpoint / "config.json").is_file():
            raise ConfigError(f"serve: {self.checkpoint} is not a model directory (no config.json)")
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "server.log"

    # --- lifecycle ----------------------------------------------------------------------
    @property
    def api_base(self) -> str:
        if self.port is None:
            raise ServerError("serve: the server is not running")
        return f"http://{self.config.host}:{self.port}/v1"

    def start(self) -> str:
        """Start the server and wait until it answers; returns the api_base."""
        if self.process is not None:
            return self.api_base
        self.workdir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self.config.port else 3  # a picked free port can be taken before the server binds it
        for attempt in range(attempts):
            self.port = self.config.port or free_port(self.config.host)
            self._spawn()
            try:
                self._wait_ready()
                return self.api_base
            except ServerError:
                died = self.process is not None and self.process.poll() is not None
                self.stop()
                if not died or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the server's whole process group: TERM, then KILL after 10 s."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ModelServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> ModelServer:
        import asyncio

        try:
            await asyncio.to_thread(self.start)
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)

    def __del__(self) -> None:  # a forgotten server must not outlive its owner
        with contextlib.suppress(Exception):
            self.stop()

    # --- what players need -----------------------------------------------------------------
    def agent_spec(self, checkpoint: str | Path | None = None, label: str = "", **params: Any):
        """An AgentSpec that plays `checkpoint` (default: the served one) through litellm on this server."""
        from agents import AgentSpec

        checkpoint = checkpoint if checkpoint is not None else self.checkpoint
        if checkpoint is None:
            raise ConfigError("serve: agent_spec needs a checkpoint")
        if not self.serves(checkpoint):
            raise ConfigError(f"serve: this vllm server serves {self.checkpoint}, not {checkpoint}")
        return AgentSpec(model_name(checkpoint, self.engine), {**params, "api_base": self.api_base}, label)

    def exit_problem(self) -> str | None:
        """None while the server runs (or was never started); else how it ended, with its log's tail."""
        if self.process is None or self.process.poll() is None:
            return None
        code = self.process.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        return f"the {self.engine} server on port {self.port} {how}; log {self.log_path}: {self._log_tail()}"

    def serves(self, checkpoint: str | Path) -> bool:
        """Whether this running server can play `checkpoint` (vLLM: only the one it started with)."""
        return self.engine != "vllm" or Path(checkpoint).resolve() == self.checkpoint

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server process and its children have used so far."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        try:
            import psutil

            process = psutil.Process(self.process.pid)
            total = sum(process.cpu_times()[:2])
            for child in process.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += sum(child.cpu_times()[:2])
            return float(total)
        except Exception:  # psutil missing or the process just ended: CPU time is a report, never a failure
            return 0.0

    def models(self) -> list[str]:
        import json

        with urllib.request.urlopen(f"{self.api_base}/models", timeout=5) as response:
            return [m.get("id", "") for m in json.loads(response.read()).get("data", [])]

    # --- internals --------------------------------------------------------------------------
    def _command(self) -> list[str]:
        cfg = self.config
        if self.engine == "llama.cpp":
            return [sys.executable, "-m", "finetune._llama_server", "--model", str(gguf_file(self.checkpoint)),
                    "--host", cfg.host, "--port", str(self.port), "--n-threads", str(cfg.threads),
                    "--n-ctx", str(cfg.context), *(["--seed", str(cfg.seed)] if cfg.seed is not None else []),
                    *cfg.extra_args]
        if self.engine == "vllm":
            return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.checkpoint),
                    "--served-model-name", str(self.checkpoint), "--host", cfg.host, "--port", str(self.port),
                    *(["--seed", str(cfg.seed)] if cfg.seed is not None else []), *cfg.extra_args]
        command = [sys.executable, "-c", "import sys; from transformers.cli.transformers import main; "
                   "sys.argv[0] = 'transformers'; sys.exit(main())",
                   "serve", "--host", cfg.host, "--port", str(self.port), "--device", cfg.device,
                   "--log-level", "warning"]
        if cfg.seed is not None:
            command += ["--default-seed", str(cfg.seed)]
        command += list(cfg.extra_args)
        if self.checkpoint is not None:
            command.append(str(self.checkpoint))
        return command

    def _environment(self) -> dict[str, str]:
        hf_home = self.workdir / "hf_home"
        (hf_home / "hub").mkdir(parents=True, exist_ok=True)  # without it /v1/models answers 500
        threads = str(self.config.threads)
        return {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_HUB_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}

    def _spawn(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (closed in stop)
        environment = self._environment()
        if self.engine == "llama.cpp":  # run from the workdir, the launcher must still import finetune
            root = str(Path(__file__).resolve().parent.parent)
            environment["PYTHONPATH"] = os.pathsep.join(p for p in (root, environment.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(self._command(), stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=environment,
                                        cwd=self.workdir, start_new_session=True,
                                        # the signal follows the starting *thread*: only the main thread's lasts
                                        preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread()
                                        else None)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_s
        url = f"http://{self.config.host}:{self.port}/v1/models"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise ServerError(f"serve: the {self.engine} server exited with status {code} before answering; "
                                  f"log {self.log_path}: {self._log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        raise ServerError(f"serve: the {self.engine} server did not answer {url} within "
                          f"{self.config.startup_timeout_s:g} s; log {self.log_path}: {self._log_tail()}")

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux), so a killed owner whose
    `finally` never ran (SIGKILL, SIGTERM without a handler) leaves no server behind."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def serve(workdir: str | Path, config: ServeConfig | Mapping[str, Any] | None = None,
          checkpoint: str | Path | None = None) -> ModelServer:
    """A ModelServer, to be used as `with serve(dir) as server:` or `async with serve(dir) as server:`."""
    if isinstance(config, Mapping):
        config = ServeConfig(**config)
    return ModelServer(workdir, config, checkpoint)
