"""Calibration of the statistics in harness._stats on real harness runs (not a pytest file: minutes).

    .venv/bin/python benchmarks/stats_calibration.py [--reps 200] [--only sublinear,coverage,compare,power]

Every measurement plays real episodes with the runner into a run directory and reads them back
with the leaderboard's own code (`metrics.episode_growth`). One big run per (scenario, agent) holds
reps x tasks tasks; its tasks are cut into `reps` disjoint groups, and each group is one
simulated "run" (its tasks are independent instance draws, exactly as a run with another master
seed would draw them). tests/test_stats.py holds small, fast versions with assertions.

1. sublinear: the share of runs the test calls "sublinear" at level 0.05, for linear-regret
   agents (uniform; "constant-gap": the round's best arm w.p. 1 - q, else a random other arm,
   so the expected per-round regret is constant in stationary bandits) on four scenarios, and
   for UCB1 / Thompson at T = 1000. Beside it: the old test (least squares on the mean curve
   with the regression p-value), which treats a curve's points as independent.
2. coverage: the clustered 95% interval of mean final regret, at 3 and 20 tasks per run, for the
   uniform agent on a Gaussian bandit whose instances differ (arm means ~ N(0, 1)), where the
   true mean is known exactly: T * E[max - mean of K standard normals]. The naive interval
   (episodes as independent) beside it.
3. compare: false-positive rate of the paired, task-clustered difference between two copies of
   one agent (epsilon-greedy 0.1 under two labels: only their own seeds differ).
4. power: epsilon-greedy 0.1 vs 0.2: tasks/episodes for 80% power, paired vs unpaired, planned
   from a pilot run, then checked by simulating runs of the planned size.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TASKS, ROLLOUTS = 5, 4  # per simulated run in the sublinearity and compare measurements


def register_constant_gap() -> None:
    """The linear-regret reference policy: best arm w.p. 1 - q, else a uniformly random other arm."""
    from agents import Agent, Decision
    from agents._base import BASELINES, baseline

    if "constant-gap" in BASELINES.names():
        return

    @baseline("constant-gap", kinds=("bandit", "experts", "contextual"))
    @dataclass
    class ConstantGap(Agent):
        q: float = 0.5
        privileged = True

        def reset(self, episode) -> None:
            super().reset(episode)
            self._optimal = episode.scenario.optimal_action
            self._rng = np.random.default_rng(episode.seed)
            self._k = episode.n_actions

        def decide(self, observation) -> Decision:
            best = self._optimal(observation.t)
            if self._rng.random() >= self.q:
                return Decision(action=best)
            other = int(self._rng.integers(self._k - 1))
            return Decision(action=other + (other >= best))


def run(agents, scenario: dict, instances: int, rollouts: int, root: Path, name: str, seed: int = 0):
    from harness import load_run, parse_suite, run_plan

    plan = parse_suite({"name": name, "seed": seed, "rollouts": rollouts, "agents": agents,
                        "scenarios": [{**scenario, "instances": instances}]})
    run_plan(plan, root / name, concurrency=16)
    return load_run(root / name)


def groups_of(frame, reps: int):
    """Map each task to its simulated run: tasks sorted by id, cut into `reps` equal groups."""
    tasks = sorted(frame["task_id"].unique().to_list())
    size = len(tasks) // reps
    return {task: i // size for i, task in enumerate(tasks[: size * reps])}


def old_curve_test(frame) -> float:
    """The replaced test: OLS of log mean R_t on log t (rounds after 10% burn-in) with its t p-value."""
    from scipy import stats

    curve = frame.group_by("t").agg(R=__import__("polars").col("cumulative_regret").mean()).sort("t")
    t = curve["t"].to_numpy() + 1.0
    R = curve["R"].to_numpy()
    keep = (t > math.floor(0.1 * t.max() + 1e-9)) & (R > 1e-9)
    fit = stats.linregress(np.log(t[keep]), np.log(R[keep]))
    if fit.stderr == 0:
        return 1.0 if fit.slope >= 1 - 1e-9 else 0.0
    return float(stats.t.cdf((fit.slope - 1) / fit.stderr, keep.sum() - 2))


def sublinear(reps: int, root: Path, scenarios: str | None = None) -> list[str]:
    register_constant_gap()
    null_scenarios = [
        {"id": "bernoulli-k5", "family": "bandit/bernoulli", "params": {"n_arms": 5, "horizon": 500}},
        {"id": "gaussian-k5", "family": "bandit/gaussian", "params": {"n_arms": 5, "horizon": 500}},
        {"id": "nonstationary-abrupt", "family": "bandit/nonstationary",
         "params": {"n_arms": 3, "horizon": 500, "mode": "abrupt", "variation_budget": 1.2}},
        {"id": "experts-gaussian", "family": "experts/full-info",
         "params": {"n_experts": 5, "horizon": 500, "losses": "gaussian"}},
    ]
    long = [
        {"id": "bernoulli-k5-T1000", "family": "bandit/bernoulli", "params": {"n_arms": 5, "horizon": 1000}},
        {"id": "gaussian-k5-T1000", "family": "bandit/gaussian", "params": {"n_arms": 5, "horizon": 1000}},
    ]
    cells = [(s, ["uniform", {"agent": "constant-gap", "q": 0.5}]) for s in null_scenarios]
    cells += [(long[0], ["ucb1", "thompson"]), (long[1], ["ucb1", "thompson-gaussian"])]
    if scenarios:
        cells = [cell for cell in cells if cell[0]["id"] in scenarios.split(",")]
    lines = [f"1. sublinearity verdicts at level 0.05: {reps} simulated runs per row, each {TASKS} tasks x "
             f"{ROLLOUTS} rollouts ({reps * TASKS * ROLLOUTS} episodes per row)",
             f"{'scenario':<22} {'agent':<18} {'T':>5} {'mean beta':>9} {'sublinear (new)':>15} "
             f"{'sublinear (old curve OLS)':>26}"]
    for scenario, agents in cells:
        decisions, episodes = run(agents, scenario, reps * TASKS, ROLLOUTS, root, f"sub-{scenario['id']}")
        lines += sublinear_rows(scenario, decisions, episodes, reps)
    return lines


def sublinear_rows(scenario: dict, decisions, episodes, reps: int) -> list[str]:
    """One line per agent of a finished sublinearity run: mean beta, new and old verdict rates."""
    import polars as pl

    from harness import metrics, sublinearity_test

    growth = metrics.episode_growth(decisions, episodes)
    group = groups_of(growth, reps)
    growth = growth.with_columns(rep=pl.col("task_id").replace_strict(group, default=None)).drop_nulls("rep")
    decisions = decisions.collect().join(growth.select("agent", "task_id", "rep").unique(), on=["agent", "task_id"])
    lines = []
    for agent in growth["agent"].unique().sort().to_list():
        mine = growth.filter(pl.col("agent") == agent)
        new = [sublinearity_test(part["beta"].fill_null(np.nan).to_numpy(), part["task_id"].to_numpy()).sublinear
               for _, part in mine.group_by("rep")]
        old = [old_curve_test(part) < 0.05 for _, part in decisions.filter(pl.col("agent") == agent).group_by("rep")]
        lines.append(f"{scenario['id']:<22} {agent:<18} {scenario['params']['horizon']:>5} "
                     f"{mine['beta'].mean():>9.3f} {np.mean([v is True for v in new]):>15.3f} {np.mean(old):>26.3f}")
    return lines


def expected_max_of_normals(k: int) -> float:
    from scipy import integrate, stats

    value, _ = integrate.quad(lambda x: x * k * stats.norm.pdf(x) * stats.norm.cdf(x) ** (k - 1), -12, 12)
    return value


def coverage(reps: int, root: Path) -> list[str]:
    import polars as pl

    from harness import clustered_mean

    k, horizon, rollouts = 5, 100, 4
    true_mean = horizon * expected_max_of_normals(k)  # E[T (max mu - mean mu)], mean mu has expectation 0
    scenario = {"id": "gaussian-k5", "family": "bandit/gaussian", "params": {"n_arms": k, "horizon": horizon}}
    lines = [f"2. coverage of 95% intervals for mean final regret (uniform on bandit/gaussian K={k}, T={horizon}, "
             f"{rollouts} rollouts per task; true mean {true_mean:.4f})",
             f"{'tasks per run':>13} {'runs':>5} {'clustered':>10} {'naive':>7} {'clustered (synthetic normal)':>29}"]
    rng = np.random.default_rng(0)
    for tasks, n_runs in ((3, reps * 5), (20, reps * 3 // 2)):
        _, episodes = run(["uniform"], scenario, tasks * n_runs, rollouts, root, f"cov-{tasks}", seed=tasks)
        frame = episodes.filter(pl.col("status") == "finished").collect()
        group = groups_of(frame, n_runs)
        frame = frame.with_columns(rep=pl.col("task_id").replace_strict(group, default=None)).drop_nulls("rep")
        hits = naive = 0
        for _, part in frame.group_by("rep"):
            y, labels = part["final_regret"].to_numpy(), part["task_id"].to_numpy()
            c, n = clustered_mean(y, labels), clustered_mean(y)
            hits += c.ci_low <= true_mean <= c.ci_high
            naive += n.ci_low <= true_mean <= n.ci_high
        synthetic = 0
        labels = np.repeat(np.arange(tasks), rollouts)
        for _ in range(20000):
            y = rng.normal(0, 2, tasks)[labels] + rng.normal(0, 1, labels.size)
            c = clustered_mean(y, labels)
            synthetic += c.ci_low <= 0.0 <= c.ci_high
        lines.append(f"{tasks:>13} {n_runs:>5} {hits / n_runs:>10.3f} {naive / n_runs:>7.3f} {synthetic / 20000:>29.3f}")
    return lines


def compare_copies(reps: int, root: Path) -> list[str]:
    import polars as pl

    from harness import paired_difference

    agents = [{"agent": "epsilon-greedy", "epsilon": 0.1, "label": "copy-a"},
              {"agent": "epsilon-greedy", "epsilon": 0.1, "label": "copy-b"}]
    lines = [f"3. false positives of the paired, task-clustered comparison at 0.05: two copies of epsilon-greedy 0.1 "
             f"({reps} runs of {TASKS} tasks x {ROLLOUTS} rollouts)",
             f"{'scenario':<16} {'false-positive rate':>20} {'same, tasks scope':>18}"]
    for scenario in ({"id": "bernoulli-k5", "family": "bandit/bernoulli", "params": {"n_arms": 5, "horizon": 100}},
                     {"id": "gaussian-k5", "family": "bandit/gaussian", "params": {"n_arms": 5, "horizon": 100}}):
        _, episodes = run(agents, scenario, reps * TASKS, ROLLOUTS, root, f"cmp-{scenario['id']}")
        wide = _paired_frame(episodes.collect(), "copy-a", "copy-b")
        group = groups_of(wide, reps)
        wide = wide.with_columns(rep=pl.col("task_id").replace_strict(group, default=None)).drop_nulls("rep")
        rejects = {"instances": 0, "tasks": 0}
        for _, part in wide.group_by("rep"):
            for scope in rejects:
                d = paired_difference(part["a"].to_numpy(), part["b"].to_numpy(), part["task_id"].to_numpy(),
                                      scope=scope)
                rejects[scope] += d.pvalue() < 0.05
        lines.append(f"{scenario['id']:<16} {rejects['instances'] / reps:>20.3f} {rejects['tasks'] / reps:>18.3f}")
    return lines


def _paired_frame(frame, a: str, b: str):
    import polars as pl

    keys = ["scenario_id", "task_id", "rollout", "env_seed"]
    finished = frame.filter(pl.col("status") == "finished")
    left = finished.filter(pl.col("agent") == a).select(*keys, a=pl.col("final_regret"))
    right = finished.filter(pl.col("agent") == b).select(*keys, b=pl.col("final_regret"))
    return left.join(right, on=keys, how="inner").sort(keys)


def power(reps: int, root: Path) -> list[str]:
    import polars as pl

    from harness import clustered_mean, difference, paired_difference, plan_power

    scenario = {"id": "gaussian-k5", "family": "bandit/gaussian", "params": {"n_arms": 5, "horizon": 100}}
    agents = [{"agent": "epsilon-greedy", "epsilon": 0.1, "label": "eps0.1"},
              {"agent": "epsilon-greedy", "epsilon": 0.2, "label": "eps0.2"}]
    rollouts = 4
    _, big = run(agents, scenario, 1000, rollouts, root, "power-truth", seed=7)
    truth = _paired_frame(big.collect(), "eps0.2", "eps0.1")
    relative = float(truth["a"].mean() / truth["b"].mean() - 1.0)
    _, pilot = run(agents, scenario, 20, rollouts, root, "power-pilot", seed=8)
    pilot = _paired_frame(pilot.collect(), "eps0.2", "eps0.1")
    lines = [f"4. power: epsilon-greedy 0.2 vs 0.1 on bandit/gaussian K=5, T=100, {rollouts} rollouts per task; "
             f"true relative difference {relative:+.1%} (from 1000 tasks x {rollouts}), planned for 80% power at "
             f"alpha 0.05 (two-sided) from a pilot of 20 tasks x {rollouts}",
             f"{'scope':<10} {'design':<9} {'tasks':>6} {'episodes/agent':>15} {'simulated power':>16}"]
    _, pool = run(agents, scenario, 1500, rollouts, root, "power-check", seed=9)
    pool = _paired_frame(pool.collect(), "eps0.2", "eps0.1")
    tasks = sorted(pool["task_id"].unique().to_list())
    rng = np.random.default_rng(1)
    for scope in ("instances", "tasks"):
        plan = plan_power(pilot["a"].to_numpy(), pilot["b"].to_numpy(), pilot["task_id"].to_numpy(),
                          relative_effect=relative, scope=scope)
        for design, n_tasks, n_episodes in (("paired", plan.paired_tasks, plan.paired_episodes),
                                            ("unpaired", plan.unpaired_tasks, plan.unpaired_episodes)):
            simulated = "-"
            if scope == "instances" and n_tasks is not None and 2 * n_tasks <= len(tasks):
                hits, trials = 0, min(reps, 400)
                for _ in range(trials):
                    chosen = rng.choice(len(tasks), size=2 * n_tasks, replace=False)
                    first = pool.filter(pl.col("task_id").is_in([tasks[i] for i in chosen[:n_tasks]]))
                    if design == "paired":
                        d = paired_difference(first["a"].to_numpy(), first["b"].to_numpy(), first["task_id"].to_numpy())
                    else:  # each agent on its own instances: a from the first half of the tasks, b from the second
                        second = pool.filter(pl.col("task_id").is_in([tasks[i] for i in chosen[n_tasks:]]))
                        d = difference(clustered_mean(first["a"].to_numpy(), first["task_id"].to_numpy()),
                                       clustered_mean(second["b"].to_numpy(), second["task_id"].to_numpy()))
                    hits += d.pvalue() < 0.05
                simulated = f"{hits / trials:.3f}"
            lines.append(f"{scope:<10} {design:<9} {n_tasks if n_tasks else '-':>6} "
                         f"{n_episodes if n_episodes else '-':>15} {simulated:>16}")
    lines.append("  (tasks scope: the pilot's 20 tasks are kept and only the rollouts per task grow; "
                 "simulated power is checked for the instances scope)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=200, help="simulated runs per measurement (default 200)")
    parser.add_argument("--only", default="sublinear,coverage,compare,power")
    parser.add_argument("--out", help="also write the results to this file")
    parser.add_argument("--scenarios", help="sublinear: only these scenario ids (comma-separated)")
    args = parser.parse_args()
    started, cpu = time.perf_counter(), time.process_time()
    root = Path(tempfile.mkdtemp(prefix="stats-calibration-"))
    lines: list[str] = []
    steps = {"sublinear": sublinear, "coverage": coverage, "compare": compare_copies, "power": power}
    for name in args.only.split(","):
        part = sublinear(args.reps, root, args.scenarios) if name == "sublinear" else steps[name](args.reps, root)
        print("\n".join(part) + "\n", flush=True)
        lines += part + [""]
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    footer = (f"{time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU in this process "
              f"+ {children.ru_utime + children.ru_stime:.0f} s in worker processes (pid {os.getpid()}; runs under {root})")
    print(footer)
    if args.out:
        Path(args.out).write_text("\n".join(lines + [footer]) + "\n")


if __name__ == "__main__":
    main()
