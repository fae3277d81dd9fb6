"""LLM agents end to end through litellm against a scripted OpenAI-compatible server on 127.0.0.1.

The scripted "model" plays a known policy in text (round robin, or the uniform distribution
for experts), so the regret the harness records must equal the regret computed here directly
from the scenario with the same seeds.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from agents import AgentSpec, resolve
from harness import load_run, parse_suite, run_plan
from harness.testing.openai_server import (ScriptedServer, erring_policy, round_robin_policy,
                                           uniform_vector_policy)
from scenarios import ScenarioSpec, make

ROOT = Path(__file__).resolve().parents[1]
ROUND_ROBIN, UNIFORM = round_robin_policy(), uniform_vector_policy()
ERRING = erring_policy(ROUND_ROBIN, rate=0.4, seed=3)


def dispatch(messages, request):
    """One server, several scripted models, told apart by the requested model name."""
    name = request["model"]
    if name.endswith("uniform"):
        return UNIFORM(messages, request)
    if name.endswith("erring"):
        return ERRING(messages, request)
    if name.endswith("broken"):
        return "I would rather not say."
    return ROUND_ROBIN(messages, request)


@pytest.fixture
def server():
    with ScriptedServer(dispatch) as running:
        yield running


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REGRET_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def llm(model, server, **settings):
    return {"agent": f"openai/{model}", "api_base": server.api_base, "backoff_base": 0.01, **settings}


def suite(agents, horizon=6, rollouts=2, seed=11):
    return {
        "seed": seed, "rollouts": rollouts, "agents": agents,
        "scenarios": [
            {"id": "bern", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": horizon}, "instances": 2},
            {"id": "exp", "family": "experts/full-info", "params": {"n_experts": 3, "horizon": horizon},
             "framing": "slot-machines"},
        ],
    }


def frames(directory):
    decisions, episodes = load_run(directory)
    return (decisions.drop("run").sort("agent", "task_id", "rollout", "t").collect(),
            episodes.drop("run").sort("agent", "task_id", "rollout").collect())


def expected_regret(plan, episode_row, play):
    """The exact regret of `play(t, n_actions)` on the episode's instance and seed."""
    task = next(t for t in plan.tasks() if t.task_id == episode_row["task_id"])
    env = make(ScenarioSpec(task.family, task.params, task.instance_seed))
    env.reset(episode_row["env_seed"])
    return sum(env.step(play(t, env.n_actions)).regret for t in range(env.horizon))


def test_scripted_policies_get_exactly_the_expected_regret(tmp_path, server):
    plan = parse_suite(suite([llm("rr", server), {**llm("uniform", server), "label": "uniform-llm"}]))
    result = run_plan(plan, tmp_path / "run")
    assert result.failed == 0 and result.finished == result.total == 2 * (2 * 2 + 2)
    decisions, episodes = frames(tmp_path / "run")
    vector_on_bandit = (pl.col("agent") == "uniform-llm") & (pl.col("family") == "bandit/bernoulli")
    assert set(decisions.filter(~vector_on_bandit)["parse_status"]) == {"ok"}
    assert set(decisions.filter(vector_on_bandit)["parse_status"]) == {"fallback"}
    for row in episodes.iter_rows(named=True):
        if row["agent"] == "openai/rr":
            want = expected_regret(plan, row, lambda t, k: t % k)
        elif row["kind"] == "experts":
            want = expected_regret(plan, row, lambda t, k: [1 / k] * k)
        else:  # the uniform vector is not a valid bandit answer: every decision falls back
            continue
        assert row["final_regret"] == pytest.approx(want, abs=1e-9), row
    rr = decisions.filter(pl.col("agent") == "openai/rr")
    assert rr["action"].to_list() == [t % 3 for t in rr["t"].to_list()]
    assert set(rr["reasoning"]) == {"I will try every option in turn."}
    uniform_experts = decisions.filter((pl.col("agent") == "uniform-llm") & (pl.col("family") == "experts/full-info"))
    assert set(uniform_experts["reasoning"]) == {"Spreading the weight evenly hedges against every option."}
    assert all(json.loads(p) == pytest.approx([1 / 3] * 3) for p in uniform_experts["policy"])
    # every row keeps the exact messages the model saw: the request the server received
    sent = {json.dumps(r["messages"]) for r in server.requests if r["model"] == "rr"}
    recorded = {json.dumps(json.loads(m)) for m in rr["messages"]}
    assert recorded == sent
    assert (rr["prompt_tokens"] > 0).all() and (rr["attempts"] == 1).all() and (rr["cost"] == 0).all()


