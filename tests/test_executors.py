"""The multi-process and Ray executors: the same tables as the local executor, the cost cap held
across processes, a worker killed mid-episode recorded as failed (never duplicated) and resumed.

The Ray tests start one local Ray head on 127.0.0.1 with 2 CPUs for the module and stop it
(with every process it started); they are skipped only where Ray is not installed (`make test`
and CI install the `ray` extra)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import polars as pl
import pytest

from harness import load_run, parse_suite, run_plan
from harness.cli import main
from harness.testing.openai_server import ScriptedServer, round_robin_policy

PRICE = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
EXECUTORS = ["process", "ray"]


@pytest.fixture(scope="module")
def ray_head():
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'regret-harness[ray]')")
    from harness.testing.ray_head import LocalRayHead

    with LocalRayHead(cpus=2) as head:
        yield head


@pytest.fixture
def executor(request, ray_head_if_needed):
    """A fresh executor of the parametrized kind, 2 workers (the Ray one on the test's head)."""
    from harness import get_executor

    if request.param == "ray":
        return get_executor("ray", address=ray_head_if_needed.address, workers=2)
    return get_executor("process", workers=2)


@pytest.fixture
def ray_head_if_needed(request):
    return request.getfixturevalue("ray_head") if request.node.callspec.params.get("executor") == "ray" else None


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REGRET_CACHE_DIR", str(tmp_path / "cache"))


def _baseline_plan():
    return parse_suite({"seed": 11, "rollouts": 3, "agents": ["ucb1", "exp3", "hedge"], "scenarios": [
        {"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 40}, "instances": 2},
        {"id": "e", "family": "experts/full-info", "params": {"n_experts": 3, "horizon": 25}, "instances": 1},
    ]})


def _llm_plan(server, rollouts, instances=1, horizon=8):
    agent = {"agent": "openai/priced", "api_base": server.api_base, "cache": False, "max_tokens": 30,
             "backoff_base": 0.01, **PRICE}
    return parse_suite({"seed": 3, "rollouts": rollouts, "agents": [agent], "scenarios": [
        {"family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": horizon}, "instances": instances}]})


def _tables(directory):
    decisions, episodes = load_run(directory)
    keys = ["agent", "task_id", "rollout"]
    return (decisions.drop("run", "latency_s").sort(*keys, "t").collect(),
            episodes.drop("run", "latency_s").sort(keys).collect())


class Counting:
    def __init__(self):
        self.total, self.advanced = None, []

    def start(self, total, done):
        self.total = total

    def advance(self, episode, status):
        self.advanced.append((episode.key, status))

    def stop(self):
        pass


@pytest.mark.parametrize("executor", EXECUTORS, indirect=True)
def test_the_same_plan_gives_identical_tables_and_progress(tmp_path, executor):
    local = run_plan(_baseline_plan(), tmp_path / "local")
    progress = Counting()
    elsewhere = run_plan(_baseline_plan(), tmp_path / "elsewhere", executor=executor, progress=progress)
    assert local.finished == elsewhere.finished == 18 and elsewhere.failed == 0
    for mine, theirs in zip(_tables(tmp_path / "local"), _tables(tmp_path / "elsewhere")):
        assert mine.equals(theirs)
    assert progress.total == 18 and sorted(progress.advanced) == sorted(
        (key, "finished") for key in _tables(tmp_path / "local")[1].select("agent", "task_id", "rollout").rows())


@pytest.mark.slow
@pytest.mark.parametrize("executor", EXECUTORS, indirect=True)
def test_the_cost_cap_holds_across_processes(tmp_path, executor):
    """Each paid call in a worker reserves its worst case in the driver first: the cap is hard."""
    cap = 0.004
    with ScriptedServer(round_robin_policy(), latency=0.01) as server:
        result = run_plan(_llm_plan(server, rollouts=20, instances=4), tmp_path / "run", executor=executor,
                          concurrency=8, max_cost=cap)
    episodes = _tables(tmp_path / "run")[1]
    spent = episodes["cost"].sum()
    assert result.stopped and "cost limit" in result.stopped
    assert 0 < spent <= cap and result.spent == pytest.approx(spent)
    capped = episodes.filter(pl.col("error").str.contains("CostCapReached"))
    assert capped.height > 0 and (capped["status"] == "failed").all()
    assert episodes.height == result.finished + result.failed < 80  # the driver stopped handing out episodes


def _playing(kind, ray_head, server_port):
    """Worker processes in the middle of an episode: connected to the model server."""
    import psutil

    if kind == "ray":
        pids = ray_head.pids("ray::RayEpisodeWorker")
    else:
        pids = [child.pid for child in psutil.Process().children() if "spawn_main" in " ".join(child.cmdline())]
    return [pid for pid in pids
            if any(c.raddr and c.raddr.port == server_port for c in psutil.Process(pid).net_connections("tcp"))]


@pytest.mark.slow
@pytest.mark.parametrize("executor", EXECUTORS, indirect=True)
def test_a_worker_killed_mid_episode_fails_that_episode_once_and_resume_finishes_it(
        tmp_path, executor, ray_head_if_needed):
    kind = "ray" if ray_head_if_needed is not None else "process"
    with ScriptedServer(round_robin_policy(), latency=0.15) as server:
        plan = _llm_plan(server, rollouts=4, horizon=10)  # ~1.5 s an episode, one per worker at a time
        outcome = {}
        run = threading.Thread(target=lambda: outcome.setdefault(
            "result", run_plan(plan, tmp_path / "run", executor=executor, concurrency=2, max_cost=10.0)))
        run.start()
        try:
            deadline = time.monotonic() + 120
            port = server.port
            while not (playing := _playing(kind, ray_head_if_needed, port)) and run.is_alive():
                assert time.monotonic() < deadline, "the workers never started their episodes"
                time.sleep(0.05)
            time.sleep(0.5)  # a few of its calls settled (an episode lasts 1.5 s)
            os.kill(playing[0], 9)  # a real kill -9 of a worker process playing an episode
        finally:
            run.join(180)
        result = outcome["result"]
        assert result.failed == 1 and result.finished == 3, result.errors
        assert "worker lost mid-episode" in result.errors[0]
        episodes = _tables(tmp_path / "run")[1]
        assert episodes.height == 4 and episodes.select("agent", "task_id", "rollout").is_unique().all()
        (lost,) = episodes.filter(pl.col("status") == "failed").to_dicts()
        assert lost["cost"] > 0  # what its calls had cost stays counted against the cap
        decisions = _tables(tmp_path / "run")[0]
        assert decisions.height == 3 * 10  # the lost episode left no rows behind

        again = run_plan(plan, tmp_path / "run", resume=True, executor=executor, concurrency=2)
        assert again.finished == 1 and again.skipped == 3 and again.failed == 0
        run_plan(plan, tmp_path / "local")
    for mine, theirs in zip(_tables(tmp_path / "local"), _tables(tmp_path / "run")):
        assert mine.equals(theirs)


def test_regret_run_with_the_process_executor(tmp_path, capsys):
    common = ["--agent", "ucb1", "--agent", "thompson", "--scenario", "bandit/bernoulli-k5", "--rollouts", "2",
              "--no-progress", "--no-report"]
    assert main(["run", *common, "--out", str(tmp_path / "local")]) == 0
    assert main(["run", *common, "--out", str(tmp_path / "process"), "--executor", "process", "--workers", "2"]) == 0
    assert "0 failed" in capsys.readouterr().out
    for mine, theirs in zip(_tables(tmp_path / "local"), _tables(tmp_path / "process")):
        assert mine.equals(theirs)


@pytest.mark.parametrize("flags, message", [
    (["--executor", "local", "--workers", "2"], "executor 'local' takes no options (got workers)"),
    (["--executor", "process", "--address", "auto"], "executor 'process' takes only workers (got address)"),
    (["--executor", "process", "--workers", "0"], "workers must be an integer >= 1, got 0"),
    (["--executor", "procss"], "unknown executor 'procss'; did you mean 'process'"),
])
def test_bad_executor_flags_are_one_line_and_exit_2_before_anything_is_written(tmp_path, capsys, flags, message):
    assert main(["run", "--agent", "ucb1", "--out", str(tmp_path / "run"), "--no-progress", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_ray_executor_without_ray_gives_the_install_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["run", "--agent", "ucb1", "--out", str(tmp_path / "run"), "--executor", "ray"]) == 2
    assert "pip install 'regret-harness[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_core_never_imports_ray(tmp_path):
    code = ("import sys, harness, finetune, agents, scenarios; from harness import EXECUTORS, get_executor; "
            "EXECUTORS.names(); get_executor('process', workers=1); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.slow
@pytest.mark.parametrize("executor", EXECUTORS, indirect=True)
def test_the_loops_rollouts_and_evaluations_on_another_executor_give_the_same_iterations(
        tmp_path, executor, ray_head_if_needed):
    import extension_examples as ex
    from finetune._loop import IterateConfig, iterate
    from finetune.backends import BACKENDS

    BACKENDS.add("epsilon", ex.EpsilonBackend)
    try:
        suite = parse_suite({"seed": 0, "rollouts": 1, "agents": [], "scenarios": [
            {"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 30}}]})
        options = ({"executor": "ray", "address": ray_head_if_needed.address, "workers": 2}
                   if ray_head_if_needed is not None else {"executor": "process", "workers": 2})
        common = dict(suite=suite, agent="epsilon-greedy", backend="epsilon", iterations=1, rollouts=4, k=2,
                      eval_instances=2, baselines=("ucb1",))
        local = iterate(IterateConfig(out=str(tmp_path / "local"), **common))
        elsewhere = iterate(IterateConfig(out=str(tmp_path / "elsewhere"), **common, **options))
    finally:
        BACKENDS.remove("epsilon")
    timing = ["wall_s", "cpu_s", "cumulative_cpu_s"]  # the driver's own: workers' CPU is not in it
    assert elsewhere.rows.drop(timing).equals(local.rows.drop(timing))
    assert elsewhere.checkpoint.params == local.checkpoint.params
    runs = sorted(plan.parent.relative_to(tmp_path / "local") for plan in (tmp_path / "local").rglob("plan.json"))
    assert len(runs) >= 4  # the baselines, both evaluations and the rollouts
    for run in runs:
        for mine, theirs in zip(_tables(tmp_path / "local" / run), _tables(tmp_path / "elsewhere" / run)):
            assert mine.equals(theirs), run


def test_regret_iterate_refuses_a_bad_executor_before_writing(tmp_path, capsys):
    assert main(["iterate", "--suite", "iterate-bandit", "--out", str(tmp_path / "loop"), "--executor", "local",
                 "--workers", "2"]) == 2
    assert "executor 'local' takes no options (got workers)" in capsys.readouterr().err
    assert not (tmp_path / "loop").exists()


@pytest.mark.parametrize("executor", EXECUTORS, indirect=True)
def test_a_worker_that_cannot_start_stops_the_run_with_the_reason(tmp_path, executor, monkeypatch, request):
    """A worker whose start raises (here: it cannot reach the driver's budget, as a node behind a
    firewall would not) stops the run with that reason. Ray never restarts an actor whose
    constructor raised, so waiting for it hung the run; processes failed every episode unexplained."""
    import dataclasses
    import importlib
    import socket

    from harness._remote import WorkerStartError

    module = importlib.import_module(f"harness._{request.node.callspec.params['executor']}")
    real = module.budget_server

    def unreachable(*host):
        server = real(*host)
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server.address = dataclasses.replace(server.address, address=("127.0.0.1", port))
        return server

    monkeypatch.setattr(module, "budget_server", unreachable)
    outcome: list[BaseException | None] = []

    def run():
        try:
            run_plan(_baseline_plan(), tmp_path / "run", max_cost=1.0, executor=executor)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert outcome, "the run waited for a worker that cannot start"
    assert isinstance(outcome[0], WorkerStartError), outcome[0]
    assert "could not start: ConnectionRefusedError" in str(outcome[0])
    assert main(["run", "--resume", str(tmp_path / "run")]) == 0  # the run directory stays usable
