"""Collect `rmft_numeric.py` loops of several master seeds into per-seed tables and one figure.

    .venv/bin/python benchmarks/rmft_numeric_seeds.py SEED_DIR [SEED_DIR ...] [--png PATH]

Each SEED_DIR is an `--out` of benchmarks/rmft_numeric.py (run with `--seed S`); the seed is
read from the loop's state.json. Reads what is there and runs nothing: a loop that was
stopped early is reported at its last finished evaluation, and the table says which
iteration that is. Statistics are the leaderboard's (harness._stats): task-clustered 95%
intervals, and beta as the mean per-episode growth slope with a clustered interval and the
one-sided p-value of beta < 1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import polars as pl

STATS = ["mean_regret", "ci_low", "ci_high", "median_regret", "p90_regret", "beta", "beta_ci_low", "beta_ci_high",
         "beta_pvalue", "sublinear"]


# runs of reference agents inside a loop directory: the loop's baselines, and the warm start's teacher
# (benchmarks/rmft_numeric.py plays it on the same held-out episodes)
REFERENCES = ("baselines", "teacher")


def last_eval(loop: Path) -> int:
    done = json.loads((loop / "state.json").read_text())["done"]
    finished = [int(step.split("/")[0]) for step in done if step.endswith("/eval")]
    return max(finished)


def board(run: Path) -> pl.DataFrame:
    from harness._store import load_run
    from harness.metrics import leaderboard

    return leaderboard(*load_run(run))


def curve(loop: Path, last: int) -> pl.DataFrame:
    rows = []
    for i in range(last + 1):
        frame = board(loop / f"iter-{i:03d}" / "eval")
        rows.append(frame.select("scenario_id", "mean_regret", "median_regret", "p90_regret").with_columns(iteration=pl.lit(i)))
    return pl.concat(rows)


def cpu_minutes(loop: Path, last: int) -> float:
    done = json.loads((loop / "state.json").read_text())["done"]
    steps = [k for k in done if k == "baselines" or int(k.split("/")[0]) < last or k == f"{last}/eval"]
    return sum(float(done[k].get("cpu_s", 0.0)) for k in steps) / 60


def collect(seed_dirs: list[Path], part: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    tables, curves = [], []
    for directory in seed_dirs:
        loop = directory / part
        if not (loop / "state.json").exists():
            continue
        seed = json.loads((loop / "state.json").read_text())["settings"]["seed"]
        last = last_eval(loop)
        model = board(loop / f"iter-{last:03d}" / "eval").with_columns(agent=pl.lit(f"model (iteration {last})"))
        frames = [model]
        frames += [board(loop / name) for name in REFERENCES if (loop / name).exists()]
        table = pl.concat([f.select("agent", "scenario_id", "tasks", "episodes", *STATS) for f in frames])
        tables.append(table.with_columns(seed=pl.lit(seed), cpu_min=pl.lit(cpu_minutes(loop, last))))
        curves.append(curve(loop, last).with_columns(seed=pl.lit(seed)))
    return pl.concat(tables).sort("scenario_id", "seed", "mean_regret"), pl.concat(curves)


def paired(seed_dirs: list[Path], part: str) -> pl.DataFrame:
    """Model (last iteration) minus each reference agent on the same held-out episodes, clustered by task."""
    from harness._stats import paired_difference
    from harness._store import load_run

    def finals(run: Path) -> pl.DataFrame:
        _, episodes = load_run(run)
        return (episodes.filter(pl.col("status") == "finished")
                .select("agent", "scenario_id", "task_id", "rollout", "final_regret").collect())

    rows = []
    for directory in seed_dirs:
        loop = directory / part
        if not (loop / "baselines").exists():
            continue
        seed = json.loads((loop / "state.json").read_text())["settings"]["seed"]
        model = finals(loop / f"iter-{last_eval(loop):03d}" / "eval").drop("agent")
        references = pl.concat([finals(loop / name) for name in REFERENCES if (loop / name).exists()])
        for (agent, scenario), reference in references.group_by("agent", "scenario_id", maintain_order=True):
            both = model.join(reference.drop("agent"), on=["scenario_id", "task_id", "rollout"], suffix="_ref")
            diff = paired_difference(both["final_regret"], both["final_regret_ref"], both["task_id"])
            rows.append({"seed": seed, "scenario_id": scenario, "reference": agent, "episodes": both.height,
                         "model_minus_reference": diff.estimate, "ci_low": diff.ci_low, "ci_high": diff.ci_high,
                         "p_model_lower": diff.pvalue(0.0, "less")})
    return pl.DataFrame(rows).sort("scenario_id", "reference", "seed") if rows else pl.DataFrame()


def bandit_target(tables: pl.DataFrame) -> pl.DataFrame:
    """Per seed and scenario: the issue's target, model mean <= Thompson's, p90 <= UCB1's, beta < 1 (p < 0.05)."""
    rows = []
    for (seed, scenario), part in tables.group_by("seed", "scenario_id", maintain_order=True):
        by_agent = {row["agent"]: row for row in part.iter_rows(named=True)}
        model = next((row for agent, row in by_agent.items() if agent.startswith("model")), None)
        if model is None or "thompson" not in by_agent or "ucb1" not in by_agent:
            continue
        mean_ok = model["mean_regret"] <= by_agent["thompson"]["mean_regret"]
        p90_ok = model["p90_regret"] <= by_agent["ucb1"]["p90_regret"]
        rows.append({"seed": seed, "scenario_id": scenario, "model_mean": model["mean_regret"],
                     "thompson_mean": by_agent["thompson"]["mean_regret"], "model_p90": model["p90_regret"],
                     "ucb1_p90": by_agent["ucb1"]["p90_regret"], "mean_ok": mean_ok, "p90_ok": p90_ok,
                     "sublinear": bool(model["sublinear"]), "met": mean_ok and p90_ok and bool(model["sublinear"])})
    return pl.DataFrame(rows).sort("scenario_id", "seed") if rows else pl.DataFrame()