def test_invalid_answers_are_reasked_then_fall_back_and_counted(tmp_path, server):
    plan = parse_suite(suite([llm("erring", server), llm("broken", server, max_invalid_retries=1)]))
    run_plan(plan, tmp_path / "run")
    decisions, episodes = frames(tmp_path / "run")
    broken = decisions.filter(pl.col("agent") == "openai/broken")
    assert set(broken["parse_status"]) == {"fallback"} and (broken["attempts"] == 2).all()
    last = json.loads(broken["messages"][0])
    assert last[-1]["role"] == "user" and last[-1]["content"].startswith("Your reply could not be used:")
    assert last[-2] == {"role": "assistant", "content": "I would rather not say."}
    erring = decisions.filter(pl.col("agent") == "openai/erring")
    statuses = set(erring["parse_status"])
    assert {"ok", "repaired"} <= statuses
    n_invalid = episodes.group_by("agent").agg(pl.col("n_invalid").sum(), pl.col("n_decisions").sum())
    counts = dict(zip(n_invalid["agent"], zip(n_invalid["n_invalid"], n_invalid["n_decisions"])))
    assert counts["openai/broken"][0] == counts["openai/broken"][1]
    assert counts["openai/erring"][0] == erring.filter(pl.col("parse_status") == "fallback").height
    from harness.metrics import leaderboard

    board = leaderboard(*load_run(tmp_path / "run"))
    rates = dict(zip(board["agent"], board["invalid_rate"]))
    assert rates["openai/broken"] == pytest.approx(1.0)
    # the fallback is a recorded uniform-random action, reproducible from the episode's seed
    run_plan(plan, tmp_path / "again")
    again, _ = frames(tmp_path / "again")
    assert again["action"].to_list() == decisions["action"].to_list()


def test_same_run_twice_gives_identical_tables_and_the_cache_makes_it_free(tmp_path, server, cache_dir):
    plan = parse_suite(suite([llm("rr", server), llm("erring", server, history="summary")]))
    run_plan(plan, tmp_path / "a")
    # both agents' clients shared the run's one connection to the cache file, closed when the run ended
    # (SQLite removes the write-ahead log when its last connection closes)
    assert (cache_dir / "responses.sqlite").exists() and not (cache_dir / "responses.sqlite-wal").exists()
    calls_first = server.stats["requests"]
    run_plan(plan, tmp_path / "b")  # every response from the cache
    assert server.stats["requests"] == calls_first
    run_plan(plan.replace(agents=tuple(AgentSpec(a.agent, {**a.params, "cache": False}, a.label) for a in plan.agents)),
             tmp_path / "c")  # no cache: the server answers again, deterministically
    assert server.stats["requests"] == 2 * calls_first
    volatile = ["latency_s", "attempts", "info", "cost"]
    tables = [frames(tmp_path / d) for d in "abc"]
    for decisions, episodes in tables[1:]:
        assert decisions.drop(volatile).equals(tables[0][0].drop(volatile))
        assert episodes.drop(["latency_s", "attempts", "cost"]).equals(
            tables[0][1].drop(["latency_s", "attempts", "cost"]))
    b_info = [json.loads(i) for i in tables[1][0]["info"]]
    assert all(i.get("cached") for i in b_info)
    assert (tables[1][0]["attempts"] == 0).all()
    for name in ("leaderboard.csv",):
        from harness.report import write_report

        for d in "ab":
            write_report(tmp_path / d)
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_sampled_rollouts_do_not_collapse_in_the_cache(tmp_path, server):
    """Same prompt, different rollout index: distinct cache entries (a new server call each)."""
    import asyncio

    from agents.llm import LLMClient, LLMSettings

    client = LLMClient(LLMSettings(model="openai/rr", api_base=server.api_base, temperature=1.0,
                                   cache_dir=str(tmp_path / "c")))
    messages = [{"role": "user", "content": "There are 2 buttons: blue, green. The game lasts 3 rounds. Round 1 of 3."}]

    async def go():
        out = [await client.complete(messages, rollout) for rollout in (0, 1, 0)]
        await client.aclose()
        return out

    first, second, repeat = asyncio.run(go())
    assert (first.cached, second.cached, repeat.cached) == (False, False, True)
    assert server.stats["requests"] == 2
    assert not (tmp_path / "c" / "responses.sqlite-wal").exists()  # a client alone closes its own cache


