"""Execute a plan asynchronously with bounded concurrency into a crash-safe run directory."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from agents import VALID_PARSE_STATUSES, AgentFactory, EpisodeInfo, resolve
from harness._plan import Episode, Plan, scenario_kind
from harness._records import DecisionRecord, EpisodeRecord
from harness._store import FAILED, FINISHED, RunStore, RunStoreError
from scenarios import ConfigError, make
from scenarios.framing import DEFAULT_FRAMING


@dataclass
class RunResult:
    directory: Path
    total: int  # episodes in the plan
    finished: int  # finished in this call
    failed: int  # failed in this call (recorded with their error; --resume retries them)
    skipped: int  # already finished before this call
    stopped: str | None = None  # why new work stopped early (e.g. the cost limit)
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)


class Progress:
    """Progress hooks; the CLI subclasses this with a progress bar."""

    def start(self, total: int, done: int) -> None: ...

    def advance(self, episode: Episode, status: str) -> None: ...

    def stop(self) -> None: ...


_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace the values of secret-looking environment variables (API keys, tokens) in text."""
    for name, value in os.environ.items():
        if len(value) >= 8 and _SECRET_NAME.search(name) and value in text:
            text = text.replace(value, f"<{name}>")
    return text


def _json(value) -> str | None:
    # orjson: the decision rows' JSON columns are on the hot path
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _answer_text(answer: Any) -> str | None:
    # a free-form answer is stored as the text the scenario checked; a structured one (a numeric
    # agent's path) as JSON
    return answer if answer is None or isinstance(answer, str) else _json(answer)


async def play_episode(episode: Episode, factory: AgentFactory,
                       framing: str | None = None) -> tuple[EpisodeRecord, list[DecisionRecord]]:
    """Play one episode; return its record and its decisions' records."""
    task = episode.task
    env = make(task.spec)
    agent = factory()
    framing = framing or task.framing or DEFAULT_FRAMING
    description = ""
    if agent.is_async and env.framed:  # only language agents read the story; algorithms skip the rendering cost
        from scenarios.framing import get_framing

        description = get_framing(framing).describe(env)
    info = EpisodeInfo(
        family=task.family, kind=env.kind, feedback=env.feedback, n_actions=env.n_actions, horizon=env.horizon,
        accepts_policy=env.accepts_policy, task_id=task.task_id, scenario_id=task.scenario_id,
        rollout=episode.rollout, seed=episode.agent_seed, framing=framing,
        context_dim=getattr(env, "context_dim", 0), description=description,
        scenario=env if agent.privileged else None,
    )
    agent.reset(info)
    observation = env.reset(episode.env_seed)
    name, scenario_id, task_id, family = factory.name, task.scenario_id, task.task_id, task.family
    instance_seed, rollout = task.instance_seed, episode.rollout
    records: list[DecisionRecord] = []
    append = records.append
    cumulative = total_reward = 0.0
    is_async = agent.is_async
    decide = agent.decide
    while True:
        decision = await agent.adecide(observation) if is_async else decide(observation)
        step = env.step(decision.played)
        cumulative += step.regret
        total_reward += step.reward
        feedback = step.feedback
        append(DecisionRecord(
            name, scenario_id, task_id, family, instance_seed, rollout, step.t, decision.action,
            _json(decision.policy), _answer_text(decision.answer), _json(observation.context),
            _json(feedback) if len(feedback) > 1 or "reward" not in feedback else None,
            step.reward, step.regret, cumulative, step.optimal_action,
            decision.reasoning, decision.raw_output, decision.parse_status,
            decision.prompt_tokens, decision.completion_tokens, decision.cost, decision.latency_s, decision.attempts,
            _json(decision.messages), _json(decision.info),
        ))
        agent.update(observation, decision, step)
        if step.done:
            break
        observation = step.observation
    record = EpisodeRecord(
        name, scenario_id, task_id, family, env.kind, framing, instance_seed, rollout, episode.env_seed,
        episode.agent_seed, FINISHED, None, env.horizon, env.n_actions, len(records), cumulative, total_reward,
        n_invalid=sum(1 for r in records if r.parse_status not in VALID_PARSE_STATUSES),
        prompt_tokens=sum(r.prompt_tokens for r in records), completion_tokens=sum(r.completion_tokens for r in records),
        cost=sum(r.cost for r in records), latency_s=sum(r.latency_s for r in records),
        attempts=sum(r.attempts for r in records), scenario_summary=json.dumps(env.summary(), sort_keys=True),
        explainer=getattr(agent, "explainer", None),
    )
    return record, records


