"""RMFT with the numeric Transformer: the issue's measurements, as a plain script.

    .venv/bin/python benchmarks/rmft_numeric.py [--out DIR] [--only bandit,experts,ablation] [--seed S]
        [--iterations N] [--set NAME=VALUE ...]

1. Bernoulli bandit (K=5, T=100, gap 0.2) from a uniform policy, against uniform/UCB1/Thompson
   on the same held-out instances: mean, median and p90 regret, and the regret-growth slope
   beta fitted per episode with a task-clustered interval (the leaderboard's valid test);
2. experts mix (N=5, T=50: uniform, gaussian, linear-trend, sine-trend) against Hedge and FTL,
   per loss type;
3. ablation: k-lowest-regret selection vs reward-filtered (top-reward) vs one iteration only.

`--set` overrides one setting of the bandit loop (`k=15`, `rollouts=30`, `agent.arm_counts=true`,
`eval.temperature=0.8`, `backend.epochs=10`, ...), for the diagnosis runs logged in
benchmarks/results/rmft_numeric_diagnosis.md.

Everything runs in one process with one torch thread; CPU minutes are process CPU time. Loop
directories are resumable: rerunning with the same --out continues where it stopped, and
`--report` prints the tables of loops that were stopped early, at their last finished evaluation.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

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


REPORT_ONLY = False  # --report: read the loops that are there (to their last finished evaluation), run nothing


@dataclass
class LoopResult:
    directory: Path
    rows: pl.DataFrame  # one row per (finished iteration, scenario), as iterations.csv
    last: int  # the last finished evaluation


def run_loop(out: str, suite: dict, **settings) -> LoopResult | None:
    from finetune.iterate import IterateConfig, iterate, write_table
    from harness._plan import parse_suite

    if not REPORT_ONLY:
        config = IterateConfig(out=out, suite=parse_suite(suite), **settings)
        iterate(config, log=lambda message: print(f"  [{out.rsplit('/', 1)[-1]}] {message}", flush=True))
        if config.teacher:
            play_teacher(config)
    directory = Path(out)
    if not (directory / "state.json").exists() or not (directory / "iter-000" / "eval" / "plan.json").exists():
        return None  # --report on a loop that never started
    state = json.loads((directory / "state.json").read_text())
    rows = write_table(directory, state, settings["iterations"])
    return LoopResult(directory, rows, int(rows["iteration"].max()))


def play_teacher(config) -> None:
    """The warm start's teacher itself on the loop's held-out instances and episode seeds -> OUT/teacher.

    What the model is compared with after imitating it (resumed like the loop's own runs).
    """
    from agents import AgentSpec
    from finetune.iterate import prepare

    loop, _ = prepare(config)
    spec = AgentSpec(config.teacher, dict(config.teacher_params), "teacher")
    loop.play(loop.directory / "teacher", loop.eval_plan.replace(agents=(spec,)))


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


SUMMARY = ["agent", "scenario_id", "tasks", "episodes", "mean_regret", "ci_low", "ci_high", "median_regret", "p90_regret",
           "beta", "beta_ci_low", "beta_ci_high", "beta_pvalue", "sublinear"]


def final_summary(result) -> pl.DataFrame:
    """Model (last iteration) and reference agents on the same held-out instances.

    The leaderboard's intervals are task-clustered and its beta is the mean per-episode growth
    slope with a clustered interval and a one-sided test of beta < 1 that is valid under the
    null (harness._stats); the points of one curve are never treated as independent.
    """
    from harness._store import load_run
    from harness.metrics import leaderboard

    runs = [result.directory / f"iter-{result.last:03d}" / "eval"]
    runs += [result.directory / name for name in ("baselines", "teacher") if (result.directory / name).exists()]
    return pl.concat([leaderboard(*load_run(run)).select(SUMMARY) for run in runs]).sort("scenario_id", "mean_regret")


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
    show(f"last iteration and reference agents per loss type, same held-out instances (seed {seed})",
         final_summary(result))


# Ablation tasks: both have fresh randomness in every episode of a task (reward draws; loss noise), so a
# task's highest-reward rollouts need not be its lowest-regret ones and the two selectors can differ.
# (experts/ftl-adversarial is deterministic: every rollout of it sees the same losses, so total reward
# and regret rank its rollouts identically and the selectors cannot differ there.)
ABLATION_GAUSSIAN = {"name": "bench-experts-gaussian", "agents": [], "scenarios": [
    {"id": "experts/gaussian", "family": "experts/full-info",
     "params": {"n_experts": 5, "horizon": 50, "losses": "gaussian"}, "instances": 20}]}


def ablation(out: str, iterations: int, seed: int, assignments: list[str]) -> None:
    """k-lowest vs reward-filtered (top-reward) vs one iteration, with task-clustered paired statistics.

    "one iteration" is iteration 1 of the k-lowest loop: with the same master seed it is exactly the
    loop run with iterations=1. Both selectors' loops share iteration 0 (the same untrained model,
    rollouts and seeds), so the overlap of their kept sets there shows whether they can differ.
    """
    from harness._stats import paired_difference
    from harness._store import load_run
    from harness.metrics import leaderboard

    rows = []
    for name, suite, extra in (("nonstationary", NONSTATIONARY, {}),
                               ("experts-gaussian", ABLATION_GAUSSIAN, {"eval_params": {"play": "policy"}})):
        loops = {}
        for selector in ("k-lowest", "top-reward"):
            loops[selector] = run_loop(f"{out}/ablation-{name}-{selector}", suite, rollouts=20, k=6,
                                       train_instances=20, eval_instances=20, eval_rollouts=2, seed=seed,
                                       selector=selector, iterations=iterations,
                                       backend_config={"epochs": 20, "learning_rate": 0.01}, **extra)
        if None in loops.values() or min(loop.last for loop in loops.values()) < 1:
            print(f"\n(ablation {name}: a loop has not finished an iteration; left out)")
            continue

        def finals(selector: str, iteration: int) -> pl.DataFrame:
            _, episodes = load_run(loops[selector].directory / f"iter-{iteration:03d}" / "eval")
            return episodes.filter(pl.col("status") == "finished").select("task_id", "rollout", "final_regret").collect()

        kept = [pl.read_parquet(loops[s].directory / "iter-000" / "dataset" / "episodes.parquet")
                .select("task_id", "rollout") for s in ("k-lowest", "top-reward")]
        shared = kept[0].join(kept[1], on=["task_id", "rollout"]).height
        tasks_differing = (kept[0].join(kept[1], on=["task_id", "rollout"], how="anti")["task_id"].n_unique())
        reference = finals("k-lowest", loops["k-lowest"].last)
        for variant, selector, iteration in (("k-lowest", "k-lowest", loops["k-lowest"].last),
                                             ("reward-filtered", "top-reward", loops["top-reward"].last),
                                             ("one iteration", "k-lowest", 1), ("untrained", "k-lowest", 0)):
            board = leaderboard(*load_run(loops[selector].directory / f"iter-{iteration:03d}" / "eval")).row(0, named=True)
            paired = reference.join(finals(selector, iteration), on=["task_id", "rollout"], suffix="_other")
            diff = paired_difference(paired["final_regret"], paired["final_regret_other"], paired["task_id"])
            rows.append({"seed": seed, "task": name, "selection": variant, "iteration": iteration,
                         "tasks": board["tasks"], "mean_regret": board["mean_regret"], "ci_low": board["ci_low"],
                         "ci_high": board["ci_high"], "p90": board["p90_regret"],
                         "k_lowest_minus_this": diff.estimate, "diff_low": diff.ci_low, "diff_high": diff.ci_high,
                         "p_k_lowest_better": diff.pvalue(0.0, "less") if variant != "k-lowest" else None,
                         "kept_overlap_iter0": shared / kept[0].height, "tasks_selectors_differ": tasks_differing,
                         "cpu_min": loops[selector].rows.filter(pl.col("iteration") <= iteration)["cumulative_cpu_s"].max() / 60})
    show(f"ablation (seed {seed}): held-out regret; paired differences clustered by task", pl.DataFrame(rows))


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
    parser.add_argument("--report", action="store_true",
                        help="run nothing: report the loops under --out as far as they got")
    args = parser.parse_args()
    global REPORT_ONLY
    REPORT_ONLY = args.report
    started = time.process_time()
    for part in args.only.split(","):
        function, default = PARTS[part]
        function(args.out, default if args.iterations is None else args.iterations, args.seed, args.assignments)
    print(f"\nprocess CPU time {(time.process_time() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
