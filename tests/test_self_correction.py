"""Self-correction scenarios end to end: a scripted model through litellm whose every answer is known,
so the RISE metrics, rewards and regrets the harness records are known exactly."""

from __future__ import annotations

import json

import polars as pl
import pytest

from harness import load_run, parse_suite, run_plan
from harness._self_correction import self_correction_table
from harness.testing.openai_server import ScriptedServer, answer_script_policy
from scenarios import ScenarioError, make

TURNS = 5
ROLLOUTS = 5
SEEDS = (11, 12, 13)  # tasks A, B, C


def gold_by_question(params=None) -> dict[str, tuple[int, int]]:
    """question -> (task index, gold answer) for the three tasks."""
    out = {}
    for index, seed in enumerate(SEEDS):
        problem = make("self-correction/arithmetic", params or {}, seed).problem
        out[problem.question] = (index, int(problem.answer))
    return out


def script(golds):
    """Task A: turn 1 right in rollouts 0 and 3 (else gold+1), then always right.
    Task B: right, wrong, right, wrong, right in every rollout (wrong = gold+2).
    Task C: no answer at turn 1; then right in rollout 0 only (else gold+3)."""

    def answer(question: str, turn: int, seed: int):
        task, gold = golds[question]
        sample = seed // TURNS  # the agent asks turn t of rollout r with seed r * TURNS + t (agent seed 0)
        assert seed == sample * TURNS + turn - 1
        if task == 0:
            return gold if turn > 1 or sample in (0, 3) else gold + 1
        if task == 1:
            return gold if turn % 2 == 1 else gold + 2
        if turn == 1:
            return None
        return gold if sample == 0 else gold + 3

    return answer


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REGRET_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def server():
    with ScriptedServer(answer_script_policy(script(gold_by_question()))) as running:
        yield running


def plan(server, **params):
    return parse_suite({
        "seed": 0, "rollouts": ROLLOUTS,
        "agents": [{"agent": "openai/scripted", "api_base": server.api_base, "seed": 0, "backoff_base": 0.01}],
        "scenarios": [{"id": "arith", "family": "self-correction/arithmetic", "params": {"turns": TURNS, **params},
                       "seeds": list(SEEDS)}],
    })


def test_metrics_are_exactly_the_scripted_ones(server, tmp_path):
    result = run_plan(plan(server), tmp_path / "run")
    assert result.finished == len(SEEDS) * ROLLOUTS and result.failed == 0
    decisions, episodes = load_run(tmp_path / "run")
    table = self_correction_table(decisions, episodes)
    row = table.row(0, named=True)
    assert (row["tasks"], row["episodes"], row["oracle"]) == (3, 15, False)
    assert row["m1@t1"] == pytest.approx(7 / 15)  # A 2/5, B 5/5, C 0/5
    assert row["m5@t1"] == pytest.approx(1 / 3)  # A: wrong answer 3-2, B right, C no answer at all
    assert row["m1@t5"] == pytest.approx(11 / 15)  # A 5/5, B 3-2 for the right answer, C only rollout 0
    assert row["p1@t5"] == pytest.approx(11 / 15)
    assert row["m5@t1"] != row["m1@t5"]
    assert row["accuracy_by_turn"] == pytest.approx([7 / 15, 6 / 15, 11 / 15, 6 / 15, 11 / 15])
    assert row["solved_by_turn"] == pytest.approx([7 / 15, 11 / 15, 11 / 15, 11 / 15, 11 / 15])
    for name in ("m1@t1", "m1@t5", "p1@t5"):  # clustered by task: 3 tasks
        assert row[f"{name}_low"] < row[name] < row[f"{name}_high"]

    episodes = episodes.collect().sort("task_id", "rollout")
    decisions = decisions.collect()
    # no oracle: every episode plays all turns; regret counts the wrong turns
    assert episodes["n_decisions"].to_list() == [TURNS] * 15
    by_task = {t: g.sort("rollout")["final_regret"].to_list() for (t,), g in episodes.group_by("task_id")}
    assert by_task["arith#11"] == [0.0, 1.0, 1.0, 0.0, 1.0]
    assert by_task["arith#12"] == [2.0] * 5
    assert by_task["arith#13"] == [1.0] + [5.0] * 4
    # rewards: C's first turn has no number at all (-1), a wrong number scores 0
    first_c = decisions.filter((pl.col("task_id") == "arith#13") & (pl.col("t") == 0))
    assert first_c["reward"].to_list() == [-1.0] * 5
    verdict = json.loads(first_c["feedback"][0])
    assert verdict == {"reward": -1.0, "answer": None, "correct": False}
    # the retry prompt follows every answer, right or wrong, with the question in it
    last = json.loads(decisions.filter((pl.col("task_id") == "arith#12") & (pl.col("t") == 1))["messages"][0])
    assert [m["role"] for m in last] == ["user", "assistant", "user"]
    assert last[-1]["content"].startswith("The answer is incorrect. Please try again. Here's the question: ")


