"""The Iterative RMFT loop: rollouts -> k lowest-regret trajectories per task -> fine-tune -> repeat.

Per iteration i = 0..N (model 0 is the base; model i + 1 is fine-tuned from model i):

1. `eval`: model i plays the held-out instances (seeds never used for training; the same
   instances and episode seeds every iteration, so iterations compare on common random
   numbers) -> one table row per (iteration, scenario);
2. for i < N, `rollout`: model i plays L rollouts of every training task (fresh training
   instances each iteration unless `resample_tasks` is off; the schedule decides how many
   tasks each level gets, at the same total budget: see finetune._curriculum);
3. `select`: the selector keeps trajectories per task (k lowest regrets; k highest rewards
   for the ablation; or every rollout with regret <= max_regret, i.e. reward-filtered
   fine-tuning on correct answers) -> `dataset/episodes.parquet`, with the acceptance rate
   per level;
4. `fit`: the backend fine-tunes model i on them -> `iter-{i+1}/checkpoint`.

Output directory::

    state.json            settings, held-out and training seeds, finished steps (resume point)
    iter-000/eval/        a harness run directory (and rollouts/, dataset/ for i < N)
    iter-001/checkpoint/  the backend's checkpoint (+ checkpoint.json)
    baselines/            optional: reference agents on the same held-out instances
    iterations.parquet, iterations.csv, iterations.png, baselines.csv

Each step is a function `step(loop, state, i) -> StepRecord` (`evaluate`, `rollout`, `select`,
`fit`, in `STEPS`; `baselines` once): it reads the run-scoped `Loop` (settings, tasks, backend,
the serving context) and the typed `LoopState`, writes its files, and returns its record without
changing the state. `iterate` is the driver: it opens the state (`prepare`), the model server
(`serving`, closed however the loop ends) and runs each step not yet recorded in state.json,
saving the record atomically when the step finishes. Calling `iterate` again with the same
settings skips finished steps (and resumes a half-finished run directory), so an interruption
costs at most the step in flight. `iterations` may be raised on a later call to continue.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents import AgentSpec
from finetune._backend import Checkpoint, Serving, TrainingSet, get_backend, make_config
from finetune._curriculum import LevelHistory, allocate, get_schedule, order_levels, outside_band
from harness import Plan, ScenarioEntry, atomic_write_json, derive_seed
from scenarios import ConfigError, RegretError

STATE_FILE = "state.json"
MODEL_LABEL = "model"
SELECTORS = ("k-lowest", "top-reward", "threshold", "rise", "advantage")
REPLAYS = ("none", "first", "all")
_SELECTOR_ALIASES = {"reward-filtered": "top-reward", "k-lowest-regret": "k-lowest", "correct": "threshold"}
SEED_SPACE = 2**31
ROW_COLUMNS = (
    "iteration", "scenario_id", "episodes", "mean_regret", "ci_low", "ci_high", "std_regret", "median_regret",
    "p90_regret", "beta", "invalid_rate", "position_bias", "first_listed_share", "mean_reward", "reward_ci_low", "reward_ci_high", "tasks",
    "rollout_regret", "dataset_size", "acceptance_rate", "samples", "accepted", "level_acceptance",
    "accepted_total", "train_loss", "wall_s", "cpu_s",
)
# settings that may change between calls on the same directory
_RESUMABLE = {"iterations", "baselines", "concurrency", "executor", "workers", "address"}


class LoopError(RegretError):
    """A step of the loop could not finish (e.g. episodes failed); finished work is kept for the next call."""


@dataclass(frozen=True)
class IterateConfig:
    """Settings of one RMFT loop (the CLI's flags)."""

    out: str = field(metadata={"help": "output directory (resumed when it exists)"})
    suite: Any = field(metadata={"help": "a Plan, a suite TOML path or a built-in suite name; its scenarios are the tasks"})
    agent: str = field(default="torch:new", metadata={"help": "the base model's agent string"})
    agent_params: Mapping[str, Any] = field(default_factory=dict, metadata={"help": "settings of the base agent"})
    teacher: str | None = field(default=None, metadata={
        "help": "warm start: iteration 0's training rollouts are played by this agent (e.g. a baseline such as "
                "ucb1) instead of model 0, so the first fit imitates its selected trajectories; model 0 is still "
                "evaluated as iteration 0"})
    teacher_params: Mapping[str, Any] = field(default_factory=dict, metadata={"help": "settings of the teacher agent"})
    base_model: str | None = field(default=None, metadata={"help": "what the first fit starts from (default: agent)"})
    backend: str = field(default="torch", metadata={"help": "fine-tuning backend: torch, hf, unsloth, api"})
    backend_config: Mapping[str, Any] = field(default_factory=dict, metadata={"help": "the backend's Config settings"})
    iterations: int = field(default=5, metadata={"help": "fine-tuning rounds N (N + 1 evaluated models)"})
    rollouts: int = field(default=20, metadata={"help": "L: rollouts per training task"})
    k: int = field(default=6, metadata={"help": "trajectories kept per task"})
    selector: str = field(default="k-lowest", metadata={
        "help": "k-lowest (RMFT), top-reward (ablation), threshold (every rollout with regret <= max_regret: correct "
                "answers), rise (RISE: reward-weighted attempts of self-correction scenarios) or advantage (every "
                "rollout weighted by its regret against its task's mean: a signed objective; torch backend)"})
    risk_aversion: float = field(default=0.0, metadata={
        "help": "advantage: 0 weighs by regret minus the task's mean; > 0 by exp(risk_aversion * regret), so "
                "high-regret rollouts count for more (finetune._select.AdvantageWeighted)"})
    signed: bool = field(default=True, metadata={
        "help": "advantage: train on worse-than-average rollouts too, pushing their actions down (else keep only "
                "the better-than-average ones, weighted)"})
    replay: str = field(default="none", metadata={
        "help": "earlier iterations' kept trajectories that join every fit (torch backend): none; first (iteration "
                "0's, i.e. the teacher's with a warm start, so the model stays anchored to what it first imitated); "
                "all (every earlier iteration's: a growing replay buffer)",
        "choices": REPLAYS})
    replay_weight: float = field(default=1.0, metadata={
        "help": "replay: each replayed trajectory's training weight is its selection weight times this"})
    max_regret: float = field(default=0.0, metadata={"help": "threshold selector: keep rollouts with final regret <= this"})
    rise_filter: str = field(default="all", metadata={"help": "rise: which attempts are trained on (all, better, best, success)"})
    tau: float = field(default=0.4, metadata={"help": "rise: example weight exp(reward / tau)"})
    keep_fallbacks: bool = field(default=False, metadata={
        "help": "let episodes with fallback answers (never valid; a random action was played) be selected; "
                "the fallback answers themselves are never trained on"})
    per: str = field(default="episode", metadata={
        "help": "training examples per kept 'episode' (one chat) or per 'decision' (the exact prompt each "
                "answer was given to; best for single-turn prompts)"})
    max_decision_regret: float | None = field(default=None, metadata={
        "help": "per='decision': of the kept trajectories, train only on the decisions whose instantaneous expected "
                "regret is at most this (0: the rounds that chose an optimal option); None: every decision"})
    relabel: bool = field(default=False, metadata={
        "help": "per='decision' with history='summary': train each kept decision also under every cyclic "
                "relabelling of its listed options, so the chosen option's listed position carries nothing"})
    train_instances: int | None = field(default=None, metadata={"help": "training tasks per scenario and iteration (default: the suite's)"})
    resample_tasks: bool = field(default=True, metadata={"help": "draw fresh training instances every iteration"})
    eval_instances: int = field(default=20, metadata={"help": "held-out instances per scenario"})
    eval_rollouts: int = field(default=1, metadata={"help": "episodes per held-out instance"})
    eval_params: Mapping[str, Any] = field(default_factory=dict, metadata={"help": "agent settings for evaluation only"})
    schedule: str = field(default="mixture", metadata={"help": "levels trained per iteration: mixture, easy-to-hard "
                                                            "or adaptive (finetune._curriculum)"})
    advance_at: float = field(default=0.8, metadata={"help": "adaptive schedule: acceptance rate that moves to the next level"})
    baselines: tuple[str, ...] = field(default=(), metadata={"help": "reference agents evaluated on the held-out instances"})
    seed: int = field(default=0, metadata={"help": "master seed of instances, episodes and training"})
    concurrency: int = field(default=4, metadata={"help": "episodes in flight (LLM agents)"})
    executor: str = field(default="local", metadata={"help": "where rollouts and evaluations run: local, process, ray "
                                                             "(docs/executors.md); results are the same on each"})
    workers: int | None = field(default=None, metadata={"help": "process/ray: worker processes or actors"})
    address: str | None = field(default=None, metadata={"help": "ray: the cluster to join (default: a local Ray)"})

    def __post_init__(self) -> None:
        for name, minimum in (("iterations", 0), ("rollouts", 1), ("k", 1), ("eval_instances", 1),
                              ("eval_rollouts", 1), ("seed", 0), ("concurrency", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(f"iterate: {name} must be an integer >= {minimum}, got {value!r}")
        if self.train_instances is not None and self.train_instances < 1:
            raise ConfigError(f"iterate: train_instances must be >= 1, got {self.train_instances}")
        selector = _SELECTOR_ALIASES.get(self.selector, self.selector)
        if selector not in SELECTORS:
            raise ConfigError(f"iterate: unknown selector {self.selector!r} (choose: {', '.join(SELECTORS)}, reward-filtered)")
        if self.per not in ("episode", "decision"):
            raise ConfigError(f"iterate: per must be 'episode' or 'decision', got {self.per!r}")
        if self.max_decision_regret is not None and self.per != "decision":
            raise ConfigError("iterate: max_decision_regret filters single decisions, so it needs per='decision'")
        if self.relabel and (self.per != "decision" or dict(self.agent_params).get("history") != "summary"):
            raise ConfigError("iterate: relabel moves the options of single summary prompts, so it needs "
                              "per='decision' and the agent's history='summary'")
        if selector == "advantage" and self.backend != "torch":
            raise ConfigError(f"iterate: the advantage selector's signed weights need the torch backend, not {self.backend!r}")
        if self.replay not in REPLAYS:
            raise ConfigError(f"iterate: replay must be one of {', '.join(REPLAYS)}, got {self.replay!r}")
        if isinstance(self.replay_weight, bool) or not isinstance(self.replay_weight, (int, float)) \
                or not (math.isfinite(self.replay_weight) and self.replay_weight > 0):
            raise ConfigError(f"iterate: replay_weight must be a finite number > 0, got {self.replay_weight!r}")
        if self.replay != "none" and (self.backend != "torch" or selector == "rise"):
            # the text backends find each example's prompts by run name, which every iteration shares
            raise ConfigError("iterate: replay mixes earlier iterations' episode tables, so it needs the torch "
                              f"backend and an episode selector (got backend {self.backend!r}, selector {selector!r})")
        if selector not in ("threshold", "advantage") and self.k > self.rollouts:  # the threshold selector keeps any number
            raise ConfigError(f"iterate: k ({self.k}) cannot exceed the rollouts per task ({self.rollouts})")
        object.__setattr__(self, "selector", selector)
        from finetune._curriculum import SCHEDULES
        from finetune._render import RISE_FILTERS

        if self.schedule not in SCHEDULES:
            raise ConfigError(f"iterate: {SCHEDULES.unknown_message(self.schedule)}")
        if self.schedule != "mixture" and not self.resample_tasks:
            raise ConfigError("iterate: a curriculum schedule draws fresh training tasks (keep resample_tasks on)")
        if not 0.0 < self.advance_at <= 1.0:
            raise ConfigError(f"iterate: advance_at must be in (0, 1], got {self.advance_at}")
        self.make_executor()  # a wrong executor or option fails here, before anything is written
        if self.rise_filter not in RISE_FILTERS:
            raise ConfigError(f"iterate: unknown rise_filter {self.rise_filter!r} (choose: {', '.join(RISE_FILTERS)})")
        if not (isinstance(self.tau, (int, float)) and self.tau > 0):
            raise ConfigError(f"iterate: tau must be > 0, got {self.tau!r}")

    def make_executor(self) -> Any:
        from harness import get_executor

        return get_executor(self.executor, workers=self.workers, address=self.address)

    def frozen_settings(self, plan: Plan) -> dict[str, Any]:
        settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("suite", "out")}
        settings["suite"] = plan.to_dict()
        return json.loads(json.dumps(settings, default=list))


@dataclass
class IterateResult:
    directory: Path
    rows: Any  # polars DataFrame of iterations.parquet
    baselines: Any | None
    checkpoint: Checkpoint
    steps_run: list[str]


# --- seeds and tasks ---------------------------------------------------------------------
def heldout_entries(plan: Plan, config: IterateConfig) -> tuple[ScenarioEntry, ...]:
    """Held-out instances: odd seeds, derived apart from training, and never one of the suite's."""
    suite_seeds = {s for e in plan.scenarios for s in e.instance_seeds}
    entries = []
    for entry in plan.scenarios:
        seeds, j = [], 0
        while len(seeds) < config.eval_instances:
            seed = (derive_seed(config.seed, "heldout", entry.id, j) % SEED_SPACE) | 1
            j += 1
            if seed not in suite_seeds and seed not in seeds:
                seeds.append(seed)
        entries.append(dataclasses.replace(entry, instance_seeds=tuple(seeds), rollouts=config.eval_rollouts))
    return tuple(entries)


def training_entries(plan: Plan, config: IterateConfig, iteration: int,
                     history: LevelHistory = LevelHistory()) -> tuple[ScenarioEntry, ...]:
    """Training instances of one iteration: even seeds (so disjoint from held-out), or the suite's.

    The schedule splits the budget (the tasks a mixture gives all levels) over the levels.
    """
    budget = {entry.id: config.train_instances or len(entry.instance_seeds) for entry in plan.scenarios}
    levels = [entry.id for entry in order_levels(plan.scenarios)]
    weights = get_schedule(config.schedule).weights(levels, iteration, config.iterations, history, config.advance_at)
    counts = budget if config.schedule == "mixture" else allocate(sum(budget.values()), weights)
    entries = []
    for entry in plan.scenarios:
        count = counts[entry.id]
        if count == 0:
            continue
        if config.resample_tasks:
            seeds = tuple((derive_seed(config.seed, "train", entry.id, iteration, j) % SEED_SPACE) & ~1
                          for j in range(count))
        else:
            seeds = tuple(entry.instance_seeds[j % len(entry.instance_seeds)] for j in range(count))
            seeds = tuple(dict.fromkeys(seeds))
        entries.append(dataclasses.replace(entry, instance_seeds=seeds, rollouts=config.rollouts))
    return tuple(entries)


def check_disjoint(heldout: Sequence[ScenarioEntry], training: Sequence[ScenarioEntry]) -> None:
    held = {(e.family, json.dumps(dict(e.params), sort_keys=True), s) for e in heldout for s in e.instance_seeds}
    for entry in training:
        for seed in entry.instance_seeds:
            if (entry.family, json.dumps(dict(entry.params), sort_keys=True), seed) in held:
                raise AssertionError(f"held-out instance {entry.id}#{seed} would be used for training")


# --- the state record --------------------------------------------------------------------
@dataclass
class StepRecord:
    """What one finished step left in state.json (`done["{i}/{step}"]`): its cost and its figures."""

    wall_s: float = 0.0
    cpu_s: float = 0.0  # this process plus the model server's, for the steps that play
    dataset_size: float | None = None  # select: trajectories (RISE: attempts) kept
    acceptance_rate: float | None = None  # select: kept / sampled
    level_samples: dict[str, int] = field(default_factory=dict)  # select, per level: rollouts sampled
    level_accepted: dict[str, int] = field(default_factory=dict)  # select, per level: rollouts kept
    level_acceptance: dict[str, float] = field(default_factory=dict)  # what the curriculum schedules read
    rollout_regret: float | None = None  # select: mean final regret of the finished rollouts
    kept_regret: float | None = None  # select: mean final regret of the kept ones
    train_loss: float | None = None  # fit
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as written

    def to_json(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**{k: v for k, v in values.items() if v is not None and v != {}}, **self.extra}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepRecord:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})


