"""Curriculum self-improvement on graph shortest paths (arXiv 2602.10014 in miniature), as a plain script.

    nice -n 10 .venv/bin/python benchmarks/curriculum_graph.py [--out DIR] [--seeds 0,1,2] [--iterations N]
        [--tasks-per-level M] [--rollouts L] [--results FILE]

The model is the numeric graph policy (agents/graph_policy.py: a looped graph-attention
Transformer that writes a path node by node), trained from scratch: untrained, it is a
uniform random simple walk. Each iteration it samples `rollouts` paths for each training task,
keeps the correct ones (the `threshold` selector at regret 0: reward-filtered fine-tuning) and
is fine-tuned by maximum likelihood on them (the torch backend). Levels d = 1, 3, 5, 7
(shortest paths of 2, 4, 6, 8 edges in 7-11 ... 13-17 nodes). Three schedules spend the same
sample budget per iteration (--tasks-per-level x 4 tasks x --rollouts samples; defaults 8 and 4):

- mixture: every level every iteration;
- easy-to-hard: iteration i of N on level floor(4 i / N) only;
- adaptive: the current level until its acceptance rate reaches 0.8.

Held-out: `EVAL_INSTANCES` instances per level (odd seeds, never trained on; the same for
every schedule and iteration) x `EVAL_ROLLOUTS` sampled paths each. Intervals are
task-clustered (harness._stats.clustered_mean); schedule differences are paired on the shared
held-out episodes (harness._stats.paired_difference). CPU time is the process time of the
loop's steps (eval, rollout, select, fit) as recorded in each loop's table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

LEVELS = (1, 3, 5, 7)
TASKS_PER_LEVEL = 8
ROLLOUTS = 4
EVAL_INSTANCES = 50
EVAL_ROLLOUTS = 2
SCHEDULES = ("mixture", "easy-to-hard", "adaptive")
BACKEND = {"epochs": 10, "learning_rate": 0.003}


def suite(tasks: int):
    from harness._plan import parse_suite

    return parse_suite({"name": "graph-levels", "agents": [], "scenarios": [
        {"id": f"L{d}", "family": "graph/shortest-path", "params": {"level": d}, "instances": tasks}
        for d in LEVELS]})


def run(out: Path, schedule: str, seed: int, iterations: int, tasks: int, rollouts: int):
    from finetune.iterate import IterateConfig, iterate

    config = IterateConfig(out=str(out / f"{schedule}-seed{seed}"), suite=suite(tasks), selector="threshold",
                           max_regret=0.0, schedule=schedule, advance_at=0.8, iterations=iterations,
                           rollouts=rollouts, train_instances=tasks, eval_instances=EVAL_INSTANCES,
                           eval_rollouts=EVAL_ROLLOUTS, backend_config=BACKEND, seed=seed,
                           baselines=("random-walk", "bfs") if schedule == SCHEDULES[0] else ())
    result = iterate(config, log=lambda m: print(f"  [{schedule} seed {seed}] {m}", flush=True)
                     if "warning" in m or "eval" in m else None)
    # CPU of the loop's steps as recorded when they ran (a resumed call re-reads finished loops)
    return result, float(result.rows["cumulative_cpu_s"].max())


def heldout_rewards(directory: Path, iteration: int) -> pl.DataFrame:
    from harness._store import load_run

    _, episodes = load_run(directory / f"iter-{iteration:03d}" / "eval")
    return episodes.select("scenario_id", "task_id", "rollout", "total_reward").collect()


def paired(out: Path, seed: int, iteration: int, a: str, b: str) -> pl.DataFrame:
    """Held-out reward of schedule a minus b per level, paired on shared episodes, clustered by task."""
    from harness._stats import paired_difference

    left = heldout_rewards(out / f"{a}-seed{seed}", iteration)
    right = heldout_rewards(out / f"{b}-seed{seed}", iteration)
    joined = left.join(right, on=["scenario_id", "task_id", "rollout"], suffix="_b").sort("scenario_id", "task_id")
    rows = []
    for (level,), part in joined.group_by("scenario_id", maintain_order=True):
        est = paired_difference(part["total_reward"].to_numpy(), part["total_reward_b"].to_numpy(),
                                part["task_id"].to_numpy())
        rows.append({"seed": seed, "level": level, "a": a, "b": b, "a_minus_b": est.estimate, "ci_low": est.ci_low,
                     "ci_high": est.ci_high, "p_value": est.pvalue(), "tasks": est.n_tasks,
                     "episodes": est.n_episodes})
    return pl.DataFrame(rows)


def show(title: str, frame: pl.DataFrame, lines: list[str]) -> None:
    with pl.Config(tbl_rows=400, tbl_cols=30, float_precision=3, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, tbl_width_chars=240, tbl_formatting="MARKDOWN"):
        text = f"\n### {title}\n{frame}"
    print(text, flush=True)
    lines.append(text)


def plot(out: Path, tables: dict, seeds) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(LEVELS), figsize=(4 * len(LEVELS), 6.5), squeeze=False)
    styles = {"mixture": "-", "easy-to-hard": "--", "adaptive": ":"}
    for j, d in enumerate(LEVELS):
        for schedule in SCHEDULES:
            for seed in seeds:
                rows = tables[schedule, seed].filter(pl.col("scenario_id") == f"L{d}").sort("iteration")
                x = rows["iteration"].to_numpy()
                label = schedule if seed == seeds[0] else None
                color = {"mixture": "C0", "easy-to-hard": "C1", "adaptive": "C2"}[schedule]
                axes[0][j].plot(x, rows["mean_reward"].to_numpy(), styles[schedule], color=color, label=label,
                                alpha=0.8)
                if seed == seeds[0]:
                    axes[0][j].fill_between(x, rows["reward_ci_low"].to_numpy(), rows["reward_ci_high"].to_numpy(),
                                            color=color, alpha=0.12)
                trained = rows.filter(pl.col("level_acceptance").is_not_null())
                axes[1][j].plot(trained["iteration"].to_numpy() - 1, trained["level_acceptance"].to_numpy(),
                                styles[schedule], marker="o", markersize=3, color=color, label=label, alpha=0.8)
        axes[0][j].set_title(f"level {d} (path of {d + 1} edges)", fontsize=9)
        axes[0][j].set_ylim(-0.02, 1.02)
        axes[1][j].set_ylim(-0.02, 1.02)
        axes[1][j].set_xlabel("iteration")
    axes[0][0].set_ylabel("held-out accuracy (95% CI, first seed)")
    axes[1][0].set_ylabel("acceptance rate of model i's samples")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path = out / "curriculum_graph.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/bench-curriculum-graph")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--tasks-per-level", type=int, default=TASKS_PER_LEVEL, help="training tasks a mixture gives "
                        "each level per iteration (the budget is this times the number of levels)")
    parser.add_argument("--rollouts", type=int, default=ROLLOUTS, help="samples per training task")
    parser.add_argument("--results", default=None, help="write the tables here too (e.g. benchmarks/results/...)")
    args = parser.parse_args()
    tasks, rollouts = args.tasks_per_level, args.rollouts
    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    tables, cpu = {}, {}
    lines = [f"settings: levels {LEVELS}, {tasks} tasks x {len(LEVELS)} levels x {rollouts} samples per "
             f"iteration (every schedule), {args.iterations} iterations, held-out {EVAL_INSTANCES} instances x "
             f"{EVAL_ROLLOUTS} samples per level, backend {BACKEND}, seeds {seeds}"]
    baselines = None
    for seed in seeds:
        for schedule in SCHEDULES:
            result, cpu[schedule, seed] = run(out, schedule, seed, args.iterations, tasks, rollouts)
            tables[schedule, seed] = result.rows
            if result.baselines is not None and baselines is None:
                baselines = result.baselines
    columns = ["iteration", "scenario_id", "mean_reward", "reward_ci_low", "reward_ci_high", "samples", "accepted",
               "level_acceptance", "accepted_total", "train_loss", "cumulative_cpu_s"]
    for seed in seeds:
        for schedule in SCHEDULES:
            show(f"{schedule}, seed {seed} (CPU {cpu[schedule, seed]:.0f} s): held-out accuracy per level, "
                 "acceptance of the samples that trained this model",
                 tables[schedule, seed].select(columns).sort("scenario_id", "iteration"), lines)
    if baselines is not None:
        show("reference agents on the same held-out instances (seed 0)",
             baselines.select("agent", "scenario_id", "mean_regret", "ci_low", "ci_high"), lines)
    final = args.iterations
    reach = []
    for seed in seeds:
        for schedule in SCHEDULES:
            rows = tables[schedule, seed]
            for d in LEVELS:
                hit = rows.filter((pl.col("scenario_id") == f"L{d}") & (pl.col("mean_reward") >= 0.9)).sort("iteration")
                first = hit["iteration"][0] if hit.height else None
                budget = hit["accepted_total"][0] if hit.height else None
                reach.append({"schedule": schedule, "seed": seed, "level": f"L{d}", "first_iteration_at_0.9": first,
                              "accepted_samples_by_then": budget})
    show("first iteration whose held-out accuracy is >= 0.9 (samples drawn by then: iteration x "
         f"{tasks * len(LEVELS) * rollouts})",
         pl.DataFrame(reach).pivot("level", index=["schedule", "seed"], values="first_iteration_at_0.9"), lines)
    window = pl.concat([
        tables[schedule, seed].select(pl.lit(schedule).alias("schedule"), pl.lit(seed).alias("seed"), "iteration",
                                      "scenario_id", "mean_reward") for seed in seeds for schedule in SCHEDULES])
    spread = window.group_by("schedule", "seed", "scenario_id", maintain_order=True).agg(
        last_3=pl.col("mean_reward").filter(pl.col("iteration") > final - 3).mean(),
        all_iterations=pl.col("mean_reward").mean())
    for column, what in (("last_3", "mean held-out accuracy over the last 3 iterations (end of the budget)"),
                         ("all_iterations", f"mean held-out accuracy over iterations 0..{final} (anytime)")):
        show(what, spread.pivot("scenario_id", index=["schedule", "seed"], values=column).sort("schedule", "seed"),
             lines)
    summary = pl.concat([
        tables[schedule, seed].filter(pl.col("iteration").is_in([final // 2, final]))
        .select(pl.lit(schedule).alias("schedule"), pl.lit(seed).alias("seed"), "iteration", "scenario_id",
                "mean_reward", "reward_ci_low", "reward_ci_high", "accepted_total")
        for seed in seeds for schedule in SCHEDULES]).sort("iteration", "scenario_id", "schedule", "seed")
    show(f"held-out accuracy at iterations {final // 2} and {final} (equal sample budget per iteration)", summary, lines)
    for iteration in sorted({final // 2, final}):
        diffs = pl.concat([paired(out, seed, iteration, b, "mixture") for seed in seeds for b in SCHEDULES[1:]])
        show(f"paired held-out accuracy differences vs mixture at iteration {iteration} "
             "(task-clustered 95% CI)", diffs, lines)
    total = sum(cpu.values())
    lines.append(f"\ntotal loop CPU {total / 60:.1f} min ({', '.join(f'{k[0]} s{k[1]} {v:.0f}s' for k, v in cpu.items())})")
    print(lines[-1])
    path = plot(out, tables, seeds)
    print(f"wrote {path}")
    if args.results:
        Path(args.results).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