def test_oracle_stops_at_the_first_correct_answer(server, tmp_path):
    run_plan(plan(server, oracle=True), tmp_path / "run")
    decisions, episodes = load_run(tmp_path / "run")
    frame = episodes.collect().sort("task_id", "rollout")
    assert frame["n_decisions"].to_list() == [1, 2, 2, 1, 2] + [1] * 5 + [2, 5, 5, 5, 5]
    assert frame["final_regret"].to_list() == [0, 1, 1, 0, 1] + [0] * 5 + [1, 5, 5, 5, 5]  # turns wasted
    row = self_correction_table(decisions, episodes).row(0, named=True)
    assert row["oracle"] is True
    assert row["p1@t5"] == pytest.approx(11 / 15)
    assert row["m1@t1"] == pytest.approx(7 / 15)
    assert row["m1@t5"] is None  # no oracle-free episode to vote over


def test_context_window_keeps_the_question_and_the_last_attempts(server, tmp_path):
    run_plan(plan(server, context_window=2), tmp_path / "run")
    decisions, episodes = load_run(tmp_path / "run")
    sent = [json.loads(m) for m in decisions.collect().sort("task_id", "rollout", "t")["messages"].to_list()]
    assert max(len(m) for m in sent) == 3  # question, last attempt, retry prompt
    assert sent[4][1]["content"].startswith("[attempt4]")  # turn 5 sees attempt 4 only
    row = self_correction_table(decisions, episodes).row(0, named=True)
    assert row["m1@t5"] == pytest.approx(11 / 15)  # the scripted model ignores the window


def test_bad_parameters_name_the_problem(tmp_path):
    with pytest.raises(ScenarioError, match="turns must be >= 1"):
        make("self-correction/arithmetic", {"turns": 0})
    with pytest.raises(ScenarioError, match="context_window must be an integer >= 0"):
        make("self-correction/arithmetic", {"context_window": -1})
    with pytest.raises(ScenarioError, match="retry_prompt may only use the placeholder"):
        make("self-correction/arithmetic", {"retry_prompt": "Wrong: {answer}"})
    with pytest.raises(ScenarioError, match="oracle must be true or false"):
        make("self-correction/arithmetic", {"oracle": "yes"})
    with pytest.raises(ScenarioError, match="needs a problem file"):
        make("self-correction/gsm8k", {})
    with pytest.raises(ScenarioError, match="missing.jsonl does not exist"):
        make("self-correction/math", {"path": str(tmp_path / "missing.jsonl")})


def test_file_problems_are_picked_by_seed(tmp_path):
    path = tmp_path / "gsm.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {i} + 1?", "answer": f"#### {i + 1}"}) + "\n"
                            for i in range(3)))
    env = make("self-correction/gsm8k", {"path": str(path), "retry_prompt": "No. {query}"}, 4)
    assert env.problem.question == "What is 1 + 1?"
    observation = env.reset(0)
    assert observation.messages[0]["content"].endswith("What is 1 + 1?")
    step = env.step("It is 3.")
    assert (step.reward, step.regret, step.done) == (0.0, 1.0, False)
    assert step.observation.messages[-1]["content"] == "No. What is 1 + 1?"
    assert env.step("\\boxed{2}").feedback["correct"] is True


def test_report_shows_the_rise_metrics(server, tmp_path):
    from harness.report import write_report

    run_plan(plan(server), tmp_path / "run")
    paths = write_report(tmp_path / "run")
    markdown = paths["self_correction"].read_text()
    assert "| openai/scripted | arith | 3 | 15 | 0.467 [" in markdown
    assert "0.47 0.40 0.73 0.40 0.73" in markdown
    csv = pl.read_csv(paths["self_correction_csv"])
    assert csv["m5@t1"][0] == pytest.approx(1 / 3)
    html = paths["html"].read_text()
    assert '<table id="self-correction">' in html and "m1@t5" in html
    assert "self_correction" not in write_report_of_bandit_run(tmp_path)


def write_report_of_bandit_run(tmp_path) -> dict:
    from harness.report import write_report

    run_plan(parse_suite({"seed": 0, "rollouts": 1, "agents": ["ucb1"],
                          "scenarios": [{"family": "bandit/bernoulli", "params": {"horizon": 10}}]}),
             tmp_path / "bandit")
    return write_report(tmp_path / "bandit")


