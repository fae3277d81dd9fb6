"""Can the numeric Transformer represent an explorer at all? Imitate UCB, with and without pull counts.

    .venv/bin/python benchmarks/rmft_distill_ucb.py [--out DIR] [--c 0.5] [--seed 0]

Separates the features from the selection rule: a fresh policy is fitted (the torch backend,
as in RMFT) to every trajectory of UCB1 (exploration constant c in sqrt(c ln t / n); c=0.5
is the index mean + 0.71 sqrt(ln t / n), inside the band that meets the issue's targets, see
rmft_selection_bias.py) on the benchmark's bandit (K=5, T=100, gap 0.2), once with the bandit
statistics of issue 5 (means only) and once with `arm_counts`. Both play the same held-out
instances as UCB1 and Thompson sampling, sampling their actions at temperature 1 and 0.5;
statistics are the leaderboard's (task-clustered).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

SCENARIO = {"id": "bandit/bernoulli-k5", "family": "bandit/bernoulli",
            "params": {"n_arms": 5, "horizon": 100, "gap": 0.2}}


def main() -> None:
    import torch

    from agents import AgentSpec
    from finetune._backend import TrainingSet
    from finetune._select import KLowestRegret, select_decisions, select_episodes
    from finetune.backends import get_backend, make_config
    from harness._plan import parse_suite
    from harness._runner import run_plan
    from harness._store import load_run
    from harness.metrics import leaderboard

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/distill-ucb")
    parser.add_argument("--c", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-instances", type=int, default=40)
    parser.add_argument("--rollouts", type=int, default=8)
    args = parser.parse_args()
    started = time.process_time()
    out = Path(args.out)
    teacher = AgentSpec("ucb1", {"c": args.c}, f"ucb1 c={args.c}")
    train = parse_suite({"seed": args.seed, "agents": [], "rollouts": args.rollouts,
                         "scenarios": [{**SCENARIO, "instances": args.train_instances}]})
    # held-out instances: another master seed, so no training instance repeats
    heldout = parse_suite({"seed": args.seed + 1000, "agents": [], "rollouts": 2,
                           "scenarios": [{**SCENARIO, "instances": 100}]})
    run_plan(train.replace(agents=(teacher,)), out / "teacher", resume=(out / "teacher" / "plan.json").exists())
    decisions, episodes = load_run(out / "teacher")
    kept = select_episodes(episodes, KLowestRegret(k=args.rollouts)).with_columns(weight=pl.lit(1.0)).collect()
    training = TrainingSet(kept, select_decisions(decisions, kept).collect(), out / "dataset")
    backend = get_backend("torch")
    agents = [teacher, AgentSpec("ucb1", {}, "ucb1 (c=2)"), AgentSpec("thompson", {}, "thompson")]
    for arm_counts in (False, True):
        name = "with pull counts" if arm_counts else "means only"
        start = backend.initial_checkpoint("torch:new", {"arm_counts": arm_counts}, None,
                                           out / f"init-{arm_counts}", plan=train)
        config = make_config(backend, {"epochs": 20, "learning_rate": 0.01}, output_dir=str(out / f"fit-{arm_counts}"),
                             seed=args.seed)
        fitted = backend.fit(start.path, training, config)
        print(f"fit ({name}): loss {fitted.metrics['initial_loss']:.3f} -> {fitted.metrics['final_loss']:.3f}", flush=True)
        for temperature in (1.0, 0.5):
            agents.append(AgentSpec(fitted.agent, {"temperature": temperature},
                                    f"imitation, {name}, temperature {temperature:g}"))
    run_plan(heldout.replace(agents=tuple(agents)), out / "heldout", resume=(out / "heldout" / "plan.json").exists())
    board = leaderboard(*load_run(out / "heldout")).select(
        "agent", "tasks", "episodes", "mean_regret", "ci_low", "ci_high", "median_regret", "p90_regret", "beta",
        "beta_ci_low", "beta_ci_high", "beta_pvalue")
    print(f"\n### imitating UCB1 c={args.c} ({args.train_instances} instances x {args.rollouts} trajectories), "
          "held-out 100 instances x 2")
    with pl.Config(tbl_rows=20, tbl_cols=20, float_precision=3, tbl_hide_dataframe_shape=True, fmt_str_lengths=60,
                   tbl_hide_column_data_types=True, tbl_width_chars=250, tbl_formatting="MARKDOWN"):
        print(board)
    print(f"\nprocess CPU time {(time.process_time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
