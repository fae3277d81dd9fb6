"""Execute a plan asynchronously with bounded concurrency into a crash-safe run directory."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from agents._redact import Redactor, environment_secrets, redact  # noqa: F401  (redact: public)
from agents import VALID_PARSE_STATUSES, AgentFactory, CostBudget, EpisodeInfo, Spend, resolve
from harness._plan import Episode, Plan, scenario_kind
from harness._records import DecisionRecord, EpisodeRecord
from harness._files import PLAN_FILE
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
    spent: float = 0.0  # USD spent by this run directory so far, every invocation and failed attempt included
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. agent x scenario pairs skipped


class Progress:
    """Progress hooks; the CLI subclasses this with a progress bar."""

    def start(self, total: int, done: int) -> None: ...

    def advance(self, episode: Episode, status: str) -> None: ...

    def stop(self) -> None: ...


def _json(value) -> str | None:
    # orjson: the decision rows' JSON columns are on the hot path
    return None if value is None else orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _answer_text(answer: Any) -> str | None:
    # a free-form answer is stored as the text the scenario checked; a structured one (a numeric
    # agent's path) as JSON
    return answer if answer is None or isinstance(answer, str) else _json(answer)


class EpisodeFailed(Exception):
    """An episode stopped by an error; `spent` is what it had cost (an agents.Spend, or None)."""

    def __init__(self, cause: BaseException, spent) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause, self.spent = cause, spent


async def play_episode(episode: Episode, factory: AgentFactory, framing: str | None = None,
                       budget: CostBudget | None = None) -> tuple[EpisodeRecord, list[DecisionRecord]]:
    """Play one episode; return its record and its decisions' records.

    An error raises EpisodeFailed carrying what the episode had spent up to then."""
    task = episode.task
    env = make(task.spec)
    agent = factory()
    framing = framing or task.framing or DEFAULT_FRAMING
    description = ""
    if agent.is_async:  # only language agents read the story; algorithms skip the rendering cost
        from scenarios.framing import get_framing

        description = get_framing(framing).describe(env)
    info = EpisodeInfo(
        family=task.family, kind=env.kind, feedback=env.feedback, n_actions=env.n_actions, horizon=env.horizon,
        accepts_policy=env.accepts_policy, task_id=task.task_id, scenario_id=task.scenario_id,
        rollout=episode.rollout, seed=episode.agent_seed, framing=framing,
        context_dim=getattr(env, "context_dim", 0), description=description,
        scenario=env if agent.privileged else None, budget=budget,
    )
    try:
        return await _play(episode, factory, agent, env, info, framing)
    except Exception as exc:
        raise EpisodeFailed(exc, agent.spent()) from exc


async def _play(episode: Episode, factory: AgentFactory, agent, env, info: EpisodeInfo, framing: str):
    task = episode.task
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


def failed_record(episode: Episode, error: str, spent: Spend | None = None) -> EpisodeRecord:
    """A failed episode keeps what it cost: its tokens and cost count against the run's cap."""
    task = episode.task
    spent = spent or Spend()
    return EpisodeRecord(
        episode.agent.name, task.scenario_id, task.task_id, task.family, scenario_kind(task.family), task.framing,
        task.instance_seed, episode.rollout, episode.env_seed, episode.agent_seed, FAILED, error,
        prompt_tokens=spent.prompt_tokens, completion_tokens=spent.completion_tokens, cost=spent.cost,
        latency_s=spent.latency_s, attempts=spent.attempts,
    )


def build_factories(plan: Plan) -> dict[str, AgentFactory]:
    return {spec.name: resolve(spec) for spec in plan.agents}


# size bounds of a plan (override: allow_large / --allow-large)
MAX_EPISODE_BYTES = 2 * 2**30  # an episode's pre-drawn world and decision rows, in memory
MAX_DECISIONS = 50_000_000  # decisions in the whole plan (store size and running time)
_BYTES_PER_DECISION = 600  # a decision row in memory (tuple, JSON strings), measured order of magnitude
_BYTES_PER_OUTCOME = 16  # one pre-drawn outcome (a float and its list slot) per round and option
_SECONDS_PER_DECISION = 20e-6  # an algorithm's decision through the runner, at least