@dataclass
class LoopState:
    """The loop's resumable record, state.json: settings, seeds, checkpoints and finished steps.

    Saved atomically after every step, so an interruption loses at most the step in flight.
    """

    settings: dict[str, Any]
    done: dict[str, StepRecord] = field(default_factory=dict)  # "baselines", "{i}/eval", "{i}/rollout", ...
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)  # model i (0: the base model)
    seeds: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # "heldout", "train-{i}": per scenario
    warnings: list[str] = field(default_factory=list)  # shown on every call (levels outside the learnable band)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoopState:
        return cls(dict(data["settings"]), {step: StepRecord.from_json(r) for step, r in data.get("done", {}).items()},
                   {int(i): Checkpoint.from_dict(c) for i, c in data.get("checkpoints", {}).items()},
                   {k: dict(v) for k, v in data.get("seeds", {}).items()}, list(data.get("warnings", [])))

    def to_json(self) -> dict[str, Any]:
        data = {"settings": self.settings, "done": {step: r.to_json() for step, r in self.done.items()},
                "checkpoints": {str(i): c.to_dict() for i, c in sorted(self.checkpoints.items())},
                "seeds": self.seeds}
        return {**data, "warnings": self.warnings} if self.warnings else data

    @classmethod
    def read(cls, directory: str | Path) -> LoopState:
        return cls.from_json(json.loads((Path(directory) / STATE_FILE).read_text()))

    @classmethod
    def open(cls, directory: Path, settings: dict[str, Any]) -> LoopState:
        """The state of the loop in `directory` (new if none); refuses a loop with other fixed settings."""
        if not (directory / STATE_FILE).exists():
            return cls(settings)
        state = cls.read(directory)
        old = {k: v for k, v in state.settings.items() if k not in _RESUMABLE}
        new = {k: v for k, v in settings.items() if k not in _RESUMABLE}
        if old != new:
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ConfigError(f"{directory} holds a loop with other settings ({', '.join(changed)}); "
                              "use another --out or the same settings")
        state.settings = settings
        return state

    def save(self, directory: Path) -> None:
        atomic_write_json(directory / STATE_FILE, self.to_json(), indent=2, sort_keys=True, default=str)

    def step(self, step: str) -> StepRecord:
        """The record of a finished step; an empty one for a step not (yet) run."""
        return self.done.get(step) or StepRecord()

    def history(self, iteration: int) -> LevelHistory:
        """Acceptance per level of the iterations before `iteration` (what the schedules read)."""
        return LevelHistory(tuple(self.done[f"{j}/select"].level_acceptance for j in range(iteration)
                                  if f"{j}/select" in self.done))


