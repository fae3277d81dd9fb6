"""Regret-ranked datasets: selection recomputed independently, split by task, exact assistant turns."""

import asyncio
import dataclasses
import hashlib
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from agents import PARSE_FALLBACK, PARSE_OK, Agent, AgentFactory, AgentSpec, Decision
from finetune.dataset import (
    DatasetConfig,
    KLowestRegret,
    LowestRegretFraction,
    RegretThreshold,
    RiseEpisode,
    RiseTurn,
    TopReward,
    build_dataset,
    load_runs,
    rise_examples,
    select_episodes,
    split_tasks,
    write_rise,
)
from harness import RunStore, execute, parse_suite, run_plan
from harness._store import DECISION_NAMES, EPISODE_NAMES
from harness import DecisionRecord, EpisodeRecord
from harness.cli import main
from scenarios import get_framing
from scenarios.framing import ANSWER_PREFIX


# --- test-only language agents: they fill messages/raw_output like an LLM agent does --------
class _ScriptedLLM(Agent):
    """Picks actions from its seed; with probability `fallback` 'fails to parse' (a recorded fallback)."""

    is_async = True
    kinds = frozenset({"bandit", "experts"})
    stateful = True
    fallback = 0.0

    def reset(self, episode):
        super().reset(episode)
        self.rng = np.random.default_rng(episode.seed)
        self.framing = get_framing(episode.framing)
        instructions = self.framing.answer_instructions(episode.kind, True, episode.n_actions)
        self.chat = [{"role": "system", "content": f"{episode.description}\n\n{instructions}"}]
        self.pending = ""

    async def adecide(self, observation):
        user = {"role": "user", "content": self.pending + self.framing.round_text(observation.t, self.episode.horizon)}
        messages = [*self.chat, user] if self.stateful else [self.chat[0], user]
        action = int(self.rng.integers(self.episode.n_actions))
        if self.rng.random() < self.fallback:
            raw, status = "I am not sure what to do here.", PARSE_FALLBACK
        else:
            raw = f"Round {observation.t + 1}: I lean towards option {action + 1}.\n{ANSWER_PREFIX} {self.framing.option_name(action)}"
            status = PARSE_OK
        self.chat = [*messages, {"role": "assistant", "content": raw}] if self.stateful else self.chat
        return Decision(action=action, reasoning=raw.split("\n")[0], raw_output=raw, parse_status=status,
                        messages=messages, attempts=1)

    def update(self, observation, decision, step):
        self.pending = self.framing.feedback_text(step.t, decision.action, None, step.feedback) + "\n"


class _StatelessLLM(_ScriptedLLM):
    stateful = False


class _FlakyLLM(_ScriptedLLM):
    fallback = 0.05


def _factory(name, cls):
    return AgentFactory(AgentSpec(name), cls, cls.kinds)


SCENARIOS = [
    {"id": "bern", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 12}, "framing": "buttons", "instances": 3},
    {"id": "exp", "family": "experts/full-info", "params": {"n_experts": 3, "horizon": 8}, "framing": "restaurants", "seeds": [4]},
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    baselines = parse_suite({"seed": 3, "rollouts": 4, "agents": ["ucb1", "thompson", "uniform", "hedge", "ftl"],
                             "scenarios": SCENARIOS})
    run_plan(baselines, root / "baselines")
    llm_plan = parse_suite({"seed": 5, "rollouts": 6, "agents": ["fake/chat", "fake/stateless", "fake/flaky"],
                            "scenarios": SCENARIOS})
    factories = {"fake/chat": _factory("fake/chat", _ScriptedLLM),
                 "fake/stateless": _factory("fake/stateless", _StatelessLLM),
                 "fake/flaky": _factory("fake/flaky", _FlakyLLM)}
    asyncio.run(execute(llm_plan, root / "llm", factories=factories))
    return root


