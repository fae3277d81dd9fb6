"""The agent-quality regression gate: compare a run against a stored baseline, statistically.

For every (agent, scenario_id) the per-episode final regrets of the run ("now") are compared
with those stored in the baseline by a one-sided test of H0: mean(now) <= mean(baseline)
against H1: mean(now) > mean(baseline) (regret got worse):

- paired differences now - baseline stratified by task (`harness._stats.paired_difference`,
  scope "tasks", the machinery of `regret compare`), when both runs hold exactly the same
  episodes (task_id, rollout, env_seed); with one task this is the paired t-test. Episodes
  with the same env_seed face the same pre-drawn world (common random numbers), so the
  world's noise cancels in the differences and the test is far more powerful. This is the case when the baseline was written from a
  run of the same suite with the same master seed (the usual CI setup).
- Welch's t-test stratified by task, when both runs played the same tasks (instances) with
  other episode seeds (e.g. a suite with explicit instance `seeds` and another master seed).
- Welch's t-test on per-task mean regrets ("task-means"), when the tasks differ (instances
  drawn from another master seed): then the instance, not the episode, is the unit of
  replication. Pooling episodes of different instances as if they were exchangeable
  (plain "welch", available on request) mistakes instance difficulty for a regression:
  measured 43% false alarms (benchmarks/check_calibration.py).

`test="auto"` (the default) picks the first that applies. The table shows the raw p-value of
each check beside the adjusted one, and the report warns when the run and the baseline come
from different plans (scenarios, instances, rollouts or seeds) or when an agent label's
settings differ between them. Zero variance is handled exactly:
identical regrets give p = 1, a constant increase p = 0.

A check fails as "worse" only when the (multiplicity-adjusted) p-value is below `alpha`
*and* the observed increase exceeds the minimum effect: `min_effect` times the baseline mean
(relative) and `min_effect_abs` (absolute). With many agent x scenario pairs, false alarms
add up; Holm's step-down correction (the default) keeps the family-wise false-alarm rate of
the whole gate at or below `alpha`. Independently of the statistics, a check fails on a
hard ceiling on the mean regret (`fail_above`), an invalid-action rate above
`max_invalid_rate`, or a total cost above `max_cost`. An (agent, scenario) in the baseline
but not in the run fails as "missing"; one in the run but not the baseline is "new" and
passes unless a ceiling or bound fails it.

Baseline file (JSON)::

    {"format": "regret-baseline", "version": 1, "created": "...", "source": {run, plan_name,
     plan_seed, plan_hash}, "settings": {alpha, min_effect, ...},
     "checks": [{"agent", "scenario_id", "n", "mean", "std", "failed", "invalid_rate", "cost",
                 "episodes": {"task_id": [...], "rollout": [...], "env_seed": [...], "regret": [...]}}]}

The settings stored in a baseline are the defaults when it is checked against; explicit
settings override them.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from harness._files import atomic_write_text, read_plan
from harness._stats import CORRECTIONS, adjust_pvalues
from scenarios import ConfigError, UsageError

BASELINE_FORMAT = "regret-baseline"
BASELINE_VERSION = 1
TESTS = ("auto", "paired", "stratified", "task-means", "welch")

PASS, NEW, MISSING = "pass", "new", "missing"
WORSE, CEILING, INVALID, COST, TOO_FEW = "worse", "ceiling", "invalid rate", "cost", "untestable"


class BaselineError(UsageError):
    """A baseline file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class CheckSettings:
    """How `regret check` decides."""

    alpha: float = field(default=0.05, metadata={"help": "level of the one-sided test (family-wise with holm/bonferroni)"})
    min_effect: float = field(default=0.10, metadata={
        "help": "smallest relative increase of mean regret that can fail (0.10 = 10% of the baseline mean)"})
    min_effect_abs: float = field(default=0.0, metadata={
        "help": "smallest absolute increase of mean regret that can fail"})
    test: str = field(default="auto", metadata={
        "help": "auto (paired for the same episodes, stratified for the same tasks, else task-means), "
                "paired, stratified, task-means or welch (pooled episodes, assumes them exchangeable)"})
    correction: str = field(default="holm", metadata={
        "help": "multiple-comparison correction over all checks: holm, bonferroni or none"})
    fail_above: Mapping[str, float] = field(default_factory=dict, metadata={
        "help": "hard ceilings on the mean regret: scenario id or glob -> value ('*' for every scenario)"})
    max_invalid_rate: float | None = field(default=None, metadata={
        "help": "fail when the share of invalid decisions (unparseable model output) exceeds this"})
    max_cost: float | None = field(default=None, metadata={
        "help": "fail when an (agent, scenario)'s total cost in USD exceeds this"})

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.min_effect < 0 or self.min_effect_abs < 0:
            raise ConfigError(f"minimum effects must be >= 0, got {self.min_effect} and {self.min_effect_abs}")
        if self.test not in TESTS:
            raise ConfigError(f"test must be one of {', '.join(TESTS)}, got {self.test!r}")
        if self.correction not in CORRECTIONS:
            raise ConfigError(f"correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}")
        for pattern, value in self.fail_above.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise ConfigError(f"fail_above[{pattern!r}] must be a number, got {value!r}")
        if self.max_invalid_rate is not None and not 0.0 <= self.max_invalid_rate <= 1.0:
            raise ConfigError(f"max_invalid_rate must be in [0, 1], got {self.max_invalid_rate}")
        if self.max_cost is not None and self.max_cost < 0:
            raise ConfigError(f"max_cost must be >= 0, got {self.max_cost}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fail_above"] = dict(self.fail_above)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckSettings:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(sorted(unknown))}")
        return cls(**{k: (dict(v) if k == "fail_above" else v) for k, v in data.items()})

    def ceiling_for(self, scenario_id: str) -> float | None:
        """The exact-id ceiling if one is set, else the lowest ceiling among matching globs."""
        if scenario_id in self.fail_above:
            return float(self.fail_above[scenario_id])
        matching = [v for p, v in self.fail_above.items() if fnmatch.fnmatchcase(scenario_id, p)]
        return float(min(matching)) if matching else None