# --- the steps ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Loop:
    """What the steps of one loop share: its settings, tasks, directory, backend and (while open) serving."""

    config: IterateConfig
    plan: Plan
    directory: Path
    backend: Any  # finetune._backend.Backend
    heldout: tuple[ScenarioEntry, ...]
    serving: Serving = field(default_factory=Serving)  # the default plays each checkpoint's own agent spec

    def folder(self, iteration: int) -> Path:
        return self.directory / f"iter-{iteration:03d}"

    @property
    def eval_plan(self) -> Plan:
        """The held-out instances, with the same episode seeds every iteration (common random numbers)."""
        return Plan((), self.heldout, derive_seed(self.config.seed, "eval"), self.config.eval_rollouts,
                    f"{self.plan.name}-heldout")

    def model(self, checkpoint: Checkpoint, **params: Any) -> AgentSpec:
        spec = self.serving.spec(checkpoint)
        return AgentSpec(spec.agent, {**dict(spec.params), **params}, MODEL_LABEL)

    def play(self, path: Path, run: Plan) -> None:
        """Run (or resume) one harness run directory; failed episodes stop the loop, finished ones are kept."""
        from harness import build_factories, run_plan

        resume = (path / "plan.json").exists()
        # a resumed run plays through today's agents: a restarted model server has a new api_base
        factories = build_factories(run) if resume else None
        result = run_plan(run, path, resume=resume, concurrency=self.config.concurrency, factories=factories,
                          executor=self.config.make_executor())
        problem = self.serving.problem()  # e.g. a model server that crashed: the episodes only saw refused calls
        if result.failed:
            raise LoopError(f"{result.failed} episode(s) failed in {path} ({result.errors[0] if result.errors else ''}"
                            f"{'; ' + problem if problem else ''}); "
                            "finished ones are kept: call iterate again to retry the failed ones")