def failed_record(episode: Episode, error: str) -> EpisodeRecord:
    task = episode.task
    return EpisodeRecord(
        episode.agent.name, task.scenario_id, task.task_id, task.family, scenario_kind(task.family), task.framing,
        task.instance_seed, episode.rollout, episode.env_seed, episode.agent_seed, FAILED, error,
    )


def build_factories(plan: Plan) -> dict[str, AgentFactory]:
    return {spec.name: resolve(spec) for spec in plan.agents}


def supports_filter(factories: dict[str, AgentFactory]) -> Callable:
    return lambda spec, task: scenario_kind(task.family) in factories[spec.name].kinds


async def execute(
    plan: Plan,
    directory: str | Path,
    *,
    concurrency: int = 8,
    resume: bool = False,
    max_cost: float | None = None,
    progress: Progress | None = None,
    factories: dict[str, AgentFactory] | None = None,
) -> RunResult:
    """Run every episode of `plan` not yet finished in `directory`.

    With `resume=True` the plan frozen in the directory is used and `plan` is ignored;
    finished episodes are skipped, failed ones retried.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    started = time.perf_counter()
    progress = progress or Progress()
    store = RunStore(directory, create=not resume)
    try:
        if store.plan_path.exists():
            saved = Plan.from_dict(store.read_plan(), str(store.plan_path))
            if not resume:
                raise RunStoreError(f"{store.directory} already holds a run; resume it with --resume or choose another --out")
            plan = saved
        else:
            if resume:
                raise RunStoreError(f"{store.directory} holds no run to resume (no plan.json)")
            store.write_plan(plan.to_dict())
        factories = factories or build_factories(plan)
        supports = supports_filter(factories)
        done = store.finished_keys()
        total = sum(1 for _ in plan.episodes(supports))
        pending: Iterator[Episode] = (e for e in plan.episodes(supports) if e.key not in done)
        result = RunResult(store.directory, total, 0, 0, len(done))
        progress.start(total, len(done))
        spent = store.total_cost()

        async def worker() -> None:
            nonlocal spent
            for episode in pending:  # a shared lazy iterator: memory stays flat in the plan's size
                if max_cost is not None and spent >= max_cost:
                    result.stopped = f"cost limit ${max_cost:g} reached (${spent:.4f} spent)"
                    return
                try:
                    record, decisions = await play_episode(episode, factories[episode.agent.name],
                                                           episode.agent.params.get("framing"))
                except Exception as exc:  # recorded, never fatal: --resume retries the episode
                    message = redact(f"{type(exc).__name__}: {exc}")
                    store.commit_episode(failed_record(episode, message), [])
                    result.failed += 1
                    result.errors.append(f"{episode.agent.name} {episode.task.task_id} #{episode.rollout}: {message}")
                    progress.advance(episode, FAILED)
                else:
                    store.commit_episode(record, decisions)
                    spent += record.cost
                    result.finished += 1
                    progress.advance(episode, FINISHED)
                await asyncio.sleep(0)  # let other workers and the progress display run

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        for factory in factories.values():
            await factory.aclose()
        progress.stop()
        result.wall_s = time.perf_counter() - started
        return result
    finally:
        store.close()


def run_plan(plan: Plan, directory: str | Path, **options) -> RunResult:
    """Synchronous wrapper around `execute`."""
    return asyncio.run(execute(plan, directory, **options))