def test_response_caches_are_one_connection_per_file_and_close_together(tmp_path):
    from agents.llm import ResponseCaches

    caches = ResponseCaches()
    first, again, other = caches.open(tmp_path / "a"), caches.open(tmp_path / "a" / "."), caches.open(tmp_path / "b")
    assert first is again and first is not other
    first.put("00" * 20, "m", {"content": "x"})
    caches.close()
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        first.get("00" * 20)
    with pytest.raises(sqlite3.ProgrammingError):
        other.put("11" * 20, "m", {})
        other.flush()
    reopened = ResponseCaches().open(tmp_path / "a")  # a later run opens its own, and sees what was written
    assert reopened is not first and reopened.get("00" * 20) == {"content": "x"}
    reopened.close()


def test_history_modes_multi_turn_and_reasoning_off_reach_the_model(tmp_path, server):
    agents = [
        {**llm("rr", server, history="summary"), "label": "summary"},
        {**llm("rr", server, multi_turn=True), "label": "multi"},
        {**llm("rr", server, reasoning=False, framing="restaurants"), "label": "terse"},
    ]
    plan = parse_suite(suite(agents, horizon=4, rollouts=1))
    run_plan(plan, tmp_path / "run")
    decisions, episodes = frames(tmp_path / "run")
    assert set(decisions["parse_status"]) == {"ok"}
    bern = decisions.filter(pl.col("family") == "bandit/bernoulli")

    def sent(label, t):
        row = bern.filter((pl.col("agent") == label) & (pl.col("t") == t)).row(0, named=True)
        return json.loads(row["messages"])

    assert "Summary of the 3 rounds so far:" in sent("summary", 3)[-1]["content"]
    multi = sent("multi", 3)
    assert [m["role"] for m in multi] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert multi[2]["content"].startswith("I will try every option in turn.")
    assert multi[-1]["content"].startswith("Round 3:")  # the last outcome, then the next question
    terse = sent("terse", 0)[-1]["content"]
    assert "Do not explain" in terse and "restaurant" in terse
    assert set(episodes.filter(pl.col("agent") == "terse")["framing"]) == {"restaurants"}
    # every mode still plays round robin exactly
    for label in ("summary", "multi", "terse"):
        rows = bern.filter(pl.col("agent") == label)
        assert rows["action"].to_list() == [t % 3 for t in rows["t"].to_list()]


def test_cost_from_prices_and_max_cost_stops_new_work(tmp_path, server):
    price_file = tmp_path / "prices.toml"
    price_file.write_text('["openai/rr"]\ninput_per_million = 1.0\noutput_per_million = 4.0\n')
    plan = parse_suite(suite([llm("rr", server, price_file=str(price_file), cache=False, max_tokens=20)],
                             horizon=4, rollouts=2))
    result = run_plan(plan, tmp_path / "run", concurrency=1, max_cost=1e-9)
    # the cap is hard: no call fits under it, so none is made
    assert result.stopped and "cost limit" in result.stopped and result.finished == 0
    assert server.stats["requests"] == 0
    result = run_plan(plan, tmp_path / "run", resume=True)
    decisions, episodes = frames(tmp_path / "run")
    assert episodes.height == result.total and set(episodes["status"]) == {"finished"}
    want = decisions["prompt_tokens"] * 1e-6 + decisions["completion_tokens"] * 4e-6
    assert (decisions["cost"] - want).abs().max() < 1e-15 and decisions["cost"].min() > 0
    per_episode = decisions.group_by("task_id", "rollout").agg(pl.col("cost").sum())
    joined = episodes.join(per_episode, on=["task_id", "rollout"])
    assert (joined["cost"] - joined["cost_right"]).abs().max() < 1e-12