def show(title: str, frame: pl.DataFrame) -> None:
    print(f"\n### {title}")
    with pl.Config(tbl_rows=200, tbl_cols=30, float_precision=3, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, tbl_width_chars=250, tbl_formatting="MARKDOWN"):
        print(frame)


def plot(curves: pl.DataFrame, tables: pl.DataFrame, path: Path) -> None:
    """Held-out mean and p90 regret per iteration, one line per seed, and the seeds' baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = curves["scenario_id"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5.2 * len(scenarios), 3.8), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, scenario in zip(axes[0], scenarios):
        for j, seed in enumerate(sorted(curves["seed"].unique().to_list())):
            part = curves.filter((pl.col("scenario_id") == scenario) & (pl.col("seed") == seed)).sort("iteration")
            colour = colours[j % len(colours)]
            ax.plot(part["iteration"], part["mean_regret"], color=colour, marker="o", ms=3, label=f"seed {seed} mean")
            ax.plot(part["iteration"], part["p90_regret"], color=colour, linestyle=":", label=f"seed {seed} p90")
        references = tables.filter((pl.col("scenario_id") == scenario) & ~pl.col("agent").str.starts_with("model"))
        for agent, style in (("thompson", "--"), ("ucb1", "-."), ("hedge", "--"), ("ftl", "-.")):
            rows = references.filter(pl.col("agent") == agent)
            if rows.height:
                ax.axhspan(rows["mean_regret"].min(), rows["mean_regret"].max(), color="grey", alpha=0.15)
                ax.axhline(rows["mean_regret"].mean(), color="grey", linestyle=style, linewidth=1)
                ax.annotate(f"{agent} mean (range over seeds)", (0, rows["mean_regret"].mean()), fontsize=7, va="bottom")
                if agent == "ucb1":
                    ax.axhline(rows["p90_regret"].mean(), color="black", linestyle=":", linewidth=1)
                    ax.annotate("ucb1 p90", (0, rows["p90_regret"].mean()), fontsize=7, va="bottom")
        ax.set_title(scenario, fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylabel("held-out regret")
    axes[0][0].legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("seed_dirs", nargs="+", type=Path)
    parser.add_argument("--part", default="bandit", help="the loop folder inside each seed directory")
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()
    tables, curves = collect(args.seed_dirs, args.part)
    show(f"{args.part}: last finished iteration and reference agents, per master seed", tables)
    spread = (tables.filter(pl.col("agent").str.starts_with("model")).group_by("scenario_id")
              .agg(seeds=pl.len(), mean_of_means=pl.col("mean_regret").mean(), min_mean=pl.col("mean_regret").min(),
                   max_mean=pl.col("mean_regret").max(), min_p90=pl.col("p90_regret").min(),
                   max_p90=pl.col("p90_regret").max()).sort("scenario_id"))
    show(f"{args.part}: spread of the model's figures across seeds", spread)
    show(f"{args.part}: model minus reference agent, paired on the same held-out episodes, clustered by task "
         "(p: one-sided, model lower)", paired(args.seed_dirs, args.part))
    target = bandit_target(tables)
    if target.height:
        show(f"{args.part}: the target per seed (mean <= Thompson's, p90 <= UCB1's, sublinear)", target)
    if args.png:
        plot(curves, tables, args.png)
        print(f"\nfigure: {args.png}")


if __name__ == "__main__":
    main()