def _sqlite_rows(run_dir, table):
    if table == "decisions":
        with RunStore(run_dir, create=False) as store:
            return [dataclasses.asdict(r) for r in store.iter_decisions()]
    db = sqlite3.connect(Path(run_dir) / "store.sqlite")
    rows = [dict(zip(EPISODE_NAMES, r)) for r in db.execute(f"SELECT * FROM {table}")]
    db.close()
    return rows


def _reference_selection(run_dirs, selector, drop_invalid=True):
    """The selection recomputed with plain Python over the SQLite stores (no polars)."""
    episodes = []
    for d in run_dirs:
        episodes += [dict(e, run=Path(d).name) for e in _sqlite_rows(d, "episodes")]
    eligible = [e for e in episodes if e["status"] == "finished" and (e["n_invalid"] == 0 or not drop_invalid)]
    kept = set()
    for task in {e["task_id"] for e in eligible}:
        group = [e for e in eligible if e["task_id"] == task]
        if isinstance(selector, TopReward):
            group.sort(key=lambda e: (-e["total_reward"], e["agent"], e["rollout"], e["run"]))
            chosen = group[: selector.k]
        elif isinstance(selector, KLowestRegret):
            group.sort(key=lambda e: (e["final_regret"], e["agent"], e["rollout"], e["run"]))
            chosen = group[: selector.k]
        elif isinstance(selector, LowestRegretFraction):
            group.sort(key=lambda e: (e["final_regret"], e["agent"], e["rollout"], e["run"]))
            chosen = group[: math.ceil(round(selector.fraction * len(group), 9))]
        else:
            chosen = [e for e in group if e["final_regret"] <= selector.max_regret]
        kept |= {(e["run"], e["agent"], e["task_id"], e["rollout"]) for e in chosen}
    return kept


def _read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.mark.parametrize("selector", [KLowestRegret(1), KLowestRegret(3), LowestRegretFraction(0.3),
                                      RegretThreshold(1.5), TopReward(2)], ids=lambda s: repr(s))
def test_selection_matches_independent_recomputation(runs, selector):
    run_dirs = [runs / "baselines", runs / "llm"]
    decisions, episodes = load_runs(run_dirs)
    kept = select_episodes(episodes, selector).collect()
    got = {tuple(r) for r in kept.select("run", "agent", "task_id", "rollout").iter_rows()}
    assert got == _reference_selection(run_dirs, selector)
    assert got  # every selector here keeps something


def test_dataset_rows_are_exactly_the_selected_trajectories(runs, tmp_path):
    run_dirs = [runs / "baselines", runs / "llm"]
    result = build_dataset(run_dirs, KLowestRegret(2), tmp_path / "ds", DatasetConfig(val_fraction=0.3))
    rows = _read_jsonl(result.train_path) + _read_jsonl(result.validation_path)
    got = {(r["run"], r["agent"], r["task_id"], r["rollout"]) for r in rows}
    assert got == _reference_selection(run_dirs, KLowestRegret(2))
    assert len(rows) == len(got)  # one example per trajectory in episode mode


def test_ties_are_broken_by_agent_then_rollout(tmp_path):
    """Hand-written episodes with equal regret: the tie-break decides, the same way every time."""
    def episode(agent, rollout, regret, n_invalid=0):
        row = dict.fromkeys(EPISODE_NAMES)
        row.update(agent=agent, scenario_id="s", task_id="s#1", family="bandit/bernoulli", kind="bandit",
                   instance_seed=1, rollout=rollout, status="finished", final_regret=regret, total_reward=-regret,
                   n_invalid=n_invalid, n_decisions=0)
        return EpisodeRecord(**row)

    with RunStore(tmp_path / "r") as store:
        for ep in [episode("b", 2, 1.0), episode("b", 0, 1.0), episode("a", 5, 1.0), episode("a", 1, 0.5, n_invalid=1),
                   episode("c", 0, 0.0)]:
            store.commit_episode(ep, [])
    _, episodes = load_runs([tmp_path / "r"])
    keys = lambda frame: [(r["agent"], r["rollout"]) for r in frame.iter_rows(named=True)]  # noqa: E731
    assert keys(select_episodes(episodes, KLowestRegret(3)).collect()) == [("c", 0), ("a", 5), ("b", 0)]
    # with invalid trajectories allowed, a#1 (regret 0.5) enters
    assert keys(select_episodes(episodes, KLowestRegret(2), drop_invalid=False).collect()) == [("c", 0), ("a", 1)]