class _Stopwatch:
    """Wall and CPU seconds of a block: this process plus the model server's (when it plays)."""

    def __init__(self, serving: Serving | None = None) -> None:
        self.serving = serving

    def _cpu(self) -> float:
        return time.process_time() + (self.serving.cpu_s() if self.serving is not None else 0.0)

    def __enter__(self) -> _Stopwatch:
        self._wall, self._cpu_started = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.wall_s, self.cpu_s = time.perf_counter() - self._wall, self._cpu() - self._cpu_started


def prepare(config: IterateConfig) -> tuple[Loop, LoopState]:
    """The loop in `config.out` and its state (resumed when it exists), with the held-out seeds recorded."""
    plan = load_plan(config.suite)
    directory = Path(config.out)
    directory.mkdir(parents=True, exist_ok=True)
    state = LoopState.open(directory, config.frozen_settings(plan))
    loop = Loop(config, plan, directory, get_backend(config.backend), heldout_entries(plan, config))
    state.seeds["heldout"] = {e.id: list(e.instance_seeds) for e in loop.heldout}
    state.save(directory)
    return loop, state


def start_model(loop: Loop, state: LoopState) -> Checkpoint:
    """Model 0, as the backend says (recorded once; a resumed loop plays the same one)."""
    if 0 not in state.checkpoints:
        config = loop.config
        state.checkpoints[0] = loop.backend.initial_checkpoint(config.agent, dict(config.agent_params), config.base_model,
                                                               loop.folder(0) / "checkpoint", plan=loop.plan)
        state.save(loop.directory)
    return state.checkpoints[0]


