"""Bad input: one clear line naming the problem, exit 2, and nothing written (no run directory)."""

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parents[1]
BANDIT = '[[scenarios]]\nid = "bern"\nfamily = "bandit/bernoulli"\nparams = {n_arms = 3, horizon = 10}\n'


def suite(tmp_path, text, name="suite.toml", raw=None):
    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text(text)
    return str(path)


def a_run(tmp_path):
    out = tmp_path / "done"
    assert main(["run", "--agent", "ucb1", "--scenario", "bandit/bernoulli", "--rollouts", "1", "--out", str(out),
                 "--no-progress", "--no-report"]) == 0
    return out


CASES = {
    "ucb1 c = -1": (lambda t: ["--suite", suite(t, 'agents = [{agent = "ucb1", c = -1.0}]\n' + BANDIT)],
                    "c must be >= 0"),
    "ucb1 c = 'big'": (lambda t: ["--suite", suite(t, 'agents = [{agent = "ucb1", c = "big"}]\n' + BANDIT)],
                       "c must be a finite number"),
    "epsilon = 2.0": (lambda t: ["--suite", suite(t, 'agents = [{agent = "epsilon-greedy", epsilon = 2.0}]\n' + BANDIT)],
                      "epsilon must be in [0, 1]"),
    "unknown agent": (lambda t: ["--agent", "ucb", "--scenario", "bandit/bernoulli"], "did you mean 'ucb1'"),
    "unknown agent setting": (lambda t: ["--suite", suite(t, 'agents = [{agent = "ucb1", cc = 1.0}]\n' + BANDIT)],
                              "unknown setting 'cc'"),
    "horizon = 10**9": (lambda t: ["--agent", "ucb1", "--suite", suite(t, BANDIT.replace("horizon = 10", "horizon = 1000000000"))],
                        "GiB per episode"),
    "horizon = 10**7": (lambda t: ["--agent", "ucb1", "--suite", suite(t, BANDIT.replace("horizon = 10", "horizon = 10000000"))],
                        "GiB per episode"),
    "rollouts = 10**12": (lambda t: ["--agent", "ucb1", "--rollouts", str(10**12), "--suite", suite(t, BANDIT)],
                          "decisions (limit"),
    "--resume with --agent/--seed": (lambda t: ["--resume", str(a_run(t)), "--agent", "thompson", "--seed", "3"],
                                     "--agent, --seed would change it"),
    "--resume with --rollouts/--suite": (lambda t: ["--resume", str(a_run(t)), "--rollouts", "9", "--suite", "core"],
                                         "--suite, --rollouts would change it"),
    "--out names a file": (lambda t: ["--agent", "ucb1", "--scenario", "bandit/bernoulli",
                                      "--out", suite(t, "x", name="a-file")], "is a file, not a run directory"),
    "--agent hedge on bandits only": (lambda t: ["--agent", "hedge", "--suite", suite(t, BANDIT)],
                                      "no agent can play any scenario"),
    "--max-cost -1": (lambda t: ["--agent", "ucb1", "--max-cost", "-1"], "max_cost must be a finite number"),
    "--max-cost nan": (lambda t: ["--agent", "ucb1", "--max-cost", "nan"], "max_cost must be a finite number"),
    "gaussian sigma = inf": (lambda t: ["--agent", "ucb1", "--suite", suite(t, BANDIT.replace(
        'bandit/bernoulli"\nparams = {n_arms = 3, horizon = 10}', 'bandit/gaussian"\nparams = {n_arms = 3, sigma = inf}'))],
        "must be a finite number"),
    "unknown framing in a scenario": (lambda t: ["--agent", "ucb1", "--suite", suite(t, BANDIT + 'framing = "casino"\n')],
                                      "unknown framing 'casino'"),
    "unknown framing flag (LLM)": (lambda t: ["--agent", "openai/x", "--api-base", "http://127.0.0.1:9/v1",
                                              "--framing", "casino", "--scenario", "bandit/bernoulli"],
                                   "unknown framing 'casino'"),
    "argparse: bad int": (lambda t: ["--rollouts", "many"], "argument --rollouts: invalid int value"),
    "argparse: unknown flag": (lambda t: ["--rolouts", "3"], "unrecognized arguments"),
    "non-UTF-8 suite": (lambda t: ["--suite", suite(t, None, raw=b'name = "caf\xe9"\n' + BANDIT.encode())],
                        "not UTF-8 text"),
    "corrupt plan.json": (lambda t: ["--resume", str(_corrupt(a_run(t)))], "plan.json: not a readable plan"),
    "answer_format the model cannot do": (lambda t: ["--agent", "openai/gpt-3.5-turbo-0301", "--answer-format", "json",
                                                     "--scenario", "bandit/bernoulli"], "needs structured output"),
}