def check_plan(plan: Plan, factories: dict[str, AgentFactory], allow_large: bool = False) -> list[str]:
    """Refuse a plan no agent can play, or one too large to run (a PlanError naming why, with the
    memory and time estimate); return warnings for the agent x scenario pairs that are skipped."""
    from harness._plan import PlanError

    warnings, playable, decisions = [], 0, 0
    for entry in plan.scenarios:
        env = make(entry.family, entry.params, entry.instance_seeds[0])
        kind = env.kind
        players = [spec.name for spec in plan.agents if kind in factories[spec.name].kinds]
        for spec in plan.agents:
            if spec.name not in players:
                warnings.append(f"agent {spec.name!r} cannot play scenario {entry.id!r} ({kind}): skipped")
        playable += len(players)
        rollouts = entry.rollouts if entry.rollouts is not None else plan.rollouts
        decisions += len(players) * len(entry.instance_seeds) * rollouts * env.horizon
        episode_bytes = env.horizon * (env.n_actions * _BYTES_PER_OUTCOME + _BYTES_PER_DECISION)
        if players and episode_bytes > MAX_EPISODE_BYTES and not allow_large:
            raise PlanError(f"scenario {entry.id!r}: horizon {env.horizon} x {env.n_actions} options needs about "
                            f"{episode_bytes / 2**30:.1f} GiB per episode in memory (limit "
                            f"{MAX_EPISODE_BYTES / 2**30:.0f} GiB); lower it or pass --allow-large")
    if not playable:
        kinds = ", ".join(f"{spec.name}: {'/'.join(sorted(factories[spec.name].kinds)) or 'none'}" for spec in plan.agents)
        raise PlanError(f"no agent can play any scenario of the plan (agents play {kinds})")
    if decisions > MAX_DECISIONS and not allow_large:
        hours = decisions * _SECONDS_PER_DECISION / 3600
        raise PlanError(f"the plan has {decisions:.3g} decisions (limit {MAX_DECISIONS:.0e}): at least "
                        f"{hours:.3g} h of running and about {decisions * 150 / 2**30:.3g} GiB of run store; "
                        "lower horizon/rollouts/instances or pass --allow-large")
    return warnings


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
    allow_large: bool = False,
) -> RunResult:
    """Run every episode of `plan` not yet finished in `directory`.

    With `resume=True` the plan frozen in the directory is used and `plan` is ignored;
    finished episodes are skipped, failed ones retried.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
    if max_cost is not None and not (isinstance(max_cost, (int, float)) and math.isfinite(max_cost) and max_cost >= 0):
        raise ConfigError(f"max_cost must be a finite number of USD >= 0, got {max_cost!r}")
    started = time.perf_counter()
    progress = progress or Progress()
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise RunStoreError(f"{directory} is a file, not a run directory; choose another --out")
    warnings: list[str] = []
    store = None
    try:
        # nothing is written until the plan is valid, every agent resolves and the size is sane
        if resume:
            store = RunStore(directory, create=False)
            plan = Plan.from_dict(store.read_plan(), str(store.plan_path))
            factories = factories or build_factories(plan)
        else:
            if (directory / PLAN_FILE).exists():
                raise RunStoreError(f"{directory} already holds a run; resume it with --resume or choose another --out")
            factories = factories or build_factories(plan)
            warnings = check_plan(plan, factories, allow_large=allow_large)
            store = RunStore(directory, create=True)
            store.write_plan(plan.to_dict())
        supports = supports_filter(factories)
        done = store.finished_keys()
        total = sum(1 for _ in plan.episodes(supports))
        pending: Iterator[Episode] = (e for e in plan.episodes(supports) if e.key not in done)
        result = RunResult(store.directory, total, 0, 0, len(done), warnings=warnings)
        progress.start(total, len(done))
        # everything this run directory ever spent, failed and replaced attempts included
        budget = CostBudget(max_cost, store.total_spent())
        redact_run = Redactor(environment_secrets())

        async def worker() -> None:
            for episode in pending:  # a shared lazy iterator: memory stays flat in the plan's size
                if budget.exhausted:
                    result.stopped = f"cost limit ${max_cost:g} reached (${budget.spent:.4f} spent)"
                    return
                try:
                    record, decisions = await play_episode(episode, factories[episode.agent.name],
                                                           episode.agent.params.get("framing"), budget)
                except Exception as exc:  # recorded, never fatal: --resume retries the episode
                    message = str(exc) if isinstance(exc, EpisodeFailed) else f"{type(exc).__name__}: {exc}"
                    message = redact_run(message)[:2000]  # redacted before it is shortened
                    store.commit_episode(failed_record(episode, message, getattr(exc, "spent", None)), [])
                    result.failed += 1
                    result.errors.append(f"{episode.agent.name} {episode.task.task_id} #{episode.rollout}: {message}")
                    progress.advance(episode, FAILED)
                else:
                    store.commit_episode(record, decisions)
                    result.finished += 1
                    progress.advance(episode, FINISHED)
                await asyncio.sleep(0)  # let other workers and the progress display run

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if budget.exhausted and result.stopped is None and budget.refused:
            result.stopped = f"cost limit ${max_cost:g} reached (${budget.spent:.4f} spent)"
        result.spent = budget.spent
        for factory in factories.values():
            await factory.aclose()
        progress.stop()
        result.wall_s = time.perf_counter() - started
        return result
    finally:
        if store is not None:
            store.close()


def run_plan(plan: Plan, directory: str | Path, **options) -> RunResult:
    """Synchronous wrapper around `execute`."""
    return asyncio.run(execute(plan, directory, **options))
