"""A model server that dies mid-loop is named in the loop's error and started again for the next checkpoint."""
import os
import signal
import subprocess
import sys

from finetune import serve
from finetune._backend import Checkpoint
from finetune.backends.hf import LocalServing


class FileServer(serve.ModelServer):
    """The real process lifecycle with a stand-in program: `python -m http.server` answers /v1/models from a file."""

    def _command(self):
        return [sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1"]


def test_exit_problem_names_the_signal_or_status(tmp_path):
    server = serve.ModelServer(tmp_path, serve.ServeConfig(engine="transformers"))
    assert server.exit_problem() is None  # never started
    server.process = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"])
    server.process.wait()
    assert "was killed by SIGSEGV" in server.exit_problem() and "server.log" in server.exit_problem()
    server.process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    server.process.wait()
    assert "exited with status 3" in server.exit_problem()


def test_a_dead_server_is_reported_once_and_restarted(tmp_path, monkeypatch):
    monkeypatch.setattr(serve, "ModelServer", FileServer)
    monkeypatch.setenv("REGRET_SERVE_ENGINE", "transformers")
    workdir = tmp_path / "serve"
    (workdir / "v1").mkdir(parents=True)
    (workdir / "v1" / "models").write_text("{}")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    checkpoint = Checkpoint(str(model), f"openai/{model}", "hf")
    serving = LocalServing(workdir, checkpoint)
    try:
        first = serving.spec(checkpoint)
        assert serving.problem() is None
        os.kill(serving.server.process.pid, signal.SIGKILL)
        serving.server.process.wait()
        assert "was killed by SIGKILL" in serving.problem()
        assert serving.problem() is None  # reported once
        second = serving.spec(checkpoint)
        assert serving.server.process.poll() is None
        assert first.agent == second.agent == f"openai/{model.resolve()}"
        os.kill(serving.server.process.pid, signal.SIGTERM)  # found dead by the next spec(): restarted there
        serving.server.process.wait()
        serving.spec(checkpoint)
        assert serving.server.process.poll() is None
        assert "was killed by SIGTERM" in serving.problem()
    finally:
        serving.close()