def test_self_hosted_models_cost_zero_and_unknown_settings_fail_clearly(server):
    from agents.llm import Pricer

    assert Pricer("hosted_vllm/my-model").cost(1000, 1000) == 0.0
    assert Pricer("openai/anything", "http://127.0.0.1:8000/v1").source == "self-hosted"
    assert Pricer("openai/gpt-4o-mini").cost(10**6, 0) == pytest.approx(0.15)
    with pytest.raises(ValueError, match="unknown setting 'temprature'; did you mean 'temperature'"):
        resolve(AgentSpec("openai/gpt-4o-mini", {"temprature": 0.5}))
    with pytest.raises(ValueError, match="never put an API key"):
        resolve(AgentSpec("openai/gpt-4o-mini", {"api_key": "sk-123"}))
    with pytest.raises(ValueError, match="history must be one of"):
        resolve(AgentSpec("openai/gpt-4o-mini", {"history": "everything"}))
    with pytest.raises(ValueError, match="REGRET_SURELY_UNSET_VAR"):
        resolve(AgentSpec("openai/gpt-4o-mini", {"api_key_env": "REGRET_SURELY_UNSET_VAR"}))


def test_api_keys_never_reach_any_file(tmp_path, server, cache_dir, monkeypatch):
    good = "planted-secret-GOOD-3f9a1c77e2-0d5e7b19c4a8f2e6d1b3"
    wrong = "planted-secret-WRONG-b81d04aa5c-6e2f9a7d3c1b8e4f0a5d"
    # names without KEY/TOKEN: the harness must redact what api_key_env names, not just "*_KEY"
    monkeypatch.setenv("E2E_PROVIDER_CREDENTIAL", good)
    monkeypatch.setenv("E2E_OTHER_CREDENTIAL", wrong)
    with ScriptedServer(dispatch, api_key=good, echo_key_in_errors=True) as keyed:
        plan = parse_suite(suite([
            {**llm("rr", keyed, api_key_env="E2E_PROVIDER_CREDENTIAL"), "label": "good"},
            {**llm("rr", keyed, api_key_env="E2E_OTHER_CREDENTIAL", max_retries=1), "label": "wrong"},
        ], horizon=3, rollouts=1))
        result = run_plan(plan, tmp_path / "run")
        assert keyed.stats["ok"] > 0 and keyed.stats["unauthorized"] > 0  # the key was really used
    from harness.report import write_report

    write_report(tmp_path / "run")
    _, episodes = frames(tmp_path / "run")
    failed = episodes.filter(pl.col("status") == "failed")
    assert failed.height == result.failed == 3 and set(failed["agent"]) == {"wrong"}
    assert all("<E2E_OTHER_CREDENTIAL>" in e and "not retryable" in e for e in failed["error"])
    # the server echoes the key masked and whole, past the point where old code cut the text:
    # no part of 8 characters or more of either key may be anywhere
    fragments = {key[i:i + 8].encode() for key in (good, wrong) for i in range(len(key) - 7)}
    scanned = 0
    for folder in (tmp_path / "run", cache_dir):
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                scanned += 1
                assert not [f for f in fragments if f in data], path
    assert scanned >= 6