@contextlib.contextmanager
def serving(loop: Loop, state: LoopState) -> Iterator[Loop]:
    """The loop with the backend's serving context: one server plays every checkpoint, stopped however it ends."""
    with loop.backend.serving(loop.directory / "serve", state.checkpoints[0]) as opened:
        yield dataclasses.replace(loop, serving=opened)


def baselines(loop: Loop, state: LoopState) -> StepRecord:
    """The reference agents on the held-out instances -> baselines/."""
    specs = tuple(AgentSpec(name) for name in loop.config.baselines)
    with _Stopwatch() as watch:
        loop.play(loop.directory / "baselines", loop.eval_plan.replace(agents=specs))
    return StepRecord(wall_s=watch.wall_s, cpu_s=watch.cpu_s)


def evaluate(loop: Loop, state: LoopState, iteration: int) -> StepRecord:
    """Model `iteration` plays the held-out instances -> iter-i/eval/."""
    spec = loop.model(state.checkpoints[iteration], **dict(loop.config.eval_params))
    with _Stopwatch(loop.serving) as watch:
        loop.play(loop.folder(iteration) / "eval", loop.eval_plan.replace(agents=(spec,)))
    return StepRecord(wall_s=watch.wall_s, cpu_s=watch.cpu_s)


def training_tasks(loop: Loop, state: LoopState, iteration: int) -> tuple[ScenarioEntry, ...]:
    """The training instances of `iteration`, as the schedule gives them after the earlier acceptance rates."""
    training = training_entries(loop.plan, loop.config, iteration, state.history(iteration))
    check_disjoint(loop.heldout, training)
    return training


def rollout(loop: Loop, state: LoopState, iteration: int) -> StepRecord:
    """Model `iteration` plays L rollouts of every training task -> iter-i/rollouts/."""
    config = loop.config
    run = Plan((), training_tasks(loop, state, iteration), derive_seed(config.seed, "rollouts", iteration),
               config.rollouts, f"{loop.plan.name}-train-{iteration}")
    if iteration == 0 and config.teacher:  # warm start: the teacher plays, model 0 learns from its trajectories
        spec = AgentSpec(config.teacher, dict(config.teacher_params), MODEL_LABEL)
    else:
        spec = loop.model(state.checkpoints[iteration])
    with _Stopwatch(loop.serving) as watch:
        loop.play(loop.folder(iteration) / "rollouts", run.replace(agents=(spec,)))
    return StepRecord(wall_s=watch.wall_s, cpu_s=watch.cpu_s)


def select(loop: Loop, state: LoopState, iteration: int) -> StepRecord:
    """The selector keeps trajectories of iteration i's rollouts -> iter-i/dataset/."""
    with _Stopwatch() as watch:
        record = select_trajectories(loop.folder(iteration), loop.config)
    return dataclasses.replace(record, wall_s=watch.wall_s, cpu_s=watch.cpu_s)


def fit(loop: Loop, state: LoopState, iteration: int) -> StepRecord:
    """The backend fine-tunes model i on the kept trajectories -> iter-{i+1}/checkpoint (+ checkpoint.json)."""
    config, folder, parent = loop.config, loop.folder(iteration), state.checkpoints[iteration]
    base = (config.base_model or state.checkpoints[0].path) if iteration == 0 else parent.path
    with _Stopwatch() as watch:
        fit_config = make_config(loop.backend, config.backend_config,
                                 output_dir=str(loop.folder(iteration + 1) / "checkpoint"),
                                 seed=derive_seed(config.seed, "fit", iteration) % SEED_SPACE)
        trained = loop.backend.fit(base, _training_set(folder, config, replayed_folders(loop, iteration)), fit_config)
        # a fine-tune plays with its parent's agent settings unless the backend set its own
        trained = dataclasses.replace(trained, params={**dict(parent.params), **dict(trained.params)})
    trained.save(loop.folder(iteration + 1))
    return StepRecord(wall_s=watch.wall_s, cpu_s=watch.cpu_s, train_loss=float(trained.metrics.get("train_loss", math.nan)))


STEPS: dict[str, Callable[[Loop, LoopState, int], StepRecord]] = {
    "eval": evaluate, "rollout": rollout, "select": select, "fit": fit}


def load_plan(suite: Any) -> Plan:
    if isinstance(suite, Plan):
        return suite
    from harness import load_suite_or_builtin

    return load_suite_or_builtin(str(suite))


