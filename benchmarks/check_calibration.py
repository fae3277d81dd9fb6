"""Calibration of `regret check`: false-alarm and detection rates, measured by simulation.

    .venv/bin/python benchmarks/check_calibration.py [--reruns 200] [--rollouts 10]

Not a pytest file (it takes a minute or two); tests/test_check.py runs a smaller version of
the same measurements with assertions. The suite is two bandit scenarios with two instances
each; the agent is epsilon-greedy.

- "paired" (same suite and seed, fresh agent randomness; what a CI re-run of a sampled LLM
  looks like): one run holds the agent under many labels; labels change only the agent's
  seeds, so every copy meets the same worlds (env seeds) and `auto` picks the paired test.
- "stratified" (another master seed, instances fixed by `seeds = [...]` in the suite): env
  and agent seeds differ, the tasks are the same; `auto` picks Welch stratified by task.
- "task-means" (another master seed, instances drawn from it): the tasks differ too; `auto`
  picks Welch on per-task means. "welch" shows what pooling those episodes would do.

The baseline is the first copy (label 0 / seed 0) and each re-run is compared with it, as a
CI gate would; "independent" pairs copies 2k and 2k+1 instead, which measures the test's
own false-alarm rate free of the luck of one baseline.

A false alarm is a re-run of the *same* agent that fails the gate (any check: family-wise);
detection is a worse agent (larger epsilon) that fails it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

PARAMS = {"bernoulli-k5": ("bandit/bernoulli", {"n_arms": 5, "horizon": 100, "gap": 0.2}),
          "gaussian-k5": ("bandit/gaussian", {"n_arms": 5, "horizon": 100})}
# drawn: instances from the master seed; fixed: the same two instances whatever the seed
SCENARIOS = [{"id": f"drawn/{name}", "family": family, "params": params, "instances": 2}
             for name, (family, params) in PARAMS.items()]
SCENARIOS += [{"id": f"fixed/{name}", "family": family, "params": params, "seeds": [11, 12]}
              for name, (family, params) in PARAMS.items()]


def suite(agents, seed: int, rollouts: int, prefix: str = ""):
    from harness import parse_suite

    return parse_suite({"name": "calibration", "seed": seed, "rollouts": rollouts, "agents": agents,
                        "scenarios": [s for s in SCENARIOS if s["id"].startswith(prefix)]})


def rename(frame, label: str):
    import polars as pl

    return frame.filter(pl.col("agent") == label).with_columns(agent=pl.lit("candidate"))


def subset(baseline, prefix: str):
    from dataclasses import replace

    return replace(baseline, samples={k: v for k, v in baseline.samples.items() if k[1].startswith(prefix)})


def rates(pairs, settings) -> tuple[float, float]:
    from harness.check import compare

    reports = [compare(current, base, settings) for current, base in pairs]
    family = sum(not r.passed for r in reports) / len(reports)
    per_check = sum(not c.passed for r in reports for c in r.checks) / sum(len(r.checks) for r in reports)
    tests = sorted({c.test.test for r in reports for c in r.checks if c.test is not None})
    return family, per_check, "/".join(tests)


def main() -> None:
    from harness import load_run, run_plan
    from harness.check import Baseline, CheckSettings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reruns", type=int, default=200)
    parser.add_argument("--rollouts", type=int, default=10)
    parser.add_argument("--base-epsilon", type=float, default=0.1)
    parser.add_argument("--worse", type=float, nargs="*", default=[0.2, 0.3, 0.5])
    args = parser.parse_args()
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="check-calibration-"))
    n = args.reruns

    def agent(eps, label):
        return {"agent": "epsilon-greedy", "epsilon": eps, "label": label}

    # paired: one run, seed 0, many labels (fixed instances only: the tasks do not matter here)
    agents = [agent(args.base_epsilon, f"same{k}") for k in range(n + 1)]
    agents += [agent(eps, f"worse{eps}-{k}") for eps in args.worse for k in range(n)]
    run_plan(suite(agents, 0, args.rollouts, "fixed/"), root / "paired")
    frame = load_run(root / "paired")[1].collect()
    copies = {"same": [subset(Baseline.from_episodes(rename(frame, f"same{k}")), "fixed/") for k in range(n + 1)]}
    for eps in args.worse:
        copies[eps] = [subset(Baseline.from_episodes(rename(frame, f"worse{eps}-{k}")), "fixed/") for k in range(n)]
    cells = {("paired", key): [(c, copies["same"][0]) for c in (v[1:] if key == "same" else v)]
             for key, v in copies.items()}
    cells[("paired", "independent")] = [(copies["same"][2 * k + 1], copies["same"][2 * k]) for k in range(n // 2)]

    # stratified / task-means / welch: one run per master seed
    per_seed = []
    for seed in range(n + 1):
        agents = [agent(args.base_epsilon, "same")] + [agent(eps, f"worse{eps}") for eps in args.worse]
        run_plan(suite(agents, seed + 1000, args.rollouts), root / f"seed{seed}")
        frame = load_run(root / f"seed{seed}")[1].collect()
        per_seed.append({key: Baseline.from_episodes(rename(frame, "same" if key == "same" else f"worse{key}"))
                         for key in ["same", *args.worse]})
    for name, prefix in (("stratified", "fixed/"), ("task-means", "drawn/"), ("welch", "drawn/")):
        base = subset(per_seed[0]["same"], prefix)
        for key in ["same", *args.worse]:
            cells[(name, key)] = [(subset(run[key], prefix), base) for run in per_seed[1:]]
        cells[(name, "independent")] = [(subset(per_seed[2 * k + 1]["same"], prefix), subset(per_seed[2 * k]["same"], prefix))
                                        for k in range(n // 2)]

    print(f"suite: 2 bandit scenarios (bernoulli, gaussian; K=5, horizon 100) x 2 instances x {args.rollouts} "
          f"rollouts; baseline agent epsilon-greedy epsilon={args.base_epsilon}; {n} re-runs per cell "
          f"({n // 2} for 'independent'); defaults alpha=0.05, min effect 10%\n")
    print("setting     candidate        test                 family-wise (holm)  family-wise (none)  per-check (none)")
    for (name, key), pairs in cells.items():
        label = {"same": "same agent", "independent": "same, indep. base"}.get(key, f"epsilon={key}")
        forced = "welch" if name == "welch" else "auto"
        holm, _, tests = rates(pairs, CheckSettings(correction="holm", test=forced))
        none, per_check, _ = rates(pairs, CheckSettings(correction="none", test=forced))
        print(f"{name:<11} {label:<16} {tests:<20} {holm:>18.3f} {none:>19.3f} {per_check:>17.3f}")
    print(f"\n{time.perf_counter() - started:.0f} s; runs under {root}")


if __name__ == "__main__":
    main()
