"""harness.report: report files, the self-contained HTML page, and byte-identical leaderboards."""

from __future__ import annotations

import base64
import json
import re

import pytest
from rich.console import Console

from harness._store import DECISION_NAMES, EPISODE_NAMES, RunStore
from harness import DecisionRecord, EpisodeRecord
from harness.report import REPORT_FILES, report_run, write_report

PLANTED = "<script>alert('pwned')</script> I choose the second button & hope"
LONG_OUTPUT = "x" * 5000 + "THE-END"


def commit(store, agent, scenario_id, rollout, actions, *, optimal=1, gap=0.5, status="finished", reasoning=None,
           messages=None, raw=None, family="bandit/bernoulli"):
    task_id = f"{scenario_id}#0"
    rows, cumulative = [], 0.0
    for t, action in enumerate(actions):
        regret = 0.0 if action == optimal else gap
        cumulative += regret
        row = dict.fromkeys(DECISION_NAMES)
        row.update(
            agent=agent, scenario_id=scenario_id, task_id=task_id, family=family, instance_seed=0, rollout=rollout,
            t=t, action=action, reward=1.0 - regret, regret=regret, cumulative_regret=cumulative,
            optimal_action=optimal, reasoning=(reasoning or {}).get(t, f"round {t}"),
            raw_output=(raw or {}).get(t, f"ANSWER: {action}"), parse_status="ok" if action is not None else "fallback",
            prompt_tokens=5, completion_tokens=2, cost=0.001, latency_s=0.0, attempts=1,
            messages=None if messages is None else json.dumps(messages(t)),
            info=json.dumps({"counts": [t, t]}),
        )
        rows.append(DecisionRecord(**row))
    finished = status == "finished"
    episode = dict.fromkeys(EPISODE_NAMES)
    episode.update(
        agent=agent, scenario_id=scenario_id, task_id=task_id, family=family, kind="bandit", framing="buttons",
        instance_seed=0, rollout=rollout, env_seed=rollout, agent_seed=rollout, status=status,
        error=None if finished else "TimeoutError: <provider> timed out", horizon=len(actions) if finished else None,
        n_actions=2, n_decisions=len(rows), final_regret=cumulative if finished else None, total_reward=0.0,
        n_invalid=0, prompt_tokens=5 * len(rows), completion_tokens=2 * len(rows), cost=0.001 * len(rows),
        latency_s=0.0, attempts=len(rows), scenario_summary=json.dumps({"means": [0.3, 0.8]}),
    )
    store.commit_episode(EpisodeRecord(**episode), rows if finished else [])


def make_run(directory, horizon=8):
    """Two agents x two scenarios; the LLM-like agent carries messages, a planted reasoning and a long output."""
    def messages(t):
        return [{"role": "system", "content": "You press buttons."},
                {"role": "user", "content": f"Round {t}: which <b>button</b>?"}]

    with RunStore(directory) as store:
        store.write_plan({"name": "report-test", "seed": 7, "rollouts": 5,
                          "agents": [{"agent": "openai/mock", "label": "llm", "params": {}}, {"agent": "ucb1"}],
                          "scenarios": [{"id": "bandit/a", "family": "bandit/bernoulli", "params": {"n_arms": 2},
                                         "framing": "buttons", "seeds": [0], "rollouts": None}]})
        for scenario in ("bandit/a", "bandit/b"):
            for rollout in range(5):
                actions = [(t + rollout) % 2 for t in range(horizon)]
                commit(store, "ucb1", scenario, rollout, actions)
                llm_actions = [1 if t >= rollout else 0 for t in range(horizon)]
                llm_actions[-1] = None if rollout == 4 else llm_actions[-1]
                commit(store, "llm", scenario, rollout, llm_actions, messages=messages,
                       reasoning={0: PLANTED}, raw={1: LONG_OUTPUT})
        commit(store, "llm", "bandit/b", 5, [], status="failed")
    return directory


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run_dir = make_run(tmp_path_factory.mktemp("reports") / "run-one")
    return run_dir, write_report(run_dir)


def test_write_report_creates_every_file(report):
    run_dir, paths = report
    assert set(paths) == set(REPORT_FILES)
    for name, path in paths.items():
        assert path.parent == run_dir and path.name == REPORT_FILES[name]
        assert path.stat().st_size > 0, name
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(run_dir.glob("*.tmp"))
    markdown = paths["markdown"].read_text()
    assert "| agent | scenario |" in markdown and "| llm | bandit/a |" in markdown