# --- the driver --------------------------------------------------------------------------
def iterate(config: IterateConfig, *, on_step: Callable[[str], None] | None = None,
            log: Callable[[str], None] | None = None) -> IterateResult:
    """Run (or resume) the RMFT loop described by `config`; see the module docstring."""
    log = log or (lambda message: None)
    loop, state = prepare(config)
    steps_run: list[str] = []

    def finish(step: str, record: StepRecord) -> None:
        state.done[step] = record
        state.save(loop.directory)
        steps_run.append(step)
        log(f"{step}: done" + "".join(f", {k} {v:.4g}" if isinstance(v, float) else ""
                                      for k, v in record.to_json().items()))
        if on_step is not None:
            on_step(step)

    if config.baselines and "baselines" not in state.done:
        finish("baselines", baselines(loop, state))
    start_model(loop, state)
    with serving(loop, state) as served:
        for i in range(config.iterations + 1):
            if f"{i}/eval" not in state.done:
                record = STEPS["eval"](served, state, i)
                if i == 0 and config.selector == "threshold":  # saved with the step, shown on every call
                    state.warnings = starting_accuracy_warnings(loop.folder(0) / "eval", config.max_regret)
                finish(f"{i}/eval", record)
            if i == 0:
                for warning in state.warnings:
                    log(f"warning: {warning}")
            if i == config.iterations:
                break
            state.seeds[f"train-{i}"] = {e.id: list(e.instance_seeds) for e in training_tasks(loop, state, i)}
            for name in ("rollout", "select", "fit"):
                if f"{i}/{name}" not in state.done:
                    record = STEPS[name](served, state, i)
                    if name == "fit":  # model i + 1, as the fit step wrote it
                        state.checkpoints[i + 1] = Checkpoint.load(loop.folder(i + 1))
                    finish(f"{i}/{name}", record)

    rows = write_table(loop.directory, state, config.iterations)
    baseline_rows = write_baselines(loop.directory) if (loop.directory / "baselines").exists() else None
    plot_iterations(loop.directory, rows, baseline_rows)
    return IterateResult(loop.directory, rows, baseline_rows, state.checkpoints[config.iterations], steps_run)


# --- selection ---------------------------------------------------------------------------
def _selector(config: IterateConfig):
    from finetune._select import AdvantageWeighted, KLowestRegret, RegretThreshold, TopReward

    if config.selector == "advantage":
        return AdvantageWeighted(risk_aversion=config.risk_aversion, signed=config.signed)
    if config.selector == "threshold":
        return RegretThreshold(max_regret=config.max_regret)
    return KLowestRegret(k=config.k) if config.selector == "k-lowest" else TopReward(k=config.k)


def starting_accuracy_warnings(eval_dir: Path, max_regret: float) -> list[str]:
    """Levels whose base-model held-out accuracy (regret <= max_regret) is outside the learnable band."""
    import polars as pl

    from harness import load_run

    _, episodes = load_run(eval_dir)
    rates = (episodes.filter(pl.col("status") == "finished").group_by("scenario_id", maintain_order=True)
             .agg(rate=(pl.col("final_regret") <= max_regret).mean()).collect())
    return [f"level {row['scenario_id']}: {why}" for row in rates.iter_rows(named=True)
            if (why := outside_band(row["rate"])) is not None]


def select_trajectories(folder: Path, config: IterateConfig) -> StepRecord:
    """Keep trajectories of `folder/rollouts` per task -> `folder/dataset/episodes.parquet` (with a `weight` column)."""
    import polars as pl

    from finetune._select import select_episodes
    from finetune._text_data import DatasetError
    from harness import load_run

    _, episodes = load_run(folder / "rollouts")
    if config.selector == "rise":
        return _select_rise(folder, config, episodes)
    kept = select_episodes(episodes, _selector(config), drop_invalid=not config.keep_fallbacks).collect()
    total = episodes.select(pl.len()).collect().item()
    if not kept.height and total:
        finished_count = episodes.filter(pl.col("status") == "finished").select(pl.len()).collect().item()
        invalid = episodes.filter(pl.col("n_invalid") > 0).select(pl.len()).collect().item()
        if not finished_count:
            raise DatasetError(f"{folder.name}: none of the {total} rollout episodes finished; their errors are in "
                               f"{folder / 'rollouts'} (episodes.parquet, column error)")
        if invalid and not config.keep_fallbacks:
            raise DatasetError(f"{folder.name}: all {total} rollout episodes hold fallback answers ({invalid} with "
                               "at least one), so none can be selected; use answer_format='json' for valid answers, "
                               "or keep_fallbacks=True (--keep-fallbacks) to select them anyway")
    samples = dict(episodes.group_by("scenario_id").len().collect().iter_rows())
    accepted = dict(kept.group_by("scenario_id").len().iter_rows())
    (folder / "dataset").mkdir(parents=True, exist_ok=True)
    kept.write_parquet(folder / "dataset" / "episodes.parquet")
    finished = episodes.filter(pl.col("status") == "finished")
    return StepRecord(dataset_size=float(kept.height), acceptance_rate=kept.height / total if total else math.nan,
                      level_samples=samples, level_accepted={level: accepted.get(level, 0) for level in samples},
                      level_acceptance={level: accepted.get(level, 0) / n for level, n in samples.items()},
                      rollout_regret=float(finished.select(pl.col("final_regret").mean()).collect().item() or math.nan),
                      kept_regret=float(kept["final_regret"].mean()) if kept.height else math.nan)