def test_drop_invalid_excludes_fallback_trajectories(runs, tmp_path):
    flaky = [e for e in _sqlite_rows(runs / "llm", "episodes") if e["agent"] == "fake/flaky"]
    assert any(e["n_invalid"] > 0 for e in flaky) and any(e["n_invalid"] == 0 for e in flaky)
    config = DatasetConfig(agents=("fake/flaky",), val_fraction=0.0)
    kept = build_dataset([runs / "llm"], RegretThreshold(1e9), tmp_path / "a", config)
    kept_all = build_dataset([runs / "llm"], RegretThreshold(1e9), tmp_path / "b",
                             DatasetConfig(agents=("fake/flaky",), val_fraction=0.0, drop_invalid=False))
    assert kept.metadata["counts"]["kept"] == sum(1 for e in flaky if e["n_invalid"] == 0)
    assert kept_all.metadata["counts"]["kept"] == len(flaky)
    statuses = {d["parse_status"] for d in _sqlite_rows(runs / "llm", "decisions") if d["agent"] == "fake/flaky"}
    assert PARSE_FALLBACK in statuses


def test_no_task_crosses_the_split(runs, tmp_path):
    result = build_dataset([runs / "baselines", runs / "llm"], KLowestRegret(3), tmp_path / "ds",
                           DatasetConfig(per="decision", val_fraction=0.5, seed=11))
    train, validation = _read_jsonl(result.train_path), _read_jsonl(result.validation_path)
    assert train and validation
    train_tasks, validation_tasks = {r["task_id"] for r in train}, {r["task_id"] for r in validation}
    assert not train_tasks & validation_tasks
    split = result.metadata["split"]
    assert set(split["train_tasks"]) == train_tasks and set(split["validation_tasks"]) == validation_tasks
    # no trajectory on both sides either
    assert not {(r["run"], r["agent"], r["rollout"], r["task_id"]) for r in train} & \
        {(r["run"], r["agent"], r["rollout"], r["task_id"]) for r in validation}


def test_split_tasks_is_seeded_and_whole():
    tasks = [f"t{i}" for i in range(20)]
    train, val = split_tasks(tasks * 3, 0.25, seed=1)
    assert len(val) == 5 and sorted(train + val) == sorted(tasks)
    assert split_tasks(tasks, 0.25, seed=1) == (train, val)
    assert split_tasks(tasks, 0.25, seed=2) != (train, val)
    assert split_tasks(["only"], 0.5, 0) == (["only"], [])


def _decisions_by_episode(run_dir):
    out = {}
    for d in sorted(_sqlite_rows(run_dir, "decisions"), key=lambda d: d["t"]):
        out.setdefault((d["agent"], d["task_id"], d["rollout"]), []).append(d)
    return out


@pytest.mark.parametrize("per", ["episode", "decision"])
def test_every_assistant_turn_is_exactly_the_model_output(runs, tmp_path, per):
    result = build_dataset([runs / "llm"], LowestRegretFraction(1.0), tmp_path / per,
                           DatasetConfig(per=per, val_fraction=0.2, agents=("fake/chat", "fake/stateless")))
    rows = _read_jsonl(result.train_path) + _read_jsonl(result.validation_path)
    produced = _decisions_by_episode(runs / "llm")
    checked = 0
    for row in rows:
        decisions = produced[(row["agent"], row["task_id"], row["rollout"])]
        assistant = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
        if per == "episode":
            assert assistant == [d["raw_output"] for d in decisions]
        else:
            decision = decisions[row["t"]]
            # the exact messages the model saw, then exactly what it wrote
            assert row["messages"][:-1] == json.loads(decision["messages"])
            assert row["messages"][-1] == {"role": "assistant", "content": decision["raw_output"]}
        checked += len(assistant)
    assert checked >= 100
    modes = result.metadata["episode_modes"]
    if per == "episode":  # the stateful agent's chat is kept as sent; the stateless one's is rebuilt
        assert modes["chat"] == modes["rebuilt"] > 0