def test_html_is_self_contained(report):
    _, paths = report
    page = paths["html"].read_text()
    assert 'id="leaderboard"' in page and 'id="episodes"' in page and 'id="plan"' in page
    match = re.search(r'<img id="regret-plot"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert match and base64.b64decode(match.group(1)) == paths["plot"].read_bytes()
    from harness.report import _SORT_SCRIPT

    # one script, ours (the sortable tables); a planted one is escaped text
    assert page.lower().count("<script") == 1 and f"<script>{_SORT_SCRIPT}</script>" in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # no external resources
    assert "report-test" in page  # the plan summary


def test_html_escapes_untrusted_text(report):
    _, paths = report
    page = paths["html"].read_text()
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; I choose the second button &amp; hope" in page
    assert "which &lt;b&gt;button&lt;/b&gt;?" in page  # the last user message
    assert "You press buttons." in page  # the full messages, collapsible
    assert "&lt;provider&gt; timed out" in page  # a failed episode's error


def test_html_episode_browser_caps_and_truncates(report):
    _, paths = report
    page = paths["html"].read_text()
    assert page.count("showing 3 of 5 finished episodes") == 4  # 2 agents x 2 scenarios
    assert "1 failed" in page
    assert "characters omitted" in page and "THE-END" in page and "x" * 4000 not in page
    for column in ("reasoning", "raw output", "action / policy", "reward", "regret", "cum. regret", "parse"):
        assert f"<th>{column}</th>" in page


def test_round_cap_and_episode_cap_are_configurable(tmp_path):
    run_dir = make_run(tmp_path / "long", horizon=30)
    paths = write_report(run_dir, episodes_per_group=1, max_rounds=10)
    page = paths["html"].read_text()
    assert "showing 1 of 5 finished episodes" in page
    assert "20 rounds not shown" in page


def test_leaderboard_files_are_byte_identical_across_runs(tmp_path, report):
    first_dir, first = report
    second_dir = make_run(tmp_path / "another-name")
    second = write_report(second_dir)
    for name in ("markdown", "csv", "parquet", "plot"):
        assert first[name].read_bytes() == second[name].read_bytes(), name
    for name in ("markdown", "csv"):
        text = second[name].read_text()
        assert "another-name" not in text and str(tmp_path) not in text


def test_report_run_prints_and_writes(tmp_path):
    run_dir = make_run(tmp_path / "printed")
    console = Console(record=True, width=160)
    paths = report_run(run_dir, console=console)
    output = console.export_text()
    assert "Leaderboard" in output and "bandit/a" in output and "llm" in output and "ucb1" in output
    assert "(+1 failed)" in output
    assert all(path.exists() for path in paths.values())


def test_report_sections_navigation_sweeps_and_plan_order(tmp_path):
    from harness import parse_suite, run_plan

    suite = {"name": "sweep", "seed": 0, "rollouts": 3, "agents": ["ucb1", "uniform", "thompson"], "scenarios": [
        {"id": "k", "family": "bandit/bernoulli", "params": {"n_arms": [2, 5, 10], "horizon": 40}, "instances": 2},
        {"id": "abrupt", "family": "bandit/nonstationary",
         "params": {"n_arms": 3, "horizon": 60, "mode": "abrupt", "variation_budget": 0.8}},
    ]}
    run_plan(parse_suite(suite), tmp_path / "run")
    paths = write_report(tmp_path / "run")
    page = paths["html"].read_text()
    ids = ["k/n_arms=2", "k/n_arms=5", "k/n_arms=10", "abrupt"]
    positions = [page.index(f"<h2>{i}</h2>") for i in ids]
    assert positions == sorted(positions)  # sections in the written order
    for index in range(4):
        assert f'href="#scenario-{index}"' in page and f'id="scenario-{index}"' in page
    assert 'id="sweeps"' in page and "regret against the sweep" in page
    assert page.count('class="plot curves"') == 4 and page.count('class="plot actions"') == 4
    assert "tied for best" in page and "win-rate matrix" in page and 'class="plot forest"' in page
    assert re.search(r"Embedded: \d+ of 63 finished episodes", page)
    board = (tmp_path / "run" / "leaderboard.csv").read_text().splitlines()
    order = list(dict.fromkeys(line.split(",")[1] for line in board[1:]))
    assert order == ids  # the leaderboard files follow the plan too