def _corrupt(run):
    (run / "plan.json").write_text('{"plan": {"seed": ')
    return run


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default runs/ folder would appear here
    make_args, phrase = CASES[case]
    args = make_args(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    with pytest.raises(SystemExit) if case.startswith("argparse") else _no_exit() as caught:
        code = main(["run", "--no-progress", "--out", str(tmp_path / "out"), *args]
                    if "--out" not in args and "--resume" not in args else ["run", "--no-progress", *args])
    if case.startswith("argparse"):
        code = caught.value.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("regret: error:") and "\n" not in err, err
    assert phrase in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


class _no_exit:
    value = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_skipped_pairs_are_warned_about(tmp_path, capsys):
    path = suite(tmp_path, BANDIT + '[[scenarios]]\nid = "exp"\nfamily = "experts/full-info"\nparams = {horizon = 5}\n')
    assert main(["run", "--suite", path, "--agent", "hedge", "--agent", "ucb1", "--out", str(tmp_path / "r"),
                 "--no-progress", "--no-report", "--rollouts", "1"]) == 0
    err = capsys.readouterr().err
    assert "warning: agent 'hedge' cannot play scenario 'bern' (bandit): skipped" in err
    assert "warning: agent 'ucb1' cannot play scenario 'exp' (experts): skipped" in err


def test_allow_large_overrides_the_size_bound(tmp_path):
    from harness import parse_suite, run_plan

    plan = parse_suite({"agents": ["uniform"], "rollouts": 1, "scenarios": [
        {"family": "bandit/bernoulli", "params": {"n_arms": 2, "horizon": 10}}]})
    import harness._runner as runner

    limit = runner.MAX_DECISIONS
    try:
        runner.MAX_DECISIONS = 5
        with pytest.raises(ValueError, match="pass --allow-large"):
            run_plan(plan, tmp_path / "a")
        assert not (tmp_path / "a").exists()
        assert run_plan(plan, tmp_path / "b", allow_large=True).finished == 1
    finally:
        runner.MAX_DECISIONS = limit


def test_the_cli_uses_the_bundled_cost_map_and_never_fetches_it(tmp_path):
    """With a proxy that records connections: no fetch of litellm's cost map unless asked for."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    seen, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            seen.append(conn.recv(200))
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    env.update(PYTHONPATH=str(ROOT), HTTPS_PROXY=proxy, HTTP_PROXY=proxy, https_proxy=proxy, http_proxy=proxy,
               NO_PROXY="", no_proxy="")
    code = "import sys; from harness.cli import main; sys.exit(main(sys.argv[1:]))"
    # --agent openai/gpt-4o-mini imports litellm to price and check the model, then fails on the
    # missing key: enough to show whether litellm went for its cost map
    args = ["run", "--agent", "openai/gpt-4o-mini", "--answer-format", "json", "--out", str(tmp_path / "r"),
            "--scenario", "bandit/bernoulli", "--suite", suite(tmp_path, BANDIT), "--no-progress", "--no-report",
            "--rollouts", "1", "--max-retries", "0", "--timeout", "1"]
    try:
        subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120)
        assert seen == []
        subprocess.run([sys.executable, "-c", code, "--fetch-cost-map", *args], env=env, capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)
        assert any(b"CONNECT" in s or b"GET" in s for s in seen)  # the check can see a fetch
    finally:
        stop.set()
        thread.join(2)
        listener.close()
