"""The run store's on-disk form: compact segments, exact read-back, old run directories, message deltas."""

import math
import pickle
import shutil
import sqlite3
import struct
import tomllib
import zlib
from pathlib import Path

import orjson
import polars as pl
import pytest
import zstandard

from harness import load_run, parse_suite, run_plan
from harness import _segments as segments
from harness._records import DECISION_COLUMNS, DecisionRows
from harness._store import RunStore
from harness.testing.openai_server import ScriptedServer, round_robin_policy

LEGACY = Path(__file__).parent / "data" / "legacy-run-v1"  # written by the store before segments (JSON blocks)
TYPES = {name: sql for name, sql, _ in DECISION_COLUMNS}


def _frames(directory):
    decisions, episodes = load_run(directory)
    return (decisions.drop("run").sort("agent", "task_id", "rollout", "t").collect(),
            episodes.drop("run").sort("agent", "task_id", "rollout").collect())


def _bits(value):
    return struct.pack("<d", value) if isinstance(value, float) else value


def test_segments_read_back_every_value_exactly():
    history = ["Round 1: A paid 1."]
    single, multi = [], []
    conversation = [{"role": "system", "content": "You choose."}]
    for t in range(6):
        single.append(orjson.dumps([{"role": "system", "content": "You choose."},
                                    {"role": "user", "content": "Task.\n" + "\n".join(history) + f"\nRound {t + 2}?"}]).decode())
        history.append(f"Round {t + 2}: B paid {t % 2}.")
        conversation = [*conversation, {"role": "user", "content": f"Round {t}?"}]
        multi.append(orjson.dumps(conversation).decode())
        conversation = [*conversation, {"role": "assistant", "content": "ANSWER: A", "extra": [1, 2.5]}]
    columns = {
        "t": [0, 1, 2, 3, 4, 5],
        "action": [None, 3, 2**40, -7, 0, 1],
        "reward": [0.1, 1 / 3, math.nan, 1e308, -0.0, 1],
        "regret": [0.25] * 6,
        "reasoning": ["", "", "", "", "", ""],
        "parse_status": ["ok", "fallback", "ok", "ok", "ok", "ok"],
        "info": [None, '{"a":1}', None, '{"b":[1.5,2]}', "", None],
        "policy": [None] * 6,
        "messages": single,
        "raw_output": multi,  # any text column may hold such lists
    }
    n, decoded = segments.decode(segments.encode(columns, {**TYPES, "raw_output": "TEXT"}))
    assert n == 6
    for name, values in columns.items():
        got = segments.column_values(decoded[name], n)
        got = got.tolist() if hasattr(got, "tolist") else got
        want = [None if isinstance(v, float) and math.isnan(v) else v for v in values]  # NaN reads as null
        assert [_bits(v) for v in got] == [_bits(float(v)) if name == "reward" and v is not None else _bits(v)
                                           for v in want], name
    # the multi-turn history is stored once per message, the single-turn one as deltas
    for texts in (single, multi):
        encoded = segments.encode({"messages": texts}, TYPES)
        _, again = segments.decode(encoded)
        assert again["messages"] == texts
    # a t that is not 0..n-1 and a float in an INTEGER column are kept as written
    n, decoded = segments.decode(segments.encode({"t": [0, 2, 1], "action": [1, 2.5, 3]}, TYPES))
    assert decoded["t"].tolist() == [0, 2, 1] and decoded["action"] == [1, 2.5, 3]


def test_joined_texts_and_zlib_segments_of_earlier_runs_read_back_exactly():
    # distinct texts are stored joined with their lengths in characters: non-ASCII and empty ones too
    texts = ['{"a":"é"}', "", "日本語", '{"q":"\\"x\\""}', "🙂🙂", "plain"]
    blob = segments.encode({"info": texts, "reasoning": ["x", None, "y", "z", "w", "v"]}, TYPES)
    n, decoded = segments.decode(blob)
    assert n == 6 and decoded["info"] == texts and decoded["reasoning"] == ["x", None, "y", "z", "w", "v"]
    # a segment written by an earlier version (zlib instead of zstd) still decodes to the same columns
    raw = zstandard.ZstdDecompressor().decompress(blob)
    assert segments.decode(zlib.compress(raw, 1)) == (n, decoded)