# --- samples and baselines ---------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    """The finished episodes of one (agent, scenario_id) in a run, plus its usage."""

    agent: str
    scenario_id: str
    task_id: tuple[str, ...]
    rollout: tuple[int, ...]
    env_seed: tuple[int, ...]
    regret: tuple[float, ...]
    failed: int = 0
    invalid_rate: float | None = None
    cost: float = 0.0

    @property
    def key(self) -> tuple[str, str]:
        return (self.agent, self.scenario_id)

    @property
    def n(self) -> int:
        return len(self.regret)

    @property
    def mean(self) -> float:
        return math.fsum(self.regret) / self.n if self.regret else math.nan

    @property
    def std(self) -> float:
        if self.n < 2:
            return math.nan
        mean = self.mean
        return math.sqrt(math.fsum((r - mean) ** 2 for r in self.regret) / (self.n - 1))

    def by_episode(self) -> dict[tuple[str, int, int], float]:
        return dict(zip(zip(self.task_id, self.rollout, self.env_seed), self.regret))

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent, "scenario_id": self.scenario_id, "n": self.n,
            "mean": _finite_or_none(self.mean), "std": _finite_or_none(self.std), "failed": self.failed,
            "invalid_rate": self.invalid_rate, "cost": self.cost,
            "episodes": {"task_id": list(self.task_id), "rollout": list(self.rollout),
                         "env_seed": list(self.env_seed), "regret": list(self.regret)},
        }