def test_chat_mode_episode_equals_the_last_messages_sent(runs, tmp_path):
    result = build_dataset([runs / "llm"], KLowestRegret(1), tmp_path / "ds",
                           DatasetConfig(agents=("fake/chat",), val_fraction=0.0))
    produced = _decisions_by_episode(runs / "llm")
    for row in _read_jsonl(result.train_path):
        last = produced[(row["agent"], row["task_id"], row["rollout"])][-1]
        assert row["messages"] == [*json.loads(last["messages"]), {"role": "assistant", "content": last["raw_output"]}]


def test_baselines_are_verbalised_with_their_reason_and_answer(runs, tmp_path):
    result = build_dataset([runs / "baselines"], LowestRegretFraction(1.0), tmp_path / "ds",
                           DatasetConfig(per="episode", val_fraction=0.0))
    produced = _decisions_by_episode(runs / "baselines")
    seen = set()
    for row in _read_jsonl(result.train_path):
        framing = get_framing("restaurants" if row["task_id"].startswith("exp") else "buttons")
        decisions = produced[(row["agent"], row["task_id"], row["rollout"])]
        assistant = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
        assert row["messages"][0]["role"] == "system" and len(assistant) == len(decisions)
        for text, decision in zip(assistant, decisions):
            answer = text.rsplit("\n", 1)[1]
            assert answer.startswith(ANSWER_PREFIX + " ")
            if decision["policy"] is None:  # the answer names the action the algorithm played
                assert framing.option_index(answer[len(ANSWER_PREFIX):]) == decision["action"]
            else:
                shown = json.loads(answer[len(ANSWER_PREFIX):])
                policy = json.loads(decision["policy"])
                assert all(abs(shown.get(framing.option_name(i), 0.0) - p) < 1e-4 for i, p in enumerate(policy))
            info = json.loads(decision["info"])
            if row["agent"] == "ucb1" and "index" in info:  # UCB states its indices
                listed = ", ".join(f"{framing.option_name(i)} {v:g}" for i, v in enumerate(info["index"]))
                assert listed in text
                seen.add("ucb1")
    assert "ucb1" in seen