def _select_rise(folder: Path, config: IterateConfig, episodes) -> StepRecord:
    """RISE: every kept attempt of the rollouts, weighted exp(reward / tau), in dataset/train.jsonl."""
    import polars as pl

    from finetune.dataset import build_rise_dataset

    result = build_rise_dataset([folder / "rollouts"], folder / "dataset", criterion=config.rise_filter,
                                tau=config.tau, val_fraction=0.0, seed=config.seed)
    counts = result.metadata["counts"]
    finished = episodes.filter(pl.col("status") == "finished")
    return StepRecord(dataset_size=float(result.n_train), acceptance_rate=result.n_train / counts["attempts"],
                      rollout_regret=float(finished.select(pl.col("final_regret").mean()).collect().item() or math.nan))


def _training_set(folder: Path, config: IterateConfig, replayed: Sequence[Path] = ()) -> TrainingSet | Path:
    """What iteration `folder` fits on: its kept trajectories, plus those of the `replayed` iteration folders.

    Replayed episodes get their iteration folder's name prefixed to `task_id` (so a task drawn again in a
    later iteration stays a different episode) and their weight multiplied by `replay_weight`.
    """
    import polars as pl

    if config.selector == "rise":  # rendered and weighted already: the text backends read the directory
        return folder / "dataset"

    kept, rows = _kept_decisions(folder, config)
    for earlier in replayed:
        old_kept, old_rows = _kept_decisions(earlier, config)
        tag = pl.lit(f"{earlier.name}/") + pl.col("task_id")
        old_kept = old_kept.with_columns(task_id=tag, weight=pl.col("weight") * config.replay_weight)
        kept = pl.concat([kept, old_kept], how="diagonal_relaxed")
        rows = pl.concat([rows, old_rows.with_columns(task_id=tag)], how="diagonal_relaxed")
    return TrainingSet(kept, rows, folder / "dataset", (folder / "rollouts",), config.selector, config.per,
                       config.relabel)


def _kept_decisions(folder: Path, config: IterateConfig):
    """One iteration's kept episodes (dataset/episodes.parquet) and their decision rows."""
    import polars as pl

    from finetune._select import select_decisions
    from harness import load_run

    decisions, _ = load_run(folder / "rollouts")
    kept = pl.read_parquet(folder / "dataset" / "episodes.parquet")
    rows = select_decisions(decisions, kept).collect()
    if config.max_decision_regret is not None:  # regret-ranked selection at the grain of single decisions
        from finetune._select import RUN_EPISODE_KEY
        from finetune._text_data import DatasetError

        rows = rows.filter(pl.col("regret") <= config.max_decision_regret + 1e-12)
        kept = kept.join(rows.select(RUN_EPISODE_KEY).unique(), on=RUN_EPISODE_KEY, how="semi")
        if not kept.height:
            raise DatasetError(f"{folder.name}: no kept trajectory has a decision with regret <= "
                               f"{config.max_decision_regret} (max_decision_regret)")
    return kept, rows


def replayed_folders(loop: Loop, iteration: int) -> tuple[Path, ...]:
    """The earlier iteration folders whose kept trajectories join iteration `iteration`'s fit (config.replay)."""
    replay = loop.config.replay
    earlier = range(iteration) if replay == "all" else range(min(iteration, 1)) if replay == "first" else ()
    return tuple(loop.folder(j) for j in earlier)


