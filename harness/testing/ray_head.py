"""A local Ray head on 127.0.0.1 for tests and benchmarks, stopped with everything it started.

    with LocalRayHead(cpus=2) as head:
        run_plan(plan, out, executor=RayExecutor(address=head.address))
        head.pids("ray::RayEpisodeWorker")   # the processes of its actors (to kill one)

It runs `ray start --head --block` as a child process with its own temp folder and the
dashboard off, on the loopback address only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps Ray
from advertising the machine's other interfaces). Leaving the block stops the head gracefully
and then kills whatever of its process tree is left, so no Ray process outlives the test, and
no `ray stop` touches another Ray on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# the driver must also see loopback as its node address (ray reads these at import and init);
# a loopback-only test cluster needs no token (Ray 2.5x+ would otherwise write ~/.ray/auth_token)
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalRayHead:
    def __init__(self, cpus: int = 2, object_store_mb: int = 200, start_timeout: float = 120.0) -> None:
        self.cpus, self.object_store_mb, self.start_timeout = cpus, object_store_mb, start_timeout
        self.address = ""
        self._process: subprocess.Popen | None = None
        self._temp = ""
        self._saved_env: dict[str, str | None] = {}

    def __enter__(self) -> LocalRayHead:
        import psutil

        for name, value in LOOPBACK_ENV.items():
            self._saved_env[name] = os.environ.get(name)
            os.environ[name] = value
        if "ray" in sys.modules:  # Ray read its network mode at import: it must be loopback-only too
            from ray._private import ray_constants

            if ray_constants.ENABLE_RAY_CLUSTER:
                self._restore_env()
                raise RuntimeError("ray was imported before LocalRayHead set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: "
                                   "its driver would use the machine's external address; set it before importing ray")
        # a short path: Ray's unix sockets live under it (107-byte limit)
        self._temp = tempfile.mkdtemp(prefix="rh-ray-", dir="/tmp")
        port = _free_port()
        self.address = f"127.0.0.1:{port}"
        ray = Path(sys.executable).with_name("ray")
        log = open(Path(self._temp) / "head.log", "wb")
        self._process = subprocess.Popen(
            [str(ray), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
             "--num-cpus", str(self.cpus), "--object-store-memory", str(self.object_store_mb * 2**20),
             "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", self._temp],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ.copy())
        log.close()
        deadline = time.monotonic() + self.start_timeout
        try:
            while b"Ray runtime started" not in (Path(self._temp) / "head.log").read_bytes():
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Ray head did not start: {self.log()[-2000:]}")
                time.sleep(0.2)
            psutil.Process(self._process.pid)  # still there
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def log(self) -> str:
        return (Path(self._temp) / "head.log").read_text(errors="replace")

    def pids(self, title_prefix: str) -> list[int]:
        """The head's descendant processes whose title starts with `title_prefix` (e.g. an actor's class)."""
        import psutil

        found = []
        for child in psutil.Process(self._process.pid).children(recursive=True):
            try:
                if " ".join(child.cmdline()).startswith(title_prefix):
                    found.append(child.pid)
            except psutil.Error:
                pass
        return found

    def __exit__(self, *exc: object) -> None:
        import psutil

        try:
            if self._process is not None and self._process.poll() is None:
                tree = psutil.Process(self._process.pid).children(recursive=True)
                self._process.send_signal(signal.SIGTERM)  # `ray start --block` stops its processes
                try:
                    self._process.wait(60)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(10)
                for child in tree:  # anything that outlived the graceful stop
                    try:
                        child.kill()
                    except psutil.Error:
                        pass
                psutil.wait_procs(tree, timeout=10)
        finally:
            self._restore_env()
            shutil.rmtree(self._temp, ignore_errors=True)

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
