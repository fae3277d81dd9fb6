"""RMFT with the numeric Transformer: the issue's "Must show" measurements, as a plain script.

    .venv/bin/python benchmarks/rmft_numeric.py [--out DIR] [--only bandit,experts,ablation] [--iterations N]

1. Bernoulli bandit (K=5, T=100, gap 0.2) from a uniform policy, against uniform/UCB1/Thompson
   on the same held-out instances (median and p90 regret show the spread across instances);
2. experts mix (N=5, T=50: uniform, gaussian, linear-trend, sine-trend) against Hedge and FTL,
   with the regret-growth slope beta per loss type;
3. ablation: k-lowest-regret selection vs reward-filtered (top-reward) vs one iteration only,
   on a non-stationary bandit and on experts/ftl-adversarial.

Everything runs in one process with one torch thread; CPU minutes are process CPU time. Loop
directories are resumable: rerunning with the same --out continues where it stopped.
"""

from __future__ import annotations

import argparse
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


def bandit(out: str, iterations: int) -> None:
    result = run_loop(f"{out}/bandit", BANDIT, iterations=iterations, rollouts=30, k=9, train_instances=40,
                      eval_instances=100, eval_rollouts=2, backend_config={"epochs": 20, "learning_rate": 0.01},
                      baselines=("uniform", "ucb1", "thompson"))
    show("Bernoulli bandit K=5 T=100 gap 0.2, held-out (100 instances x 2 episodes)",
         result.rows.select(COLUMNS).with_columns(cpu_min=pl.col("cumulative_cpu_s") / 60))
    show("reference agents, same held-out instances",
         result.baselines.select("agent", "mean_regret", "ci_low", "ci_high", "median_regret", "p90_regret", "beta"))


def experts(out: str, iterations: int) -> None:
    result = run_loop(f"{out}/experts", EXPERTS, iterations=iterations, rollouts=20, k=4, train_instances=10,
                      eval_instances=10, eval_rollouts=1, backend_config={"epochs": 20, "learning_rate": 0.01},
                      eval_params={"play": "policy"}, baselines=("uniform", "hedge", "ftl"))
    rows = result.rows
    overall = rows.group_by("iteration").agg(mean_regret=pl.col("mean_regret").mean(),
                                             cpu_min=pl.col("cumulative_cpu_s").max() / 60).sort("iteration")
    show("experts mix N=5 T=50, held-out, per loss type", rows.select(COLUMNS))
    show("experts mix, mean over loss types", overall)
    show("reference agents, same held-out instances",
         result.baselines.select("agent", "scenario_id", "mean_regret", "median_regret", "p90_regret", "beta"))


def ablation(out: str, iterations: int) -> None:
    rows = []
    for name, suite, extra in (("nonstationary", NONSTATIONARY, {}), ("ftl-adversarial", ADVERSARIAL,
                                                                      {"eval_params": {"play": "policy"}})):
        for variant, settings in (("k-lowest", {"selector": "k-lowest", "iterations": iterations}),
                                  ("reward-filtered", {"selector": "top-reward", "iterations": iterations}),
                                  ("one iteration", {"selector": "k-lowest", "iterations": 1})):
            result = run_loop(f"{out}/ablation-{name}-{variant.replace(' ', '-')}", suite, rollouts=20, k=6,
                              train_instances=20, eval_instances=20, eval_rollouts=2,
                              backend_config={"epochs": 20, "learning_rate": 0.01}, **settings, **extra)
            first = result.rows.filter(pl.col("iteration") == 0).row(0, named=True)
            last = result.rows.filter(pl.col("iteration") == result.rows["iteration"].max()).row(0, named=True)
            rows.append({"task": name, "selection": variant, "iterations": last["iteration"],
                         "regret_iter0": first["mean_regret"], "regret_final": last["mean_regret"],
                         "ci_low": last["ci_low"], "ci_high": last["ci_high"], "p90_final": last["p90_regret"],
                         "cpu_min": last["cumulative_cpu_s"] / 60})
    show("ablation: selection rule and number of iterations (held-out regret)", pl.DataFrame(rows))


def main() -> None:
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/rmft-numeric")
    parser.add_argument("--only", default="bandit,experts,ablation")
    parser.add_argument("--iterations", type=int, default=None,
                        help="fine-tuning rounds of every loop (default: bandit 20, experts 20, ablation 5)")
    args = parser.parse_args()
    started = time.process_time()
    for part in args.only.split(","):
        default = {"bandit": 20, "experts": 20, "ablation": 5}[part]
        {"bandit": bandit, "experts": experts, "ablation": ablation}[part](args.out, args.iterations or default)
    print(f"\nprocess CPU time {(time.process_time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