# --- table and plot ----------------------------------------------------------------------
def write_table(directory: Path, state: LoopState | Mapping[str, Any], iterations: int):
    """iterations.parquet/.csv: one row per (iteration, scenario) from the eval runs and step records."""
    import polars as pl

    from harness import load_run, self_correction_table
    from harness.metrics import leaderboard

    if not isinstance(state, LoopState):  # a state.json read as it is
        state = LoopState.from_json(state)
    rows = []
    answers = []  # answer scenarios: the RISE metrics of each iteration's held-out evaluation
    accepted_total = 0.0
    for i in range(iterations + 1):
        if f"{i}/eval" not in state.done:
            break
        decisions, episodes = load_run(directory / f"iter-{i:03d}" / "eval")
        board = leaderboard(decisions, episodes)
        answers.append(self_correction_table(decisions, episodes).drop("agent", "tasks", "episodes", "oracle")
                       .with_columns(iteration=pl.lit(i, pl.Int64)))
        rewards = _reward_by_scenario(episodes)
        # what trained model i: the steps of iteration i - 1 (none for the base model)
        previous, fit = (state.step(f"{i - 1}/select"), state.step(f"{i - 1}/fit")) if i else (StepRecord(), StepRecord())
        accepted_total += float(previous.dataset_size or 0.0)
        steps = [state.step(f"{i - 1}/{s}") for s in ("rollout", "select", "fit")] if i else []
        steps.append(state.done[f"{i}/eval"])
        wall = sum(float(s.wall_s) for s in steps)
        cpu = sum(float(s.cpu_s) for s in steps)
        for row in board.iter_rows(named=True):
            rows.append({
                "iteration": i, "scenario_id": row["scenario_id"], "episodes": row["episodes"],
                "mean_regret": row["mean_regret"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
                "std_regret": row["std_regret"], "median_regret": row["median_regret"], "p90_regret": row["p90_regret"],
                "beta": row["beta"], "invalid_rate": row["invalid_rate"], "position_bias": row["position_bias"],
                "first_listed_share": row["first_listed_share"], **rewards[row["scenario_id"]],
                "rollout_regret": _num(previous.rollout_regret), "dataset_size": _num(previous.dataset_size),
                "acceptance_rate": _num(previous.acceptance_rate),
                "samples": _num(previous.level_samples.get(row["scenario_id"])),
                "accepted": _num(previous.level_accepted.get(row["scenario_id"])),
                "level_acceptance": _num(previous.level_acceptance.get(row["scenario_id"])),
                "accepted_total": accepted_total if i else math.nan, "train_loss": _num(fit.train_loss),
                "wall_s": wall, "cpu_s": cpu,
            })
    schema = {c: (pl.Int64 if c in ("iteration", "episodes") else pl.String if c == "scenario_id" else pl.Float64)
              for c in ROW_COLUMNS}
    frame = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
    frame = frame.with_columns(cumulative_cpu_s=pl.col("cpu_s").cum_sum().over("scenario_id")).fill_nan(None)
    rise = pl.concat(answers) if answers else None
    if rise is not None and rise.height:
        frame = frame.join(rise.drop("accuracy_by_turn", "solved_by_turn"), on=["iteration", "scenario_id"], how="left")
    frame.write_parquet(directory / "iterations.parquet")
    frame.write_csv(directory / "iterations.csv")
    return frame


def _reward_by_scenario(episodes) -> dict[str, dict[str, float]]:
    """Held-out mean reward per scenario with its task-clustered 95% interval (harness.clustered_mean)."""
    import polars as pl

    from harness import clustered_mean

    finished = episodes.filter(pl.col("status") == "finished").select("scenario_id", "task_id", "total_reward").collect()
    result = {}
    for (scenario_id,), part in finished.group_by("scenario_id"):
        estimate = clustered_mean(part["total_reward"].to_numpy(), part["task_id"].to_numpy())
        result[scenario_id] = {"mean_reward": estimate.estimate, "reward_ci_low": estimate.ci_low,
                               "reward_ci_high": estimate.ci_high, "tasks": float(estimate.n_tasks)}
    return result


def _plot_levels(axes, rows, scenarios) -> None:
    reward_ax, accept_ax = axes[0], axes[1]
    for scenario_id in scenarios:
        part = rows.filter(rows["scenario_id"] == scenario_id).sort("iteration")
        x = part["iteration"].to_numpy()
        line = reward_ax.plot(x, part["mean_reward"].to_numpy(), marker="o", label=scenario_id)[0]
        reward_ax.fill_between(x, part["reward_ci_low"].to_numpy(), part["reward_ci_high"].to_numpy(),
                               alpha=0.15, color=line.get_color())
        trained = part.filter(part["level_acceptance"].is_not_null())
        accept_ax.plot(trained["iteration"].to_numpy() - 1, trained["level_acceptance"].to_numpy(), marker="o",
                       color=line.get_color(), label=scenario_id)
    for ax in (reward_ax, accept_ax):
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7)
    reward_ax.set_ylabel("held-out mean reward")
    accept_ax.set_ylabel("acceptance rate of model i's rollouts")
    for ax in axes[2:]:
        ax.axis("off")


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def write_baselines(directory: Path):
    from harness import load_run
    from harness.metrics import leaderboard

    board = leaderboard(*load_run(directory / "baselines"))
    board.write_csv(directory / "baselines.csv")
    return board


def plot_iterations(directory: Path, rows, baselines=None) -> Path:
    """iterations.png: held-out mean regret (95% CI) per iteration, baselines as dashed lines; below it,
    when the loop trained by levels, held-out reward per level (task-clustered 95% CI) and the
    acceptance rate per level of each iteration's rollouts."""
    # an Agg canvas made here, without pyplot: no process-wide backend is set or changed
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scenarios = rows["scenario_id"].unique(maintain_order=True).to_list()
    by_level = rows.height > 0 and rows["level_acceptance"].drop_nulls().len() > 0
    width = max(len(scenarios), 2 if by_level else 1)
    fig = Figure(figsize=(5 * width, 3.6 * (2 if by_level else 1)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2 if by_level else 1, width, squeeze=False)
    if by_level:
        _plot_levels(axes[1], rows, scenarios)
    for ax in axes[0][len(scenarios):]:
        ax.axis("off")
    for ax, scenario_id in zip(axes[0], scenarios):
        part = rows.filter(rows["scenario_id"] == scenario_id).sort("iteration")
        x = part["iteration"].to_numpy()
        ax.plot(x, part["mean_regret"].to_numpy(), marker="o", label="model")
        low, high = part["ci_low"].to_numpy(), part["ci_high"].to_numpy()
        ax.fill_between(x, low, high, alpha=0.2)
        if baselines is not None:
            for row in baselines.filter(baselines["scenario_id"] == scenario_id).iter_rows(named=True):
                ax.axhline(row["mean_regret"], linestyle="--", linewidth=1)
                ax.annotate(row["agent"], (x.max() if len(x) else 0, row["mean_regret"]), fontsize=7,
                            ha="right", va="bottom")
        ax.set_title(scenario_id, fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel("held-out mean regret")
    fig.tight_layout()
    path = directory / "iterations.png"
    fig.savefig(path, dpi=100)
    return path