def test_rise_data_from_a_real_run(server, tmp_path):
    import math

    from finetune._text_data import chat_examples
    from finetune.dataset import build_rise_dataset

    run_plan(plan(server), tmp_path / "run")
    # attempts, cut at the first correct answer: A 1,2,2,1,2; B 1 x5; C 2,5,5,5,5 -> 35
    counts = {}
    for criterion in ("all", "better", "best", "success"):
        result = build_rise_dataset([tmp_path / "run"], tmp_path / criterion, criterion=criterion, val_fraction=0)
        counts[criterion] = result.n_train
        assert result.metadata["counts"]["attempts"] == 35
    # better: every first attempt (15) + A's 0 -> 1 (3) + C's -1 -> 1 (1) and -1 -> 0 (4)
    assert counts == {"all": 35, "better": 23, "best": 35, "success": 11}
    rows = [json.loads(line) for line in (tmp_path / "all" / "train.jsonl").read_text().splitlines()]
    by_reward = {r["reward"]: r["weight"] for r in rows}
    assert by_reward == pytest.approx({1.0: math.exp(2.5), 0.0: 1.0, -1.0: math.exp(-2.5)})
    assert by_reward[1.0] == pytest.approx(12.18, abs=0.01) and by_reward[-1.0] == pytest.approx(0.082, abs=0.001)
    late = next(r for r in rows if r["task_id"] == "arith#13" and r["rollout"] == 1 and r["turn"] == 2)
    assert [(m["role"], m["train"]) for m in late["messages"]] == [
        ("user", False), ("assistant", False), ("user", False), ("assistant", False), ("user", False), ("assistant", True)]
    assert late["messages"][-1]["content"].startswith("[attempt3]")
    assert late["messages"][2]["content"].startswith("The answer is incorrect. Please try again.")
    examples = chat_examples(tmp_path / "all")  # what the hf backend trains on: weights and masks kept
    assert sorted({round(e["weight"], 3) for e in examples}) == [0.082, 1.0, 12.182]
    # distillation: only another agent's episodes; none here
    with pytest.raises(ValueError, match="no finished answer-scenario episode"):
        build_rise_dataset([tmp_path / "run"], tmp_path / "none", agents=["openai/teacher"])


def test_best_of_n_and_teacher_collect_rise_data(tmp_path):
    """Self-distillation: of 3 samples per turn the scenario's best is played; distillation: a
    teacher writes the turns after the first."""
    golds = gold_by_question()
    # seed (r * 4 turns + t) * 3 samples + k: the third sample (k = 2) is right from turn 2 on
    student = answer_script_policy(lambda q, turn, seed: golds[q][1] if turn >= 2 and seed % 3 == 2
                                   else golds[q][1] + 1)
    teacher = answer_script_policy(lambda q, turn, sample: golds[q][1])

    def dispatch(messages, request):
        return (teacher if request["model"].endswith("teacher") else student)(messages, request)

    with ScriptedServer(dispatch) as server:
        base = {"agent": "openai/student", "api_base": server.api_base, "seed": 0, "backoff_base": 0.01,
                "cache": False}  # identical requests of different agents would be answered once
        suite = {"seed": 0, "rollouts": 2, "scenarios": [{"id": "arith", "family": "self-correction/arithmetic",
                                                         "params": {"turns": 4, "oracle": True}, "seeds": [11, 12]}]}
        run_plan(parse_suite({**suite, "agents": [{**base, "best_of": 3, "label": "best3"},
                                                  {**base, "label": "plain"},
                                                  {**base, "teacher": "openai/teacher", "label": "taught"}]}),
                 tmp_path / "run")
        requests = len(server.requests)
    decisions, episodes = load_run(tmp_path / "run")
    regret = {a: g["final_regret"].to_list() for (a,), g in episodes.collect().sort("task_id", "rollout").group_by("agent")}
    # plain asks turn t of rollout r with seed 4r + t: right first at seed 2 (r0, turn 3) and 5 (r1, turn 2)
    assert regret == {"best3": [1.0] * 4, "plain": [2.0, 1.0, 2.0, 1.0], "taught": [1.0] * 4}
    # best3: 3 samples at turns 1 and 2 of each episode; plain 3 + 2 turns per task; taught 2 turns
    assert requests == 4 * (3 + 3) + 2 * (3 + 2) + 4 * 2
    info = json.loads(decisions.filter((pl.col("agent") == "best3") & (pl.col("t") == 1)).collect()["info"][0])
    assert info["samples"] == {"rewards": [0.0, 0.0, 1.0], "chosen": 2}
    taught = decisions.filter((pl.col("agent") == "taught") & (pl.col("t") == 1)).collect()
    assert json.loads(taught["info"][0])["teacher"] == "openai/teacher"
    from finetune.dataset import build_rise_dataset

    result = build_rise_dataset([tmp_path / "run"], tmp_path / "distilled", criterion="success",
                                agents=["taught"], val_fraction=0)
    assert result.n_train == 4  # the teacher's correct second turns


def test_cli_rise_dataset_and_bad_input(server, tmp_path, capsys):
    from harness.cli import main

    run_plan(plan(server), tmp_path / "run")
    assert main(["dataset", str(tmp_path / "run"), "--rise", "success", "--out", str(tmp_path / "data"),
                 "--val-fraction", "0"]) == 0
    assert "RISE (success): 11 train / 0 validation examples from 35 attempts of 15 episodes" in capsys.readouterr().out
    assert main(["dataset", str(tmp_path / "run"), "--rise", "best", "--format", "openai",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "OpenAI JSONL cannot carry weights" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    bad_suite = tmp_path / "bad.toml"
    bad_suite.write_text('[[scenarios]]\nfamily = "self-correction/gsm8k"\nparams = {path = "nowhere.jsonl"}\n')
    assert main(["run", "--suite", str(bad_suite), "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert "nowhere.jsonl does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()
