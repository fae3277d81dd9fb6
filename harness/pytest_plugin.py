"""pytest plugin (entry point `regret`): agent-quality checks beside a project's other tests.

    import pytest

    @pytest.mark.regret
    def test_agent_quality(regret_run):
        result = regret_run("ci.toml", agent="ucb1", rollouts=10, seed=0)
        assert result.mean_regret("bandit/bernoulli-k5") < 15
        assert result.no_worse_than("regret-baseline.json")      # or result.assert_no_worse_than(...)

`regret_run(suite, agent=None, rollouts=None, seed=None, scenario=None)` runs a suite (a
TOML path, a built-in suite name, a suite mapping or a `harness.Plan`) into the test's
tmp_path and returns a `RegretResult`. Select these tests with `pytest -m regret` (or skip
them with `-m "not regret"`).

Loaded by pytest in every project that installs regret-harness, so this module imports
nothing heavy at import time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MARKER = "regret: an agent-quality check run by the regret-harness plugin (select with -m regret)"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


@dataclass
class RegretResult:
    """A finished run in `directory`, with helpers to assert on its regret."""

    directory: Path
    plan: Any  # harness.Plan

    @property
    def episodes(self):
        """The episodes table as a polars DataFrame."""
        from harness import load_run

        return load_run(self.directory)[1].collect()

    def _agent(self, agent: str | None) -> str:
        names = [a.name for a in self.plan.agents]
        if agent is None:
            if len(names) != 1:
                raise _config_error(f"this run has {len(names)} agents ({', '.join(names)}); pass agent=...")
            return names[0]
        if agent not in names:
            raise _config_error(f"unknown agent {agent!r} in this run (agents: {', '.join(names)})")
        return agent

    def regrets(self, scenario_id: str, agent: str | None = None) -> list[float]:
        """Final regrets of the finished episodes of `agent` x `scenario_id`."""
        import polars as pl

        agent = self._agent(agent)
        known = [e.id for e in self.plan.scenarios]
        if scenario_id not in known:
            raise _config_error(f"unknown scenario {scenario_id!r} in this run (scenarios: {', '.join(known)})")
        frame = self.episodes.filter((pl.col("agent") == agent) & (pl.col("scenario_id") == scenario_id)
                                     & (pl.col("status") == "finished"))
        return frame["final_regret"].to_list()

    def mean_regret(self, scenario_id: str, agent: str | None = None) -> float:
        """Mean final regret over the finished episodes (the only agent's when `agent` is None)."""
        values = self.regrets(scenario_id, agent)
        if not values:
            raise _config_error(f"no finished episodes of {self._agent(agent)!r} x {scenario_id!r}")
        return sum(values) / len(values)

    def assert_no_worse_than(self, baseline: str | Path | RegretResult | Any, **settings: Any):
        """Like `no_worse_than`, but raise AssertionError carrying the whole check table."""
        report = self.no_worse_than(baseline, **settings)
        report.raise_if_failed()
        return report

    def baseline(self):
        """This run as a `harness.check.Baseline`."""
        from harness.check import Baseline

        return Baseline.from_run(self.directory)

    def write_baseline(self, path: str | Path, **settings: Any) -> Path:
        """Store this run as a baseline file (settings as in `harness.check.CheckSettings`)."""
        from harness.check import merge_settings

        self.baseline().with_settings(merge_settings(None, settings)).save(path)
        return Path(path)

    def no_worse_than(self, baseline: str | Path | RegretResult | Any, **settings: Any):
        """Check this run against a baseline file, another RegretResult or a Baseline.

        Returns a `CheckReport`: truthy when every check passes; its repr is the readable table
        pytest shows when `assert result.no_worse_than(...)` fails. Settings (alpha=,
        min_effect=, correction=, fail_above=, ...) override those stored in the baseline.
        """
        from harness.check import Baseline, compare, merge_settings

        if isinstance(baseline, RegretResult):
            baseline = baseline.baseline()
        elif not isinstance(baseline, Baseline):
            baseline = Baseline.load(baseline)
        return compare(self.baseline(), baseline, merge_settings(baseline.settings, settings))


def _plan(suite: Any):
    from harness import Plan, load_suite_or_builtin, parse_suite

    if isinstance(suite, Plan):
        return suite
    if isinstance(suite, Mapping):
        return parse_suite(suite, "suite")
    if isinstance(suite, (str, Path)):
        return load_suite_or_builtin(str(suite))
    raise TypeError(f"regret_run: suite must be a TOML path, a built-in suite name, a mapping or a Plan, got {suite!r}")


def _agents(agent: Any) -> tuple:
    from agents import AgentSpec

    items = [agent] if isinstance(agent, (str, AgentSpec, Mapping)) else list(agent)
    specs = []
    for item in items:
        if isinstance(item, AgentSpec):
            specs.append(item)
        elif isinstance(item, str):
            specs.append(AgentSpec(item))
        elif isinstance(item, Mapping):
            settings = {k: v for k, v in item.items() if k not in ("agent", "label")}
            specs.append(AgentSpec(item["agent"], settings, str(item.get("label", ""))))
        else:
            raise TypeError(f"regret_run: agent must be a name, a mapping or an AgentSpec, got {item!r}")
    return tuple(specs)


@pytest.fixture
def regret_run(tmp_path: Path):
    """A callable that runs a suite into tmp_path and returns a `RegretResult`."""
    count = 0

    def run(suite: Any, agent: Any = None, *, rollouts: int | None = None, seed: int | None = None,
            scenario: str | Sequence[str] | None = None, concurrency: int = 8) -> RegretResult:
        nonlocal count
        from harness import run_plan

        plan = _plan(suite)
        if agent is not None:
            plan = plan.replace(agents=_agents(agent))
        if scenario is not None:
            wanted = {scenario} if isinstance(scenario, str) else set(scenario)
            chosen = tuple(e for e in plan.scenarios if e.id in wanted or e.family in wanted)
            if not chosen:
                raise _config_error(f"regret_run: no scenario {sorted(wanted)} in the suite "
                                 f"(scenarios: {', '.join(e.id for e in plan.scenarios)})")
            plan = plan.replace(scenarios=chosen)
        if rollouts is not None:
            from dataclasses import replace

            plan = plan.replace(rollouts=rollouts, scenarios=tuple(replace(e, rollouts=None) for e in plan.scenarios))
        if seed is not None:
            plan = plan.replace(seed=seed)
        if not plan.agents:
            raise _config_error("regret_run: the suite names no agents; pass agent=...")
        count += 1
        directory = tmp_path / f"regret-run-{count}"
        result = run_plan(plan, directory, concurrency=concurrency)
        if result.failed:
            raise RuntimeError(f"regret_run: {result.failed} episode(s) failed: " + "; ".join(result.errors[:3]))
        return RegretResult(directory, plan)

    return run


def _config_error(message: str) -> Exception:
    from scenarios import ConfigError  # imported on use: pytest loads this plugin at every start-up

    return ConfigError(message)