def test_decision_rows_hold_the_episode_fields_once_and_equal_their_records():
    rounds = [(t, t % 3, None, None, None, None, 1.0 * t, 0.5, 0.5 * (t + 1), 2, "", "", "ok", 0, 0, 0.0, 0.0, 0,
               None, f'{{"t":{t}}}') for t in range(4)]
    rows = DecisionRows.for_episode(("ucb1", "b", "b#1", "bandit/bernoulli", 1, 0), rounds)
    records = list(rows)
    assert len(rows) == 4 and rows[2] == records[2] and rows[-1] == records[3]
    assert (records[1].agent, records[1].task_id, records[1].t, records[1].info) == ("ucb1", "b#1", 1, '{"t":1}')
    assert DecisionRows.of(records) == rows and list(rows[1:3]) == records[1:3]
    assert rows.total("reward") == 6.0 and rows.column("rollout") == [0] * 4
    with pytest.raises(IndexError):
        rows[4]
    # between processes they travel as the store's segment, committed as received
    received = pickle.loads(pickle.dumps(rows))
    assert received == rows and received.segment() == rows.segment() and list(received) == records
    assert len(pickle.dumps(rows)) < len(pickle.dumps(records))
    assert pickle.loads(pickle.dumps(DecisionRows())) == DecisionRows()


def _suite(agents, horizon=60):
    return parse_suite({"seed": 4, "rollouts": 3, "agents": agents, "scenarios": [
        {"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 5, "horizon": horizon}, "instances": 4}]})


def test_a_baseline_decision_takes_at_most_100_bytes_on_disk(tmp_path):
    plan = _suite(["uniform", "greedy", "ucb1", "thompson"], horizon=1000)
    run_plan(plan, tmp_path / "run")
    decisions = 4 * 4 * 3 * 1000
    size = (tmp_path / "run" / "store.sqlite").stat().st_size
    assert size / decisions <= 100, f"{size / decisions:.1f} bytes per decision"
    with RunStore(tmp_path / "run", create=False) as store:
        first = next(store.iter_decisions())
    assert (first.agent, first.t, first.parse_status, first.messages) == ("greedy", 0, "ok", None)


def test_a_run_directory_of_the_old_layout_reads_and_resumes(tmp_path):
    old = tmp_path / "old"
    shutil.copytree(LEGACY, old)
    plan = parse_suite(tomllib.loads((LEGACY / "suite.toml").read_text()))
    fresh = tmp_path / "fresh"
    run_plan(plan, fresh)
    with sqlite3.connect(fresh / "store.sqlite") as db:
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'decision_blocks'").fetchone()[0] == 0
    # the old JSON blocks read as the same tables a run written now has
    for left, right in zip(_frames(old), _frames(fresh)):
        assert left.equals(right)
    # a resumed old run writes its new episodes as segments beside the old blocks, and reads both
    partial = tmp_path / "partial"
    shutil.copytree(LEGACY, partial)
    with sqlite3.connect(partial / "store.sqlite") as db:
        keys = db.execute("SELECT agent, task_id, rollout FROM episodes ORDER BY agent, task_id, rollout "
                          "LIMIT 5").fetchall()
        for table in ("episodes", "decision_blocks"):
            db.executemany(f"DELETE FROM {table} WHERE agent = ? AND task_id = ? AND rollout = ?", keys)
    resumed = run_plan(plan, partial, resume=True)
    assert resumed.finished == 5 and resumed.skipped == 9
    with sqlite3.connect(partial / "store.sqlite") as db:
        assert db.execute("SELECT count(*) FROM decision_segments").fetchone()[0] == 5
        assert db.execute("SELECT count(*) FROM decision_blocks").fetchone()[0] == 9
    for left, right in zip(_frames(partial), _frames(fresh)):
        assert left.equals(right)


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REGRET_CACHE_DIR", str(tmp_path / "cache"))


def test_llm_messages_are_stored_once_and_rebuilt_exactly_as_sent(tmp_path):
    with ScriptedServer(round_robin_policy()) as server:
        agents = [{"agent": "openai/rr", "api_base": server.api_base, "cache": False, "label": "single"},
                  {"agent": "openai/rr", "api_base": server.api_base, "cache": False, "multi_turn": True,
                   "label": "multi"}]
        plan = parse_suite({"seed": 2, "rollouts": 1, "agents": agents, "scenarios": [
            {"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 40}}]})
        run_plan(plan, tmp_path / "run", concurrency=1)
        sent = sorted(orjson.dumps(request["messages"]) for request in server.requests)
    decisions, episodes = _frames(tmp_path / "run")
    assert decisions.height == 80 and len(sent) == 80
    rebuilt = []
    with RunStore(tmp_path / "run", create=False) as store:
        for row in episodes.iter_rows(named=True):
            messages = store.episode_messages(row["agent"], row["task_id"], row["rollout"])
            assert len(messages) == 40
            rebuilt += [orjson.dumps(m) for m in messages]
        # the export's `messages` column holds the same text
        assert sorted(t.encode() for t in decisions["messages"]) == sorted(rebuilt)
    assert sorted(rebuilt) == sent
    # stored once: the segments are far smaller than the messages they rebuild (quadratic in the horizon)
    with sqlite3.connect(tmp_path / "run" / "store.sqlite") as db:
        stored = db.execute("SELECT sum(length(data)) FROM decision_segments").fetchone()[0]
    assert stored * 20 < sum(len(t) for t in sent), (stored, sum(len(t) for t in sent))