def test_builds_are_deterministic_and_hashed(runs, tmp_path):
    config = DatasetConfig(per="decision", format="prompt-completion", val_fraction=0.3)
    a = build_dataset([runs / "baselines", runs / "llm"], KLowestRegret(2), tmp_path / "a", config)
    b = build_dataset([runs / "baselines", runs / "llm"], KLowestRegret(2), tmp_path / "b", config)
    for name in ("train.jsonl", "validation.jsonl", "metadata.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    sha = a.metadata["sha256"]
    assert sha["train.jsonl"] == hashlib.sha256(a.train_path.read_bytes()).hexdigest()
    assert sha["validation.jsonl"] == hashlib.sha256(a.validation_path.read_bytes()).hexdigest()
    assert b.n_train == a.n_train > 0


def test_metadata_counts_and_acceptance(runs, tmp_path):
    result = build_dataset([runs / "baselines"], KLowestRegret(2), tmp_path / "ds", DatasetConfig(val_fraction=0.0))
    meta = json.loads(result.metadata_path.read_text())
    episodes = _sqlite_rows(runs / "baselines", "episodes")
    counts = meta["counts"]
    assert counts["finished"] == len(episodes) and counts["kept"] == 2 * counts["tasks"] == 8
    per_task = meta["acceptance_rate"]["per_task"]
    for task, rate in per_task.items():
        assert rate == pytest.approx(2 / sum(1 for e in episodes if e["task_id"] == task))
    kept = _reference_selection([runs / "baselines"], KLowestRegret(2))
    regrets = {(e["agent"], e["task_id"], e["rollout"]): e["final_regret"] for e in episodes}
    kept_regrets = [regrets[k[1:]] for k in kept]
    assert meta["mean_regret"]["kept"] == pytest.approx(sum(kept_regrets) / len(kept_regrets))
    assert meta["mean_regret"]["all"] == pytest.approx(sum(regrets.values()) / len(regrets))
    assert meta["mean_regret"]["kept"] < meta["mean_regret"]["all"]
    assert meta["selector"]["name"] == "k-lowest" and meta["selector"]["k"] == 2
    assert meta["sources"] == [{"path": str(runs / "baselines"), "run": "baselines"}]
    assert (tmp_path / "ds" / "train.parquet").exists()


def test_openai_format_rows_hold_only_messages(runs, tmp_path):
    result = build_dataset([runs / "baselines", runs / "llm"], KLowestRegret(1), tmp_path / "ds",
                           DatasetConfig(format="openai"))
    for row in _read_jsonl(result.train_path) + _read_jsonl(result.validation_path):
        assert list(row) == ["messages"]
        assert all(set(m) == {"role", "content"} and m["role"] in ("system", "user", "assistant")
                   and isinstance(m["content"], str) for m in row["messages"])
        assert row["messages"][-1]["role"] == "assistant"


@pytest.mark.parametrize("fmt", ["messages", "prompt-completion"])
def test_loads_with_datasets_and_passes_trl_check(runs, tmp_path, fmt):
    datasets = pytest.importorskip("datasets")
    data_utils = pytest.importorskip("trl.data_utils")
    result = build_dataset([runs / "baselines", runs / "llm"], KLowestRegret(2), tmp_path / "ds",
                           DatasetConfig(format=fmt, per="decision", val_fraction=0.3))
    loaded = datasets.load_dataset("json", data_files={"train": str(result.train_path),
                                                      "validation": str(result.validation_path)})
    assert len(loaded["train"]) == result.n_train and len(loaded["validation"]) == result.n_validation
    original = _read_jsonl(result.train_path)
    for i in (0, len(original) // 2, len(original) - 1):
        example = loaded["train"][i]
        assert data_utils.is_conversational(example)
        key = "messages" if fmt == "messages" else "completion"
        assert example[key] == original[i][key]  # unchanged by loading
    parquet = datasets.load_dataset("parquet", data_files=str(tmp_path / "ds" / "train.parquet"))["train"]
    assert parquet[0] == loaded["train"][0]


def test_rise_weights_and_masks():
    prompt = [{"role": "user", "content": "What is 2 + 3?"}]
    episodes = [
        RiseEpisode(prompt, [RiseTurn("It is 6.", 0.0), RiseTurn("It is 5.", 1.0)], task_id="q1"),
        RiseEpisode(prompt, [RiseTurn("5", 1.0)], task_id="q2"),
    ]
    rows = rise_examples(episodes, tau=0.4)
    assert [r["weight"] for r in rows] == pytest.approx([1.0, math.exp(2.5), math.exp(2.5)])
    second = rows[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user", "assistant"]
    assert [m["train"] for m in second] == [False, False, False, True]
    assert second[1]["content"] == "It is 6." and second[2]["content"] == "The answer is incorrect. Please try again."
    assert second[-1]["content"] == "It is 5."
    assert all(sum(m["train"] for m in r["messages"]) == 1 for r in rows)
    with pytest.raises(ValueError, match="tau"):
        rise_examples(episodes, tau=0)
    # the TRL-native form: history as the prompt, the target attempt as the only completion
    pc = rise_examples(episodes, tau=0.4, fmt="prompt-completion")[1]
    assert [m["content"] for m in pc["prompt"]] == [m["content"] for m in second[:-1]]
    assert pc["completion"] == [{"role": "assistant", "content": "It is 5."}]
    assert pc["weight"] == pytest.approx(math.exp(2.5))


def test_write_rise_splits_by_task(tmp_path):
    prompt = [{"role": "user", "content": "q"}]
    episodes = [RiseEpisode(prompt, [RiseTurn("a", 0.0), RiseTurn("b", 1.0)], task_id=f"q{i}") for i in range(10)]
    result = write_rise(episodes, tmp_path / "rise", val_fraction=0.2)
    train, validation = _read_jsonl(result.train_path), _read_jsonl(result.validation_path)
    assert len(train) == 16 and len(validation) == 4
    assert not {r["task_id"] for r in train} & {r["task_id"] for r in validation}


def test_bad_selector_and_config_values():
    with pytest.raises(ValueError, match="k must be"):
        KLowestRegret(0)
    with pytest.raises(ValueError, match="fraction"):
        LowestRegretFraction(1.5)
    with pytest.raises(ValueError, match="format"):
        DatasetConfig(format="csv")
    with pytest.raises(ValueError, match="val_fraction"):
        DatasetConfig(val_fraction=1.0)


def test_cli_builds_a_dataset(runs, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["dataset", str(runs / "baselines"), "--k", "2", "--out", str(out), "--format", "openai",
                 "--per", "decision", "--seed", "3"])
    assert code == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["selector"]["name"] == "k-lowest" and meta["format"] == "openai" and meta["split"]["seed"] == 3
    assert "kept 8 of" in capsys.readouterr().out
    assert main(["dataset", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert main(["dataset", str(runs / "baselines"), "--max-regret", "-1000", "--out", str(out)]) == 2
    assert "kept no trajectory" in capsys.readouterr().err


def test_llm_episode_with_a_decision_lacking_messages_is_rebuilt(tmp_path):
    """Rows written straight through RunStore.commit_episode: the framing retells what was not logged."""
    from harness import parse_suite as _parse

    plan = _parse({"seed": 0, "rollouts": 1, "agents": ["fake/x"],
                   "scenarios": [{"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 2, "horizon": 2},
                                  "framing": "buttons", "seeds": [9]}]})
    outputs = ["I try blue.\nANSWER: blue", "Now green.\nANSWER: green"]
    decisions = []
    for t, (action, raw) in enumerate(zip((0, 1), outputs)):
        row = dict.fromkeys(DECISION_NAMES)
        row.update(agent="fake/x", scenario_id="b", task_id="b#9", family="bandit/bernoulli", instance_seed=9,
                   rollout=0, t=t, action=action, reward=1.0, regret=0.1, cumulative_regret=0.1 * (t + 1),
                   raw_output=raw, parse_status="ok",
                   messages=json.dumps([{"role": "user", "content": "Round 1 of 2."}]) if t == 0 else None)
        decisions.append(DecisionRecord(**row))
    episode = dict.fromkeys(EPISODE_NAMES)
    episode.update(agent="fake/x", scenario_id="b", task_id="b#9", family="bandit/bernoulli", kind="bandit",
                   framing="buttons", instance_seed=9, rollout=0, status="finished", horizon=2, n_actions=2,
                   n_decisions=2, final_regret=0.2, total_reward=2.0, n_invalid=0)
    with RunStore(tmp_path / "run") as store:
        store.write_plan(plan.to_dict())
        store.commit_episode(EpisodeRecord(**episode), decisions)
    for per in ("episode", "decision"):
        result = build_dataset([tmp_path / "run"], KLowestRegret(1), tmp_path / per, DatasetConfig(per=per))
        rows = _read_jsonl(result.train_path)
        assert result.metadata["episode_modes"] == {"rebuilt": 1}
        assert [m["content"] for m in rows[-1]["messages"] if m["role"] == "assistant"] == outputs
        assert rows[-1]["messages"][-2]["content"] == ("Round 1: you pressed the blue button and received reward 1.\n"
                                                       "Round 2 of 2.")


def test_relabelled_summary_chats_are_the_prompts_of_other_option_orders():
    """Each cyclic relabelling of a summary prompt is exactly what the agent shows with the options
    listed in the shifted order, and its answer names the same scenario option."""
    from agents import EpisodeInfo
    from agents.llm import EpisodePrompts, OptionOrder
    from finetune._render import relabelled_chats
    from scenarios import make

    framing = get_framing("buttons")
    env = make("bandit/bernoulli", {"n_arms": 3, "horizon": 6}, 4)
    env.reset(4)
    info = EpisodeInfo(env.family, env.kind, env.feedback, 3, 6, False, "task", "bern", 0, 4, framing.name,
                       framing.describe(env))

    class Fixed:  # one given order for every round
        def __init__(self, order):
            self.order = OptionOrder(tuple(order))

        def at(self, t):
            return self.order

    def prompt(order):
        prompts = EpisodePrompts(info, framing, history="summary", reasoning=False, answer_format="json",
                                 orders=Fixed(order))
        for t, action in enumerate((2, 0, 2, 1)):
            prompts.record(t, action, None, {"reward": float(t % 2)}, None, "")
        return prompts.messages(4)

    names = framing.option_names(3)
    seen = (1, 2, 0)  # the round's order: listed j-th is scenario option seen[j]
    chosen = 2  # scenario option 2, listed at position seen.index(2) == 1
    chat = [*prompt(seen), {"role": "assistant", "content": f'{{"answer": "{names[seen.index(chosen)]}"}}'}]
    variants = relabelled_chats(chat, names)
    assert len(variants) == 3 and variants[0] == chat
    positions = set()
    for shift, variant in enumerate(variants):
        order = tuple(seen[(j + shift) % 3] for j in range(3))
        assert variant[:-1] == prompt(order)
        listed = json.loads(variant[-1]["content"])["answer"]
        assert order[names.index(listed)] == chosen
        positions.add(names.index(listed))
    assert positions == {0, 1, 2}
    # not a summary prompt (full history): left as it is
    full = [{"role": "user", "content": "History of the rounds so far:\nRound 1: you pressed blue."},
            {"role": "assistant", "content": '{"answer": "blue"}'}]
    assert relabelled_chats(full, names) == [full]


def test_decision_filters_need_decision_examples():
    from finetune._loop import IterateConfig
    from scenarios import ConfigError

    with pytest.raises(ConfigError, match="per='decision'"):
        IterateConfig(out="x", suite="smoke", max_decision_regret=0.0, k=1, rollouts=1)
    with pytest.raises(ConfigError, match="history='summary'"):
        IterateConfig(out="x", suite="smoke", relabel=True, per="decision", k=1, rollouts=1,
                      agent_params={"history": "full"})


def test_max_decision_regret_trains_only_on_the_kept_trajectories_optimal_decisions(tmp_path):
    import polars as pl

    from finetune._loop import IterateConfig, _training_set, select_trajectories

    folder = tmp_path / "iter-000"
    plan = parse_suite({"seed": 3, "rollouts": 4, "agents": [{"agent": "uniform"}],
                        "scenarios": [{"id": "bern", "family": "bandit/bernoulli",
                                       "params": {"n_arms": 3, "horizon": 8}, "instances": 2}]})
    run_plan(plan, folder / "rollouts")
    config = IterateConfig(out=str(tmp_path), suite="smoke", k=2, rollouts=4, per="decision", max_decision_regret=0.0)
    select_trajectories(folder, config)
    training = _training_set(folder, config)
    everything = _training_set(folder, dataclasses.replace(config, max_decision_regret=None))
    assert training.decisions.height and (training.decisions["regret"] == 0).all()
    assert training.decisions.height < everything.decisions.height == 2 * 2 * 8
    optimal = everything.decisions.filter(pl.col("regret") == 0)
    assert training.decisions.select("task_id", "rollout", "t").sort(pl.all()).equals(
        optimal.select("task_id", "rollout", "t").sort(pl.all()))
    assert training.episodes.height <= everything.episodes.height == 4
