"""RMFT with the numeric Transformer: the issue's measurements, as a plain script.

    .venv/bin/python benchmarks/rmft_numeric.py [--out DIR] [--only bandit,experts,ablation] [--seed S]
        [--iterations N] [--set NAME=VALUE ...]

1. Bernoulli bandit (K=5, T=100, gap 0.2) from a uniform policy, against uniform/UCB1/Thompson
   on the same held-out instances: mean, median and p90 regret, and the regret-growth slope
   beta fitted per episode with a task-clustered interval (a test valid under the null);
2. experts mix (N=5, T=50: uniform, gaussian, linear-trend, sine-trend) against Hedge and FTL,
   per loss type;
3. ablation: k-lowest-regret selection vs reward-filtered (top-reward) vs one iteration only.

`--set` overrides one setting of the bandit loop (`k=15`, `rollouts=30`, `agent.arm_counts=true`,
`eval.temperature=0.8`, `backend.epochs=10`, ...), for the diagnosis runs logged in
benchmarks/results/rmft_numeric_diagnosis.md.

Everything runs in one process with one torch thread; CPU minutes are process CPU time. Loop
directories are resumable: rerunning with the same --out continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time

import polars as pl

BANDIT = {"name": "bench-bandit", "agents": [], "scenarios": [
    {"id": "bandit/bernoulli-k5", "family": "bandit/bernoulli", "params": {"n_arms": 5, "horizon": 100, "gap": 0.2},
     "instances": 40}]}
EXPERTS = {"name": "bench-experts", "agents": [], "scenarios": [
    {"id": f"experts/{kind}", "family": "experts/full-info", "params": {"n_experts": 5, "horizon": 50, "losses": kind},
     "instances": 10} for kind in ("uniform", "gaussian", "linear-trend", "sine-trend")]}
NONSTATIONARY = {"name": "bench-nonstationary", "agents": [], "scenarios": [
    {"id": "bandit/nonstationary-abrupt", "family": "bandit/nonstationary",
     "params": {"n_arms": 3, "horizon": 100, "mode": "abrupt", "variation_budget": 1.2}, "instances": 20}]}
ADVERSARIAL = {"name": "bench-ftl-adversarial", "agents": [], "scenarios": [
    {"id": "experts/ftl-adversarial", "family": "experts/full-info",
     "params": {"n_experts": 2, "horizon": 50, "losses": "ftl-adversarial"}, "instances": 10}]}

# the bandit loop's settings; `--set` overrides them
BANDIT_SETTINGS = {"rollouts": 30, "k": 9, "train_instances": 40, "eval_instances": 100, "eval_rollouts": 2,
                   "backend_config": {"epochs": 20, "learning_rate": 0.01}, "agent_params": {}, "eval_params": {},
                   "selector": "k-lowest"}


def run_loop(out: str, suite: dict, **settings):
    from finetune.iterate import IterateConfig, iterate
    from harness._plan import parse_suite

    config = IterateConfig(out=out, suite=parse_suite(suite), **settings)
    return iterate(config, log=lambda message: print(f"  [{out.rsplit('/', 1)[-1]}] {message}", flush=True))


def show(title: str, frame: pl.DataFrame) -> None:
    print(f"\n### {title}")
    with pl.Config(tbl_rows=100, tbl_cols=30, float_precision=3, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, tbl_width_chars=220, tbl_formatting="MARKDOWN"):
        print(frame)


COLUMNS = ["iteration", "scenario_id", "mean_regret", "ci_low", "ci_high", "median_regret", "p90_regret", "beta",
           "rollout_regret", "train_loss", "cumulative_cpu_s"]


def apply_settings(settings: dict, assignments: list[str]) -> dict:
    """`NAME=VALUE` overrides: top-level IterateConfig fields, or agent./eval./backend. sub-settings."""
    settings = json.loads(json.dumps(settings))
    sections = {"agent": "agent_params", "eval": "eval_params", "backend": "backend_config"}
    for assignment in assignments:
        name, _, text = assignment.partition("=")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        section, _, key = name.partition(".")
        if key:
            settings[sections[section]][key] = value
        else:
            settings[name] = value
    return settings


def episode_growth(run_dir) -> pl.DataFrame:
    """Per-episode slope of log R_t on log t (rounds after a 10% burn-in with R_t > 0)."""
    from harness._store import load_run

    decisions, _ = load_run(run_dir)
    keys = ["agent", "scenario_id", "task_id", "rollout"]
    points = (decisions.select(*keys, "t", "cumulative_regret")
              .with_columns(last=pl.col("t").max().over(keys) + 1)
              .filter((pl.col("cumulative_regret") > 1e-9) & (pl.col("t") + 1 > (pl.col("last") * 0.1).floor()))
              .with_columns(x=(pl.col("t") + 1).log(), y=pl.col("cumulative_regret").log())
              .with_columns(xc=pl.col("x") - pl.col("x").mean().over(keys), yc=pl.col("y") - pl.col("y").mean().over(keys)))
    fits = points.group_by(keys).agg(n=pl.len(), sxx=(pl.col("xc") ** 2).sum(),
                                     sxy=(pl.col("xc") * pl.col("yc")).sum())
    return (fits.filter((pl.col("n") >= 3) & (pl.col("sxx") > 0))
            .select(*keys, beta=pl.col("sxy") / pl.col("sxx")).sort(keys).collect())


def clustered_beta(growth: pl.DataFrame) -> pl.DataFrame:
    """Mean per-episode beta with a task-clustered 95% interval and the one-sided p-value of beta < 1.

    Episodes of one task share its instance, so each task's mean beta is one observation and
    the interval is a Student t over tasks (the cluster-robust estimator for equal cluster
    sizes). Valid under the null of linear growth because each episode's fit is one draw; the
    points of one curve are never treated as independent.
    """
    from scipy.special import stdtr, stdtrit

    per_task = growth.group_by("agent", "scenario_id", "task_id").agg(beta=pl.col("beta").mean())
    summary = per_task.group_by("agent", "scenario_id").agg(
        tasks=pl.len(), beta_mean=pl.col("beta").mean(), se=pl.col("beta").std(ddof=1) / pl.len().sqrt())
    summary = summary.join(growth.group_by("agent", "scenario_id").agg(episodes_fitted=pl.len()),
                           on=["agent", "scenario_id"])
    df = (summary["tasks"] - 1).to_numpy().astype(float)
    half = stdtrit(df, 0.975) * summary["se"].to_numpy()
    pvalue = stdtr(df, (summary["beta_mean"].to_numpy() - 1.0) / summary["se"].to_numpy())
    return summary.with_columns(beta_low=pl.col("beta_mean") - pl.Series(half),
                                beta_high=pl.col("beta_mean") + pl.Series(half),
                                beta_p=pl.Series(pvalue)).drop("se").sort("agent", "scenario_id")


def final_summary(result) -> pl.DataFrame:
    """Model (last iteration) and baselines on the held-out instances: regret spread and clustered beta."""
    from harness._store import load_run
    from harness.metrics import leaderboard

    last = int(result.rows["iteration"].max())
    runs = [result.directory / f"iter-{last:03d}" / "eval"]
    if (result.directory / "baselines").exists():
        runs.append(result.directory / "baselines")
    boards, betas = [], []
    for run in runs:
        boards.append(leaderboard(*load_run(run)).select("agent", "scenario_id", "episodes", "mean_regret", "ci_low",
                                                         "ci_high", "median_regret", "p90_regret"))
        betas.append(clustered_beta(episode_growth(run)))
    return pl.concat(boards).join(pl.concat(betas), on=["agent", "scenario_id"], how="left").sort(
        "scenario_id", "mean_regret")


def bandit(out: str, iterations: int, seed: int, assignments: list[str]) -> None:
    settings = apply_settings(BANDIT_SETTINGS, assignments)
    result = run_loop(f"{out}/bandit", BANDIT, iterations=iterations, seed=seed,
                      baselines=("uniform", "ucb1", "thompson"), **settings)
    show("Bernoulli bandit K=5 T=100 gap 0.2, held-out (100 instances x 2 episodes)",
         result.rows.select(COLUMNS).with_columns(cpu_min=pl.col("cumulative_cpu_s") / 60))
    show(f"last iteration and reference agents, same held-out instances (seed {seed})", final_summary(result))


def experts(out: str, iterations: int, seed: int, assignments: list[str]) -> None:
    result = run_loop(f"{out}/experts", EXPERTS, iterations=iterations, rollouts=20, k=4, train_instances=10,
                      eval_instances=10, eval_rollouts=1, backend_config={"epochs": 20, "learning_rate": 0.01},
                      eval_params={"play": "policy"}, baselines=("uniform", "hedge", "ftl"), seed=seed)
    rows = result.rows
    overall = rows.group_by("iteration").agg(mean_regret=pl.col("mean_regret").mean(),
                                             cpu_min=pl.col("cumulative_cpu_s").max() / 60).sort("iteration")
    show("experts mix N=5 T=50, held-out, per loss type", rows.select(COLUMNS))
    show("experts mix, mean over loss types", overall)
    show("reference agents, same held-out instances",
         result.baselines.select("agent", "scenario_id", "mean_regret", "median_regret", "p90_regret", "beta"))


def ablation(out: str, iterations: int, seed: int, assignments: list[str]) -> None:
    rows = []
    for name, suite, extra in (("nonstationary", NONSTATIONARY, {}), ("ftl-adversarial", ADVERSARIAL,
                                                                      {"eval_params": {"play": "policy"}})):
        for variant, settings in (("k-lowest", {"selector": "k-lowest", "iterations": iterations}),
                                  ("reward-filtered", {"selector": "top-reward", "iterations": iterations}),
                                  ("one iteration", {"selector": "k-lowest", "iterations": 1})):
            result = run_loop(f"{out}/ablation-{name}-{variant.replace(' ', '-')}", suite, rollouts=20, k=6,
                              train_instances=20, eval_instances=20, eval_rollouts=2, seed=seed,
                              backend_config={"epochs": 20, "learning_rate": 0.01}, **settings, **extra)
            first = result.rows.filter(pl.col("iteration") == 0).row(0, named=True)
            last = result.rows.filter(pl.col("iteration") == result.rows["iteration"].max()).row(0, named=True)
            rows.append({"task": name, "selection": variant, "iterations": last["iteration"],
                         "regret_iter0": first["mean_regret"], "regret_final": last["mean_regret"],
                         "ci_low": last["ci_low"], "ci_high": last["ci_high"], "p90_final": last["p90_regret"],
                         "cpu_min": last["cumulative_cpu_s"] / 60})
    show("ablation: selection rule and number of iterations (held-out regret)", pl.DataFrame(rows))


PARTS = {"bandit": (bandit, 20), "experts": (experts, 20), "ablation": (ablation, 5)}


def main() -> None:
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/rmft-numeric")
    parser.add_argument("--only", default="bandit,experts,ablation")
    parser.add_argument("--seed", type=int, default=0, help="master seed of every loop")
    parser.add_argument("--iterations", type=int, default=None,
                        help="fine-tuning rounds of every loop (default: bandit 20, experts 20, ablation 5)")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="NAME=VALUE",
                        help="override a bandit-loop setting (repeatable)")
    args = parser.parse_args()
    started = time.process_time()
    for part in args.only.split(","):
        function, default = PARTS[part]
        function(args.out, args.iterations or default, args.seed, args.assignments)
    print(f"\nprocess CPU time {(time.process_time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