@dataclass(frozen=True)
class Baseline:
    """Per-(agent, scenario) samples of an accepted run; `Baseline.from_run(dir)` reads any run."""

    samples: Mapping[tuple[str, str], Sample]
    settings: CheckSettings | None = None
    source: Mapping[str, Any] = field(default_factory=dict)
    created: str = ""

    @classmethod
    def from_episodes(cls, episodes, source: Mapping[str, Any] | None = None) -> Baseline:
        """Build from an episodes table (polars DataFrame or LazyFrame with the store's columns)."""
        import polars as pl

        frame = episodes.lazy() if isinstance(episodes, pl.DataFrame) else episodes
        finished = pl.col("status") == "finished"
        keep = ["task_id", "rollout", "env_seed", "final_regret"]
        grouped = (
            frame.sort("agent", "scenario_id", "task_id", "rollout")
            .group_by("agent", "scenario_id", maintain_order=True)
            .agg(
                *(pl.col(c).filter(finished) for c in keep),
                failed=(~finished).sum().cast(pl.Int64),
                invalid=pl.col("n_invalid").filter(finished).sum(),
                decisions=pl.col("n_decisions").filter(finished).sum(),
                cost=pl.col("cost").cast(pl.Float64).fill_null(0.0).sum(),
            )
            .collect()
        )
        samples = {}
        for row in grouped.iter_rows(named=True):
            sample = Sample(
                row["agent"], row["scenario_id"], tuple(row["task_id"]), tuple(row["rollout"]),
                tuple(row["env_seed"]), tuple(float(r) for r in row["final_regret"]), int(row["failed"]),
                row["invalid"] / row["decisions"] if row["decisions"] else None, float(row["cost"]),
            )
            samples[sample.key] = sample
        return cls(samples, None, dict(source or {}), _now())

    @classmethod
    def from_run(cls, directory: str | Path) -> Baseline:
        from harness._store import load_run

        directory = Path(directory)
        _, episodes = load_run(directory)
        source: dict[str, Any] = {"run": directory.name}
        try:
            plan = read_plan(directory)
        except (OSError, ValueError):
            plan = None
        if isinstance(plan, dict):
            source.update(plan_name=plan.get("name"), plan_seed=plan.get("seed"), plan_hash=plan_hash(plan),
                          **plan_fingerprint(plan))
        return cls.from_episodes(episodes, source)

    def with_settings(self, settings: CheckSettings | None) -> Baseline:
        return replace(self, settings=settings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": BASELINE_FORMAT, "version": BASELINE_VERSION, "created": self.created or _now(),
            "source": dict(self.source), "settings": None if self.settings is None else self.settings.to_dict(),
            "checks": [s.to_dict() for _, s in sorted(self.samples.items())],
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: Any, source: str = "baseline") -> Baseline:
        if not isinstance(data, Mapping) or data.get("format") != BASELINE_FORMAT:
            raise BaselineError(f"{source}: not a regret baseline (expected \"format\": \"{BASELINE_FORMAT}\"); "
                                "write one with: regret check RUN_DIR --baseline FILE --write-baseline")
        if data.get("version") != BASELINE_VERSION:
            raise BaselineError(f"{source}: unsupported baseline version {data.get('version')!r} "
                                f"(this regret-harness reads version {BASELINE_VERSION})")
        try:
            settings = None if data.get("settings") is None else CheckSettings.from_dict(data["settings"])
        except (TypeError, ValueError) as exc:
            raise BaselineError(f"{source}: bad settings: {exc}") from None
        checks = data.get("checks")
        if not isinstance(checks, list):
            raise BaselineError(f"{source}: 'checks' must be a list")
        samples = {}
        for i, item in enumerate(checks):
            try:
                episodes = item["episodes"]
                columns = {c: episodes[c] for c in ("task_id", "rollout", "env_seed", "regret")}
                if len({len(c) for c in columns.values()}) != 1:
                    raise ConfigError("episode columns differ in length")
                sample = Sample(
                    str(item["agent"]), str(item["scenario_id"]), tuple(map(str, columns["task_id"])),
                    tuple(map(int, columns["rollout"])), tuple(map(int, columns["env_seed"])),
                    tuple(map(float, columns["regret"])),
                    int(item.get("failed", 0)),
                    None if item.get("invalid_rate") is None else float(item["invalid_rate"]),
                    float(item.get("cost") or 0.0),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise BaselineError(f"{source}: checks[{i}] is malformed ({type(exc).__name__}: {exc})") from None
            if sample.key in samples:
                raise BaselineError(f"{source}: checks[{i}] repeats agent {sample.agent!r} x {sample.scenario_id!r}")
            samples[sample.key] = sample
        return cls(samples, settings, dict(data.get("source") or {}), str(data.get("created", "")))

    @classmethod
    def load(cls, path: str | Path) -> Baseline:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise BaselineError(f"cannot read baseline {path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BaselineError(f"baseline {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data, str(path))


def plan_hash(plan: Mapping[str, Any]) -> str:
    """A short content hash of a plan (informational: says whether two runs ran the same suite)."""
    return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plan_fingerprint(plan: Mapping[str, Any]) -> dict[str, Any]:
    """What two runs must share to pair their episodes (`worlds_hash`: the plan without its agents),
    and each agent label's settings (`agents`: label -> JSON of agent and params)."""
    agents = {}
    for agent in plan.get("agents", []) or []:
        if isinstance(agent, Mapping):
            label = str(agent.get("label") or agent.get("agent"))
            agents[label] = json.dumps({"agent": agent.get("agent"), "params": agent.get("params", {})},
                                       sort_keys=True, default=str)
    return {"worlds_hash": plan_hash({k: v for k, v in plan.items() if k != "agents"}), "agents": agents}


def fingerprint_warnings(named: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """Warnings when runs come from different plans, or one agent label has different settings.

    `named` holds (run name, source) pairs whose sources carry `plan_fingerprint`'s keys
    (sources without them, e.g. old baselines, are skipped)."""
    known = [(name, source) for name, source in named if source.get("worlds_hash")]
    warnings = []
    if len({source["worlds_hash"] for _, source in known}) > 1:
        seeds = ", ".join(f"{name}: seed {source.get('plan_seed')}" for name, source in known)
        warnings.append(f"the runs come from different plans (scenarios, instances, rollouts or seeds differ; {seeds}): "
                        "episodes pair only where task, rollout and env seed agree")
    labels: dict[str, dict[str, str]] = {}
    for name, source in known:
        for label, spec in (source.get("agents") or {}).items():
            labels.setdefault(label, {})[name] = spec
    for label, per_run in sorted(labels.items()):
        if len(set(per_run.values())) > 1:
            detail = "; ".join(f"{run}: {spec}" for run, spec in per_run.items())
            warnings.append(f"agent {label!r} has different settings ({detail})")
    return warnings


# --- the statistics ----------------------------------------------------------------------
@dataclass(frozen=True)
class TestResult:
    """A one-sided test of H1: mean(now) > mean(baseline)."""

    __test__ = False  # not a pytest test class

    test: str  # "paired", "stratified", "task-means" or "welch"
    diff: float  # mean(now) - mean(baseline) (over the pairs for the paired test)
    statistic: float  # t; +-inf when the standard error is zero
    df: float
    pvalue: float
    n: int  # pairs (paired) or n_now + n_base (welch)


def _exact(test: str, diff: float, df: float, n: int) -> TestResult:
    """Zero standard error: the data are exact, so the sign of the difference decides."""
    if diff > 0:
        return TestResult(test, diff, math.inf, df, 0.0, n)
    return TestResult(test, diff, -math.inf if diff < 0 else 0.0, df, 1.0, n)


def welch_test(now: Sequence[float], base: Sequence[float]) -> TestResult:
    """Welch's one-sided t-test: t = (m1 - m2) / sqrt(s1^2/n1 + s2^2/n2) with
    Welch-Satterthwaite df = (v1 + v2)^2 / (v1^2/(n1-1) + v2^2/(n2-1)), v = s^2/n; p = P(T_df >= t)."""
    from scipy import stats

    n1, n2 = len(now), len(base)
    if n1 < 2 or n2 < 2:
        raise ConfigError(f"Welch's test needs at least 2 episodes on each side, got {n1} and {n2}")
    m1, m2 = math.fsum(now) / n1, math.fsum(base) / n2
    v1 = math.fsum((x - m1) ** 2 for x in now) / (n1 - 1) / n1
    v2 = math.fsum((x - m2) ** 2 for x in base) / (n2 - 1) / n2
    diff = m1 - m2
    if v1 + v2 <= 1e-24 * max(1.0, m1 * m1, m2 * m2):
        return _exact("welch", diff, float(n1 + n2 - 2), n1 + n2)
    df = (v1 + v2) ** 2 / (v1 * v1 / (n1 - 1) + v2 * v2 / (n2 - 1))
    t = diff / math.sqrt(v1 + v2)
    return TestResult("welch", diff, t, df, float(stats.t.sf(t, df)), n1 + n2)


def paired_test(now: Sequence[float], base: Sequence[float]) -> TestResult:
    """One-sided paired t-test on d = now - base: t = mean(d) / (sd(d)/sqrt(n)), df = n - 1."""
    from scipy import stats

    if len(now) != len(base):
        raise ConfigError(f"a paired test needs equal lengths, got {len(now)} and {len(base)}")
    n = len(now)
    if n < 2:
        raise ConfigError(f"a paired test needs at least 2 pairs, got {n}")
    d = [a - b for a, b in zip(now, base)]
    mean = math.fsum(d) / n
    var = math.fsum((x - mean) ** 2 for x in d) / (n - 1)
    scale = max(1.0, max(abs(a) for a in now), max(abs(b) for b in base))
    if var <= (1e-12 * scale) ** 2:
        return _exact("paired", mean, float(n - 1), n)
    t = mean / math.sqrt(var / n)
    return TestResult("paired", mean, t, float(n - 1), float(stats.t.sf(t, n - 1)), n)


def paired_by_task(now: Sequence[float], base: Sequence[float], tasks: Sequence[str]) -> TestResult:
    """One-sided test on the paired differences now - base, stratified by task: `regret compare`'s
    `harness._stats.paired_difference` with scope "tasks". The gate asks about the suite's own
    tasks (the baseline and the run share them), so only the episodes' noise counts; with one
    task it is the paired t-test."""
    from harness._stats import paired_difference

    if len(now) < 2:
        raise ConfigError(f"a paired test needs at least 2 pairs, got {len(now)}")
    estimate = paired_difference(now, base, tasks, scope="tasks")
    if not math.isfinite(estimate.std_error):  # a task with a single pair: pool the differences instead
        return paired_test(now, base)
    if estimate.exact:
        return _exact("paired", estimate.estimate, estimate.df, len(now))
    statistic = estimate.estimate / estimate.std_error
    return TestResult("paired", estimate.estimate, statistic, estimate.df, estimate.pvalue(0.0, "greater"), len(now))


def stratified_welch_test(now: Sample, base: Sample) -> TestResult:
    """Welch's test stratified by task: both runs played the same tasks (instances) but other episodes.

    Per task t: d_t = mean_now_t - mean_base_t with variance v_t = s_now_t^2/n_now_t + s_base_t^2/n_base_t;
    D = sum w_t d_t with w_t proportional to the task's episodes, Var = sum w_t^2 v_t, df by
    Welch-Satterthwaite over the 2K variance components. Instance difficulty cancels within a
    task, so the test is not fooled by how hard the instances are. With one task it is Welch's test.
    """
    from scipy import stats

    def groups(sample: Sample) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for task, regret in zip(sample.task_id, sample.regret):
            out.setdefault(task, []).append(regret)
        return out

    now_g, base_g = groups(now), groups(base)
    if now_g.keys() != base_g.keys():
        raise ConfigError("a stratified test needs the same tasks in both runs")
    total = sum(len(now_g[t]) + len(base_g[t]) for t in now_g)
    diff = variance = denominator = 0.0
    scale = 1.0
    for task in sorted(now_g):
        a, b = now_g[task], base_g[task]
        if len(a) < 2 or len(b) < 2:
            raise ConfigError(f"a stratified test needs at least 2 episodes per task on each side; "
                              f"task {task} has {len(a)} and {len(b)}")
        w = (len(a) + len(b)) / total
        ma, mb = math.fsum(a) / len(a), math.fsum(b) / len(b)
        scale = max(scale, abs(ma), abs(mb))
        diff += w * (ma - mb)
        for values, mean in ((a, ma), (b, mb)):
            component = w * w * math.fsum((x - mean) ** 2 for x in values) / (len(values) - 1) / len(values)
            variance += component
            denominator += component * component / (len(values) - 1)
    n = now.n + base.n
    if variance <= (1e-12 * scale) ** 2:
        return _exact("stratified", diff, float(n - 2), n)
    df = variance * variance / denominator
    t = diff / math.sqrt(variance)
    return TestResult("stratified", diff, t, df, float(stats.t.sf(t, df)), n)


def task_means_test(now: Sample, base: Sample) -> TestResult:
    """Welch's test on per-task mean regrets: the runs played different instances (e.g. another
    master seed drew them), so the instance, not the episode, is the unit of replication."""

    def means(sample: Sample) -> list[float]:
        out: dict[str, list[float]] = {}
        for task, regret in zip(sample.task_id, sample.regret):
            out.setdefault(task, []).append(regret)
        return [math.fsum(v) / len(v) for _, v in sorted(out.items())]

    now_m, base_m = means(now), means(base)
    if len(now_m) < 2 or len(base_m) < 2:
        raise ConfigError(f"the run's tasks differ from the baseline's (another master seed or instances?) and there "
                          f"are too few tasks ({len(now_m)} and {len(base_m)}) to compare instance means; re-run with "
                          "the baseline's suite and seed, or write a new baseline")
    result = welch_test(now_m, base_m)
    return replace(result, test="task-means")


def choose_test(now: Sample, base: Sample, test: str = "auto") -> str:
    """What `auto` picks: paired when both runs hold exactly the same episodes (task_id, rollout,
    env_seed); stratified when they hold the same tasks; task-means when the tasks differ."""
    if test != "auto":
        return test
    now_eps, base_eps = now.by_episode(), base.by_episode()
    if now_eps.keys() == base_eps.keys() and len(now_eps) == now.n and len(base_eps) == base.n:
        return "paired"
    if set(now.task_id) == set(base.task_id):
        return "stratified"
    return "task-means"


def compare_samples(now: Sample, base: Sample, test: str = "auto") -> TestResult:
    """The one-sided test `test` (see TESTS; "auto" picks with `choose_test`) of now against base."""
    if test not in TESTS:
        raise ConfigError(f"test must be one of {', '.join(TESTS)}, got {test!r}")
    test = choose_test(now, base, test)
    if test == "paired":
        now_eps, base_eps = now.by_episode(), base.by_episode()
        keys = sorted(now_eps.keys() & base_eps.keys())
        if len(keys) < 2:
            raise ConfigError(f"a paired test needs at least 2 episodes present in both runs "
                              f"(same task_id, rollout, env_seed), found {len(keys)}")
        return paired_by_task([now_eps[k] for k in keys], [base_eps[k] for k in keys], [k[0] for k in keys])
    if test == "stratified":
        return stratified_welch_test(now, base)
    if test == "task-means":
        return task_means_test(now, base)
    return welch_test(now.regret, base.regret)


# --- checks ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """The verdict on one (agent, scenario_id)."""

    agent: str
    scenario_id: str
    status: str  # pass, new, missing or fail
    reasons: tuple[str, ...] = ()  # why it failed: worse, ceiling, invalid rate, cost, untestable, missing
    baseline_mean: float | None = None
    now_mean: float | None = None
    n_baseline: int = 0
    n_now: int = 0
    test: TestResult | None = None
    pvalue_adjusted: float | None = None
    threshold: float | None = None  # the minimum increase that can fail
    ceiling: float | None = None
    invalid_rate: float | None = None
    cost: float = 0.0
    details: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    @property
    def change(self) -> float | None:
        if self.baseline_mean is None or self.now_mean is None:
            return None
        return self.now_mean - self.baseline_mean

    @property
    def verdict(self) -> str:
        return f"fail: {', '.join(self.reasons)}" if self.status == "fail" else self.status

    @property
    def message(self) -> str:
        return "; ".join(self.details)


@dataclass(frozen=True)
class CheckRow:
    """One check as the tables show it: text cells, named (the terminal, Markdown and JUnit read them by name)."""

    agent: str
    scenario: str
    baseline: str
    now: str
    change: str
    p_value: str
    adjusted_p: str
    verdict: str

    def cells(self) -> list[str]:
        """The cells in the order of `CheckReport.header()`."""
        return [getattr(self, f.name) for f in fields(self)]


@dataclass(frozen=True)
class CheckReport:
    """All checks of a run against a baseline. Truthy when every check passed."""

    checks: tuple[Check, ...]
    settings: CheckSettings
    warnings: tuple[str, ...] = ()  # the runs' plans or an agent's settings differ

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def __bool__(self) -> bool:
        return self.passed

    def __getitem__(self, key: tuple[str, str]) -> Check:
        for check in self.checks:
            if (check.agent, check.scenario_id) == tuple(key):
                return check
        raise KeyError(key)

    def summary(self) -> str:
        s = self.settings
        failed = len(self.failures)
        head = f"{'FAILED' if failed else 'passed'}: {failed} of {len(self.checks)} checks failed" if failed else \
            f"passed: {len(self.checks)} check(s)"
        tests = {}
        for c in self.checks:
            if c.test is not None:
                tests[c.test.test] = tests.get(c.test.test, 0) + 1
        used = ", ".join(f"{k} {v}" for k, v in sorted(tests.items())) or "none"
        return (f"{head} (one-sided t-tests [{used}] at alpha={s.alpha:g}, correction={s.correction}, "
                f"min effect {s.min_effect:.0%} relative / {s.min_effect_abs:g} absolute)")

    def rows(self) -> list[CheckRow]:
        return [CheckRow(c.agent, c.scenario_id, _mean_cell(c.baseline_mean, c.n_baseline), _mean_cell(c.now_mean, c.n_now),
                         _change_cell(c), _p_cell(c, raw=True), _p_cell(c), c.verdict) for c in self.checks]

    def header(self) -> list[str]:
        adjusted = "p-value (none)" if self.settings.correction == "none" else f"p-value ({self.settings.correction})"
        return ["agent", "scenario", "baseline", "now", "change", "p-value", adjusted, "verdict"]

    def table(self) -> str:
        """A fixed-width text table for the terminal, followed by the summary and failure details."""
        rows = [self.header(), *(row.cells() for row in self.rows())]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines += ["", self.summary()]
        lines += [f"  {c.agent} x {c.scenario_id}: {c.message}" for c in self.failures if c.message]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def markdown(self) -> str:
        """A Markdown section (for $GITHUB_STEP_SUMMARY)."""
        icon = {"pass": "✅", "new": "🆕", "missing": "❌", "fail": "❌"}
        rows = [self.header(), *(replace(row, verdict=f"{icon[check.status]} {row.verdict}").cells()
                                 for row, check in zip(self.rows(), self.checks))]
        escape = lambda cell: cell.replace("|", "\\|")  # noqa: E731
        lines = ["## regret check", "", f"**{self.summary()}**", "", *(f"> warning: {w}" for w in self.warnings),
                 *([""] if self.warnings else []),
                 "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows[1:]]
        details = [f"- `{c.agent}` x `{c.scenario_id}`: {escape(c.message)}" for c in self.failures if c.message]
        if details:
            lines += ["", *details]
        return "\n".join(lines) + "\n"

    def junit_xml(self) -> str:
        """JUnit XML: one <testcase> per check, failed checks carry a <failure>."""
        import xml.etree.ElementTree as ET

        suites = ET.Element("testsuites", name="regret check")
        suite = ET.SubElement(suites, "testsuite", name="regret check", tests=str(len(self.checks)),
                              failures=str(len(self.failures)), errors="0", skipped="0", time="0")
        for check, row in zip(self.checks, self.rows()):
            case = ET.SubElement(suite, "testcase", classname=f"regret.{check.agent}", name=check.scenario_id, time="0")
            text = (f"baseline {row.baseline}, now {row.now}, change {row.change}, p {row.p_value}, "
                    f"adjusted p {row.adjusted_p}, verdict {row.verdict}"
                    + (f"; {check.message}" if check.message else ""))
            if check.passed:
                ET.SubElement(case, "system-out").text = text
            else:
                ET.SubElement(case, "failure", message=check.verdict, type=check.reasons[0]).text = text
        ET.indent(suites)
        return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        # one line, failures first: pytest shows (and truncates) this when `assert report` fails
        if self.passed:
            return f"<regret check passed: {len(self.checks)} check(s)>"
        shown = "; ".join(f"{c.agent} x {c.scenario_id}: {c.verdict} ({_change_cell(c)}, p={_p_cell(c)})"
                          for c in self.failures)
        return f"<regret check FAILED {len(self.failures)}/{len(self.checks)}: {shown}>"

    def raise_if_failed(self) -> None:
        """Raise AssertionError with the whole table when a check failed (for tests)."""
        if not self.passed:
            raise AssertionError("regret check failed\n" + self.table())


def compare(current: Baseline, baseline: Baseline, settings: CheckSettings | None = None) -> CheckReport:
    """Check every (agent, scenario) of `current` (a run) against `baseline`.

    `settings` default to the baseline's stored settings, then to `CheckSettings()`.
    """
    settings = settings or baseline.settings or CheckSettings()
    keys = sorted(set(current.samples) | set(baseline.samples), key=lambda k: (k[1], k[0]))
    tested: dict[tuple[str, str], TestResult] = {}
    problems: dict[tuple[str, str], str] = {}
    for key in keys:
        now, base = current.samples.get(key), baseline.samples.get(key)
        if now is None or base is None or now.n == 0:
            continue
        try:
            tested[key] = compare_samples(now, base, settings.test)
        except ValueError as exc:
            problems[key] = str(exc)
    adjusted = dict(zip(tested, adjust_pvalues([t.pvalue for t in tested.values()], settings.correction)))

    checks = []
    for agent, scenario_id in keys:
        key = (agent, scenario_id)
        now, base = current.samples.get(key), baseline.samples.get(key)
        reasons: list[str] = []
        details: list[str] = []
        if now is None or now.n == 0:
            why = "in the baseline but not in this run" if now is None else \
                f"no finished episodes in this run ({now.failed} failed)"
            checks.append(Check(agent, scenario_id, "fail", (MISSING,), base.mean if base else None, None,
                                base.n if base else 0, 0, details=(why,)))
            continue
        ceiling = settings.ceiling_for(scenario_id)
        if ceiling is not None and now.mean > ceiling:
            reasons.append(CEILING)
            details.append(f"mean regret {now.mean:.4g} is above the ceiling {ceiling:g}")
        if settings.max_invalid_rate is not None and (now.invalid_rate or 0.0) > settings.max_invalid_rate:
            reasons.append(INVALID)
            details.append(f"invalid-action rate {now.invalid_rate:.2%} is above {settings.max_invalid_rate:.2%}")
        if settings.max_cost is not None and now.cost > settings.max_cost:
            reasons.append(COST)
            details.append(f"cost ${now.cost:.4f} is above ${settings.max_cost:g}")
        test = tested.get(key)
        threshold = None
        if base is not None:
            threshold = max(settings.min_effect * abs(base.mean), settings.min_effect_abs)
            if key in problems:
                reasons.append(TOO_FEW)
                details.append(f"cannot test: {problems[key]}")
            elif test is not None and adjusted[key] < settings.alpha and test.diff > threshold:
                reasons.insert(0, WORSE)
                details.insert(0, f"mean regret rose by {test.diff:.4g} (more than the minimum effect {threshold:.4g}), "
                                  f"{test.test} one-sided p={adjusted[key]:.3g} < alpha={settings.alpha:g}")
        if now.failed:
            details.append(f"{now.failed} episode(s) failed and are not counted")
        status = "fail" if reasons else (PASS if base is not None else NEW)
        checks.append(Check(
            agent, scenario_id, status, tuple(reasons), base.mean if base else None, now.mean,
            base.n if base else 0, now.n, test, adjusted.get(key), threshold, ceiling, now.invalid_rate, now.cost,
            tuple(details),
        ))
    warnings = fingerprint_warnings([("baseline", baseline.source), ("run", current.source)])
    return CheckReport(tuple(checks), settings, tuple(warnings))


def check_run(run_dir: str | Path, baseline: str | Path | Baseline, settings: CheckSettings | None = None) -> CheckReport:
    """Compare the run in `run_dir` with a baseline (a file or a Baseline)."""
    base = baseline if isinstance(baseline, Baseline) else Baseline.load(baseline)
    return compare(Baseline.from_run(run_dir), base, settings)


def write_baseline(run_dir: str | Path, path: str | Path, settings: CheckSettings | None = None) -> Baseline:
    """Store the run in `run_dir` as the baseline file `path` (with the settings to check against it)."""
    baseline = Baseline.from_run(run_dir).with_settings(settings)
    baseline.save(path)
    return baseline


# --- formatting helpers ------------------------------------------------------------------
def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _num(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


def _mean_cell(mean: float | None, n: int) -> str:
    return "-" if mean is None else f"{_num(mean)} (n={n})"


def _change_cell(check: Check) -> str:
    change = check.change
    if change is None:
        return "-"
    base = check.baseline_mean or 0.0
    relative = f" ({change / abs(base):+.0%})" if abs(base) > 1e-12 else ""
    return f"{change:+.4g}{relative}"


def _p_cell(check: Check, raw: bool = False) -> str:
    p = check.test.pvalue if raw and check.test is not None else check.pvalue_adjusted
    if p is None or check.test is None:
        return "-"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def merge_settings(base: CheckSettings | None, overrides: Mapping[str, Any]) -> CheckSettings:
    """`base` (or the defaults) with every non-None override applied."""
    values = (base or CheckSettings()).to_dict()
    values.update({k: v for k, v in overrides.items() if v is not None})
    return CheckSettings.from_dict(values)


def parse_fail_above(items: Iterable[str]) -> dict[str, float]:
    """`["bandit/*=20", "5"]` -> {"bandit/*": 20.0, "*": 5.0}; a bare value applies to every scenario."""
    ceilings: dict[str, float] = {}
    for item in items:
        pattern, sep, value = item.rpartition("=")
        pattern = pattern.strip() if sep else "*"
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"--fail-above {item!r}: expected SCENARIO=VALUE or VALUE with a number") from None
        if not math.isfinite(number) or not pattern:
            raise ConfigError(f"--fail-above {item!r}: expected SCENARIO=VALUE or VALUE with a finite number")
        ceilings[pattern] = number
    return ceilings