def test_resume_after_kill_9_gives_the_same_table(tmp_path, cache_dir):
    with ScriptedServer(ROUND_ROBIN, latency=0.03) as slow:
        suite_file = tmp_path / "suite.toml"
        suite_file.write_text(f"""
seed = 5
rollouts = 3
agents = [{{agent = "openai/rr", api_base = "{slow.api_base}", cache = false}}]
[[scenarios]]
id = "bern"
family = "bandit/bernoulli"
params = {{n_arms = 3, horizon = 8}}
instances = 2
""")
        env = {**os.environ, "REGRET_CACHE_DIR": str(cache_dir)}
        killed = tmp_path / "killed"
        command = [sys.executable, "-m", "harness", "run", "--suite", str(suite_file), "--no-progress",
                   "--no-report", "--concurrency", "1"]
        proc = subprocess.Popen(command + ["--out", str(killed)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        finished = 0
        while time.time() < deadline and finished < 2:
            time.sleep(0.05)
            db = killed / "store.sqlite"
            if db.exists():
                try:
                    with sqlite3.connect(db) as con:
                        finished = con.execute("SELECT count(*) FROM episodes WHERE status='finished'").fetchone()[0]
                except sqlite3.Error:
                    pass
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert 2 <= finished < 6
        resume = [sys.executable, "-m", "harness", "run", "--resume", str(killed), "--no-progress", "--no-report",
                  "--concurrency", "1"]  # the saved plan: --suite would be refused with --resume
        done = subprocess.run(resume, cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        plan = parse_suite({"seed": 5, "rollouts": 3,
                            "agents": [{"agent": "openai/rr", "api_base": slow.api_base, "cache": False}],
                            "scenarios": [{"id": "bern", "family": "bandit/bernoulli",
                                           "params": {"n_arms": 3, "horizon": 8}, "instances": 2}]})
        run_plan(plan, tmp_path / "reference")
    volatile = ["latency_s", "info"]
    resumed, resumed_episodes = frames(killed)
    reference, reference_episodes = frames(tmp_path / "reference")
    assert resumed.drop(volatile).equals(reference.drop(volatile))
    assert resumed_episodes.height == 6 and set(resumed_episodes["status"]) == {"finished"}
    assert resumed_episodes.drop("latency_s").equals(reference_episodes.drop("latency_s"))


def test_cli_runs_an_llm_beside_a_baseline_and_reports(tmp_path, server, capsys):
    from harness.cli import main

    suite_file = tmp_path / "suite.toml"
    suite_file.write_text('seed = 3\nrollouts = 2\n[[scenarios]]\nid = "bern"\nfamily = "bandit/bernoulli"\n'
                          'params = {n_arms = 3, horizon = 4}\n')
    out = tmp_path / "run"
    code = main(["run", "--suite", str(suite_file), "--agent", "openai/rr", "--agent", "ucb1",
                 "--api-base", server.api_base, "--history", "summary", "--multi-turn", "--timeout", "5",
                 "--max-retries", "1", "--temperature", "0", "--no-progress", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "openai/rr" in printed and "ucb1" in printed
    plan = json.loads((out / "plan.json").read_text())
    params = next(a["params"] for a in plan["plan"]["agents"] if a["agent"] == "openai/rr")
    assert params == {"api_base": server.api_base, "history": "summary", "multi_turn": True, "timeout": 5.0,
                      "max_retries": 1, "temperature": 0.0}
    assert all(r["temperature"] == 0.0 for r in server.requests)
    assert (out / "report.html").exists() and "openai/rr" in (out / "leaderboard.csv").read_text()


def test_cli_names_a_bad_llm_setting(tmp_path, server, capsys):
    from harness.cli import main

    code = main(["run", "--agent", "openai/rr", "--api-base", server.api_base, "--max-retries", "-1",
                 "--out", str(tmp_path / "bad"), "--no-progress"])
    assert code == 2
    assert "max_retries must be an integer >= 0" in capsys.readouterr().err


def test_every_decision_samples_with_its_own_seed(tmp_path, server):
    """Per task, rollout and round: one seed per episode would make a seeded sampler draw the same
    number every round (the same quantile of the answer distribution, again and again)."""
    plan = parse_suite(suite([llm("rr", server, seed=7, cache=False)], rollouts=3))
    run_plan(plan, tmp_path / "run")
    seeds = [r["seed"] for r in server.requests if r["model"] == "rr"]
    assert len(set(seeds)) == len(seeds) and min(seeds) >= 7
    again = len(server.requests)
    run_plan(plan, tmp_path / "again")
    assert sorted(r["seed"] for r in server.requests[again:] if r["model"] == "rr") == sorted(seeds)
