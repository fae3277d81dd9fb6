"""The loop as steps: eval, rollout, select and fit alone over the state record; resume after a crash at each."""

from __future__ import annotations

import contextlib
import json
import math

import pytest

pytest.importorskip("torch")

import polars as pl  # noqa: E402

from finetune import _loop  # noqa: E402  (monkeypatched: the driver's names)
from finetune.iterate import (  # noqa: E402
    STEPS,
    IterateConfig,
    LoopState,
    StepRecord,
    evaluate,
    fit,
    iterate,
    prepare,
    rollout,
    select,
    serving,
    start_model,
    training_tasks,
    write_table,
)
from finetune._backend import Checkpoint  # noqa: E402
from harness import load_run, parse_suite  # noqa: E402

SUITE = {"name": "steps", "agents": [], "scenarios": [
    {"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": 8, "gap": 0.4}, "instances": 2},
]}
# what differs between two runs of the same loop: time
TIMES = ("wall_s", "cpu_s", "cumulative_cpu_s")


def _episodes(run_dir) -> pl.DataFrame:
    return load_run(run_dir)[1].collect()


def _config(tmp_path, name="loop", **changes):
    values = dict(out=str(tmp_path / name), suite=parse_suite(SUITE), iterations=1, rollouts=3, k=1,
                  eval_instances=2, backend_config={"epochs": 1}, seed=3)
    values.update(changes)
    return IterateConfig(**values)


def test_each_step_alone(tmp_path):
    loop, state = prepare(_config(tmp_path))
    assert json.loads((loop.directory / "state.json").read_text())["seeds"]["heldout"]["b"] == list(loop.heldout[0].instance_seeds)
    base = start_model(loop, state)
    assert state.checkpoints == {0: base} and base.agent.endswith("iter-000/checkpoint")

    record = evaluate(loop, state, 0)
    assert record.wall_s > 0 and record.cpu_s > 0 and record.dataset_size is None
    held_out = _episodes(loop.folder(0) / "eval")
    assert held_out.height == 2 and set(held_out["agent"]) == {"model"}

    training = training_tasks(loop, state, 0)
    assert all(seed % 2 == 0 for seed in training[0].instance_seeds)  # held-out seeds are odd
    rollout(loop, state, 0)
    rollouts = _episodes(loop.folder(0) / "rollouts")
    assert rollouts.height == 2 * 3 and sorted(set(rollouts["task_id"].str.extract(r"#(\d+)$").cast(int))) \
        == sorted(training[0].instance_seeds)

    chosen = select(loop, state, 0)
    kept = pl.read_parquet(loop.folder(0) / "dataset" / "episodes.parquet")
    assert chosen.dataset_size == kept.height == 2 and chosen.acceptance_rate == pytest.approx(2 / 6)
    assert chosen.level_samples == {"b": 6} and chosen.level_accepted == {"b": 2}
    # k = 1 lowest regret per task
    lowest = rollouts.group_by("task_id").agg(pl.col("final_regret").min()).sort("task_id")
    assert kept.sort("task_id")["final_regret"].to_list() == lowest["final_regret"].to_list()

    state.done["0/select"] = chosen
    trained = fit(loop, state, 0)
    assert trained.train_loss > 0 and trained.dataset_size is None
    checkpoint = json.loads((loop.folder(1) / "checkpoint.json").read_text())
    assert checkpoint["agent"].endswith("iter-001/checkpoint") and checkpoint["metrics"]["train_loss"] == trained.train_loss
    assert not state.checkpoints.get(1)  # the steps record nothing: the driver does


def test_steps_compose_to_what_iterate_does(tmp_path):
    """Running the steps by hand and `iterate` on the same settings give the same table."""
    config = _config(tmp_path, "by-hand")
    loop, state = prepare(config)
    start_model(loop, state)
    with serving(loop, state) as opened:
        for step in ("eval", "rollout", "select", "fit"):
            state.done[f"0/{step}"] = STEPS[step](opened, state, 0)
            if step == "fit":
                state.checkpoints[1] = Checkpoint.load(loop.folder(1))
        state.done["1/eval"] = evaluate(opened, state, 1)
    by_hand = write_table(loop.directory, state, 1)
    driven = iterate(_config(tmp_path, "driven")).rows
    assert by_hand.drop(TIMES).equals(driven.drop(TIMES))


class Crash(Exception):
    pass


STEP_NAMES = ("baselines", "0/eval", "0/rollout", "0/select", "0/fit", "1/eval")


@pytest.mark.parametrize("during", [False, True], ids=["after", "during"])
def test_resume_after_a_crash_at_each_step_is_exact(tmp_path, monkeypatch, during):
    reference = iterate(_config(tmp_path, "reference", baselines=("ucb1",)))
    assert reference.steps_run == list(STEP_NAMES)
    want = _state_without_times(tmp_path / "reference")
    for crashed_at in STEP_NAMES:
        config = _config(tmp_path, f"crash-{crashed_at.replace('/', '-')}", baselines=("ucb1",))
        if during:  # the step itself fails: nothing of it is recorded, and the next call redoes it
            _crash_in(monkeypatch, crashed_at)
            with pytest.raises(Crash):
                iterate(config)
            monkeypatch.undo()
        else:  # the step finished and the process died right after
            with pytest.raises(Crash):
                iterate(config, on_step=lambda step, at=crashed_at: _raise_at(step, at))
        resumed = iterate(config)
        start = STEP_NAMES.index(crashed_at) + (0 if during else 1)
        assert resumed.steps_run == list(STEP_NAMES[start:]), crashed_at
        assert resumed.rows.drop(TIMES).equals(reference.rows.drop(TIMES)), crashed_at
        assert _state_without_times(config.out) == want, crashed_at


def _raise_at(step: str, at: str) -> None:
    if step == at:
        raise Crash(step)


def _crash_in(monkeypatch, step: str) -> None:
    def crash(*args, **kwargs):
        raise Crash(step)

    if step == "baselines":
        monkeypatch.setattr(_loop, "baselines", crash)
    else:
        iteration, name = step.split("/")
        real = _loop.STEPS[name]
        monkeypatch.setitem(_loop.STEPS, name, lambda loop, state, i: crash() if i == int(iteration) else real(loop, state, i))


def _state_without_times(directory) -> dict:
    state = LoopState.read(directory)
    done = {step: {k: v for k, v in record.to_json().items() if k not in TIMES} for step, record in state.done.items()}
    checkpoints = {i: (c.agent.rsplit("/", 2)[-2:], dict(c.params)) for i, c in state.checkpoints.items()}
    return json.loads(json.dumps({"done": done, "checkpoints": checkpoints, "seeds": state.seeds,
                                  "warnings": state.warnings}, default=str).replace("NaN", "null"))


def test_an_old_state_file_resumes(tmp_path):
    """A state.json as the loop wrote it before the state record was typed: read, kept and continued."""
    config = _config(tmp_path)
    first = iterate(config)
    path = tmp_path / "loop" / "state.json"
    data = json.loads(path.read_text())
    # the old writer: plain dicts, keys it knew, no `warnings` unless there were some, and a NaN loss as NaN
    data["done"]["0/select"]["future_key"] = {"kept": True}
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
    state = LoopState.read(tmp_path / "loop")
    assert isinstance(state.done["0/select"], StepRecord) and state.done["0/select"].extra == {"future_key": {"kept": True}}
    assert state.to_json() == data  # nothing is lost or added on the way through
    more = iterate(_config(tmp_path, iterations=2))
    assert more.steps_run == ["1/rollout", "1/select", "1/fit", "2/eval"]
    assert LoopState.read(tmp_path / "loop").done["0/select"].extra == {"future_key": {"kept": True}}
    assert more.rows.filter(pl.col("iteration") <= 1).drop(TIMES).equals(first.rows.drop(TIMES))
    # a plain dict (what benchmarks read from state.json) still makes the table
    assert write_table(tmp_path / "loop", json.loads(path.read_text()), 2).drop(TIMES).equals(more.rows.drop(TIMES))


def test_step_record_json_round_trip():
    record = StepRecord(wall_s=1.5, cpu_s=0.5, dataset_size=4.0, acceptance_rate=math.nan, level_samples={"a": 3})
    data = record.to_json()
    assert data == {"wall_s": 1.5, "cpu_s": 0.5, "dataset_size": 4.0, "acceptance_rate": data["acceptance_rate"],
                    "level_samples": {"a": 3}}
    assert math.isnan(StepRecord.from_json(json.loads(json.dumps(data))).acceptance_rate)


def test_serving_is_opened_once_and_closed_when_a_step_fails(tmp_path, monkeypatch):
    from finetune._backend import Serving

    events = []
    real_backend = _loop.get_backend("torch")

    class Recording(type(real_backend)):
        @contextlib.contextmanager
        def serving(self, workdir, first):
            events.append("open")
            try:
                yield Serving()
            finally:
                events.append("close")

        def fit(self, base, dataset, config):
            raise Crash("fit")

    monkeypatch.setattr(_loop, "get_backend", lambda name: Recording())
    with pytest.raises(Crash):
        iterate(_config(tmp_path))
    assert events == ["open", "close"]
    assert sorted(LoopState.read(tmp_path / "loop").done) == ["0/eval", "0/rollout", "0/select"]
