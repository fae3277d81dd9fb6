"""Iterative RMFT on a real open-weight LLM on a 2-core CPU: SmolLM2-135M-Instruct on a Bernoulli bandit.

    .venv/bin/python benchmarks/rmft_smollm2.py --model DIR [--out RUNDIR] [--quick]
    # where an NVIDIA GPU is lent (pip install 'regret-harness[unsloth]' vllm):
    python benchmarks/rmft_smollm2.py --model DIR --backend unsloth --engine vllm --out RUNDIR

DIR comes from `regret init-model --from smollm2 DIR`. The loop (`finetune._loop.iterate`,
hf backend, one llama.cpp server for every checkpoint) alternates held-out evaluation,
rollouts, k-lowest-regret selection and a LoRA fit; uniform, UCB1 and Thompson sampling play
the same held-out instances. Results (held-out mean regret per iteration with task-clustered
95% intervals from `harness._stats`, paired difference against iteration 0, share of
first-listed picks, invalid answers, wall and CPU seconds per step) go to
benchmarks/results/rmft_smollm2.txt, the figure to benchmarks/results/rmft_smollm2.png.

Why this problem: K=3 arms, T=20 rounds, gap 0.8 (`--gap`; means 0.9 / 0.1 / 0.1). With so
large a gap one or two pulls tell the arms apart, so "choose the option whose summary average
is highest, try an untried one" is a short readable rule (history = "summary": per option, times
chosen and mean reward), whereas a small gap would need more rounds than a CPU can roll out.
Options are shuffled per ROUND (`--shuffle round`, seeded, recorded per decision), so a listed
position carries nothing even within an episode and only reading the summary lowers regret;
answers are a JSON-schema enum of the option names (valid at iteration 0 with no format
training). Every decision samples with its own seed.

Selection: k-lowest-regret trajectories per task (RMFT), per decision; `--max-decision-regret 0`
keeps of those only the decisions that chose an optimal option, `--relabel` trains each also
under every cyclic relabelling of its options (the chosen option at every listed position).
The results file also says what plain k-lowest would have trained on (the share of its picks
listed first). `choice_probe` (run by hand, see the README) reads a checkpoint's answer
distribution on prompts the model saw, before an evaluation is spent.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

AGENT_PARAMS = {
    "temperature": 1.0, "max_tokens": 24, "cache": False, "answer_format": "json", "shuffle_options": True,
    "reasoning": False, "history": "summary", "max_invalid_retries": 1, "seed": 0,
    "system_prompt": "You choose one option per round to earn as much reward as possible.",
}
FULL = {"iterations": 2, "rollouts": 6, "k": 2, "train_instances": 8, "eval_instances": 8, "eval_rollouts": 1,
        "max_decision_regret": 0.0, "relabel": True,
        "backend_config": {"top_layers": 6, "lora_r": 16, "lora_alpha": 32, "learning_rate": 3e-3, "epochs": 4.0,
                           "batch_size": 4, "max_length": 512}}
QUICK = {"iterations": 1, "rollouts": 3, "k": 1, "train_instances": 2, "eval_instances": 3, "eval_rollouts": 1,
         "backend_config": {"top_layers": 2, "lora_r": 4, "lora_alpha": 8, "learning_rate": 1e-3, "max_steps": 4,
                            "batch_size": 2, "max_length": 512}}
BASELINES = ("uniform", "ucb1", "thompson")
# one line of the summary history: an option's name and its average reward (None: not tried yet)
SUMMARY_LINE = re.compile(r"^- (\w+): chosen \d+ times?, (?:average reward ([0-9.]+)|not tried yet)$", re.M)


def plan(horizon: int, gap: float):
    from harness._plan import Plan, ScenarioEntry

    entry = ScenarioEntry(f"bandit/bernoulli-k3-t{horizon}", "bandit/bernoulli",
                          {"n_arms": 3, "horizon": horizon, "gap": gap}, "buttons", (0,))
    return Plan((), (entry,), 0, 1, "smollm2-bandit")


def summarise(out: Path, settings: dict, started_wall: float) -> tuple[list[str], list[dict], dict]:
    import polars as pl

    from harness._stats import clustered_mean, paired_difference
    from harness._store import load_run

    def episodes(run: Path) -> pl.DataFrame:
        _, frame = load_run(run)
        return frame.filter(pl.col("status") == "finished").select("agent", "task_id", "rollout", "final_regret").collect()

    state = json.loads((out / "state.json").read_text())
    rows = pl.read_parquet(out / "iterations.parquet")
    lines = [f"# SmolLM2-135M-Instruct, Iterative RMFT (hf LoRA backend, llama.cpp serving), settings: "
             f"{json.dumps(settings, sort_keys=True)}",
             "# held-out mean final regret, task-clustered 95% CI (harness._stats, CR1 over held-out instances); "
             "diff: paired difference vs iteration 0 on the same instances and episode seeds (clustered by task)",
             "iteration  mean_regret  ci_low  ci_high  tasks  episodes  diff_vs_0  p_value  first_listed  invalid  "
             "dataset  train_loss  wall_s  cpu_s"]
    base = episodes(out / "iter-000" / "eval").sort("task_id", "rollout")
    table, references = [], {}
    for row in rows.sort("iteration").iter_rows(named=True):
        i = row["iteration"]
        frame = episodes(out / f"iter-{i:03d}" / "eval").sort("task_id", "rollout")
        estimate = clustered_mean(frame["final_regret"], frame["task_id"])
        paired = base.join(frame, on=["task_id", "rollout"], suffix="_new")
        diff = paired_difference(paired["final_regret_new"], paired["final_regret"], paired["task_id"])
        table.append({"iteration": i, "mean": estimate.estimate, "low": estimate.ci_low, "high": estimate.ci_high,
                      "first_listed": row["first_listed_share"]})
        lines.append(f"{i:>9}  {estimate.estimate:>11.2f}  {estimate.ci_low:>6.2f}  {estimate.ci_high:>7.2f}  "
                     f"{estimate.n_tasks:>5}  {estimate.n_episodes:>8}  {diff.estimate:>+9.2f}  "
                     f"{(diff.pvalue() if i else float('nan')):>7.3f}  {_f(row['first_listed_share']):>12}  "
                     f"{_f(row['invalid_rate']):>7}  {_f(row['dataset_size'], 0):>7}  {_f(row['train_loss']):>10}  "
                     f"{row['wall_s']:>6.0f}  {row['cpu_s']:>5.0f}")
    if (out / "baselines").exists():
        frame = episodes(out / "baselines")
        lines.append("# reference agents on the same held-out instances and episode seeds")
        for agent in BASELINES:
            part = frame.filter(pl.col("agent") == agent)
            if part.height:
                e = clustered_mean(part["final_regret"], part["task_id"])
                references[agent] = e.estimate
                lines.append(f"{agent:>9}  {e.estimate:>11.2f}  {e.ci_low:>6.2f}  {e.ci_high:>7.2f}  "
                             f"{e.n_tasks:>5}  {e.n_episodes:>8}")
    lines.append("# training data per fit: the rollouts' picks, the k-lowest trajectories' picks and the "
                 "zero-regret picks among them (decisions, share listed first)")
    for folder in sorted(out.glob("iter-*/dataset/episodes.parquet")):
        iteration = folder.parent.parent
        decisions, _ = load_run(iteration / "rollouts")
        position = pl.col("info").str.json_path_match("$.position").cast(pl.Int64)
        picks = decisions.select("task_id", "rollout", "regret", position=position).collect()
        kept = picks.join(pl.read_parquet(folder).select("task_id", "rollout"), on=["task_id", "rollout"])
        parts = [("rollouts", picks), ("k-lowest", kept), ("zero-regret", kept.filter(pl.col("regret") <= 1e-12))]
        lines.append(f"#   {iteration.name}: " + ", ".join(
            f"{name} {part.height} ({(part['position'] == 0).mean():.2f} first)" for name, part in parts))
    lines.append("# steps (wall_s / cpu_s, cpu = this process + the model server):")
    for step, record in state["done"].items():
        extra = {k: v for k, v in record.items() if k not in ("wall_s", "cpu_s")}
        lines.append(f"#   {step}: {record.get('wall_s', 0):.0f} / {record.get('cpu_s', 0):.0f}"
                     + (f"  {json.dumps(extra, sort_keys=True, default=str)}" if extra else ""))
    steps_wall = sum(record.get("wall_s", 0) for record in state["done"].values())
    steps_cpu = sum(record.get("cpu_s", 0) for record in state["done"].values())
    lines.append(f"# whole experiment: {steps_wall:.0f} s wall, {steps_cpu:.0f} s CPU over its steps (this call "
                 f"{time.perf_counter() - started_wall:.0f} s); load average now {os.getloadavg()[0]:.1f} on 2 "
                 "cores (shared with other agents' work)")
    return lines, table, references


def _f(value, digits: int = 2) -> str:
    return "nan" if value is None or value != value else f"{value:.{digits}f}"


def plot(table: list[dict], references: dict, figure: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    x = [r["iteration"] for r in table]
    mean = [r["mean"] for r in table]
    left.errorbar(x, mean, yerr=[[r["mean"] - r["low"] for r in table], [r["high"] - r["mean"] for r in table]],
                  marker="o", capsize=3, label="SmolLM2-135M (RMFT)")
    for agent, value in references.items():
        left.axhline(value, linestyle="--", linewidth=1, color="grey")
        left.annotate(agent, (max(x), value), fontsize=7, ha="right", va="bottom")
    left.set(xlabel="iteration", ylabel="held-out mean regret (95% CI)", xticks=x)
    right.plot(x, [r["first_listed"] for r in table], marker="o")
    right.axhline(1 / 3, linestyle=":", color="grey")
    right.annotate("1/K", (max(x), 1 / 3), fontsize=7, ha="right", va="bottom")
    right.set(xlabel="iteration", ylabel="share of first-listed picks", xticks=x)
    fig.tight_layout()
    fig.savefig(figure, dpi=100)
    plt.close(fig)


def choice_probe(checkpoints: list[Path], run: Path, limit: int = 40) -> list[str]:
    """Before an evaluation is spent: the answer distribution of each checkpoint on prompts the
    model saw (rounds 2.. of `run`), read from the logits of the three possible JSON answers.
    Reports the probability given to the first-listed option and to the option whose summary
    average is highest (untried options count as not highest)."""

    import polars as pl
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness import load_run

    torch.set_num_threads(1)
    decisions, _ = load_run(run)
    rows = decisions.filter(pl.col("t") >= 2).sort("task_id", "rollout", "t").collect()
    rows = rows.gather_every(max(1, rows.height // limit))[:limit]
    lines = ["# choice probe: mean probability of the first-listed option / of the highest-average option, "
             f"{rows.height} prompts of {run}"]
    for checkpoint in checkpoints:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
        first = best = 0.0
        for row in rows.iter_rows(named=True):
            import json as _json

            messages = _json.loads(row["messages"])
            listed = SUMMARY_LINE.findall(messages[-1]["content"])
            names = [name for name, _ in listed]
            means = [float(m) if m else -1.0 for _, m in listed]
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            scores = []
            with torch.no_grad():
                for name in names:
                    ids = tokenizer(prompt + f'{{"answer": "{name}"}}', return_tensors="pt").input_ids
                    start = len(tokenizer(prompt).input_ids)
                    logits = model(ids).logits[0, start - 1:-1].log_softmax(-1)
                    scores.append(logits.gather(1, ids[0, start:, None]).sum().item())
            probs = torch.tensor(scores).softmax(0)
            first += probs[0].item()
            best += probs[max(range(len(means)), key=means.__getitem__)].item()
        lines.append(f"#   {checkpoint}: first-listed {first / rows.height:.3f}, highest-average {best / rows.height:.3f}")
    return lines


def extra_evaluation(out: Path, instances: int, horizon: int, gap: float) -> list[str]:
    """Every checkpoint of the loop in `out`, and the reference agents, on `instances` further held-out
    instances (seeds 10,000+, none a training or held-out seed of the loop), one episode each with the
    same episode seeds for every agent: a larger held-out set than the loop's own evaluation."""
    import polars as pl

    from agents import AgentSpec
    from finetune._backend import Checkpoint, get_backend
    from harness import build_factories, load_run, run_plan
    from harness._plan import Plan, ScenarioEntry
    from harness._stats import clustered_mean, paired_difference

    state = json.loads((out / "state.json").read_text())
    used = {seed for seeds in state["seeds"].values() for values in seeds.values() for seed in values}
    entry = plan(horizon, gap).scenarios[0]
    seeds = tuple(s for s in range(10_000, 10_000 + 2 * instances) if s not in used)[:instances]
    entry = ScenarioEntry(entry.id, entry.family, entry.params, entry.framing, seeds)
    checkpoints = {int(i): Checkpoint.from_dict(c) for i, c in state["checkpoints"].items()}
    directory = out / f"extra-eval-{instances}"
    with get_backend("hf").serving(out / "serve-extra", checkpoints[0]) as serving:
        specs = {i: serving.spec(c) for i, c in sorted(checkpoints.items())}
        agents = [AgentSpec(spec.agent, dict(spec.params), f"model-{i}") for i, spec in specs.items()]
        agents += [AgentSpec(name, {}, name) for name in BASELINES]
        started = time.perf_counter()
        run = Plan(tuple(agents), (entry,), 1, 1, "smollm2-extra-eval")
        resume = (directory / "plan.json").exists()  # resumed through today's server (a new api_base)
        # one episode at a time: the server switches models when a request names another checkpoint
        run_plan(run, directory, resume=resume, concurrency=1, factories=build_factories(run) if resume else None)
        wall = time.perf_counter() - started
    decisions, episodes = load_run(directory)
    frame = episodes.filter(pl.col("status") == "finished").select("agent", "task_id", "final_regret").collect()
    position = pl.col("info").str.json_path_match("$.position").cast(pl.Int64)
    first = dict(decisions.group_by("agent").agg((position == 0).mean()).collect().iter_rows())
    base = frame.filter(pl.col("agent") == "model-0")
    lines = [f"# larger held-out evaluation: {len(seeds)} further instances x 1 episode, same episode seeds for "
             f"every agent ({wall:.0f} s wall); diff: paired vs model-0, clustered by task",
             "agent       mean_regret  ci_low  ci_high  episodes  diff_vs_0  p_value  first_listed"]
    for agent in [a.label for a in agents]:
        part = frame.filter(pl.col("agent") == agent).sort("task_id")
        e = clustered_mean(part["final_regret"], part["task_id"])
        diff = ("", "")
        if agent.startswith("model-") and agent != "model-0":
            joined = base.join(part, on="task_id", suffix="_new")
            d = paired_difference(joined["final_regret_new"], joined["final_regret"], joined["task_id"])
            diff = (f"{d.estimate:+.2f}", f"{d.pvalue():.4f}")
        share = first.get(agent)
        lines.append(f"{agent:<10}  {e.estimate:>11.2f}  {e.ci_low:>6.2f}  {e.ci_high:>7.2f}  {e.n_episodes:>8}  "
                     f"{diff[0]:>9}  {diff[1]:>7}  {_f(share) if agent.startswith('model-') else '':>12}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint from `regret init-model --from smollm2 DIR`")
    parser.add_argument("--out", default="/work/cache/smollm2/rmft", help="loop directory (resumed when it exists)")
    parser.add_argument("--iterations", type=int, help="fine-tuning rounds (default 2; resumable: raise it later)")
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.8)
    parser.add_argument("--shuffle", default="round", choices=("episode", "round"),
                        help="shuffle_options: one order per episode, or a fresh one every round")
    parser.add_argument("--eval-temperature", type=float, help="sampling temperature of held-out evaluation "
                        "(default: the rollouts' 1.0)")
    for name in ("rollouts", "k", "train_instances", "eval_instances"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, help=f"IterateConfig.{name}")
    parser.add_argument("--selector", help="IterateConfig.selector (default k-lowest)")
    parser.add_argument("--max-decision-regret", type=float, help="IterateConfig.max_decision_regret: train on the "
                        "kept trajectories' decisions with at most this instantaneous regret (0: optimal choices)")
    parser.add_argument("--plain", action="store_true", help="plain k-lowest RMFT: every decision of the kept "
                        "trajectories, as the model saw it (no max_decision_regret, no relabel)")
    parser.add_argument("--fit", type=json.loads, default={}, help="JSON of backend_config settings to override")
    parser.add_argument("--concurrency", type=int, default=2, help="episodes in flight (the server answers one at a time)")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp server threads (1: on a loaded 2-core machine two OpenMP threads spin-wait for each other)")
    parser.add_argument("--quick", action="store_true", help="a minutes-long smoke run (not a result)")
    parser.add_argument("--backend", default="hf", choices=("hf", "unsloth"),
                        help="hf (CPU or GPU) or unsloth (NVIDIA GPU; pip install 'regret-harness[unsloth]')")
    parser.add_argument("--engine", default="llama.cpp", choices=("llama.cpp", "transformers", "vllm"),
                        help="server for every checkpoint: llama.cpp (CPU), transformers, vllm (GPU; restarted "
                             "per checkpoint, one model per process)")
    parser.add_argument("--results", default=str(RESULTS / "rmft_smollm2.txt"))
    parser.add_argument("--summarise-only", action="store_true", help="rewrite the results from --out, run nothing")
    parser.add_argument("--extra-eval", type=int, default=0, metavar="N", help="after the loop: every checkpoint and "
                        "the reference agents on N further held-out instances (appended to the results)")
    args = parser.parse_args()
    for name, value in (("LITELLM_LOCAL_MODEL_COST_MAP", "True"), ("LITELLM_MODE", "PRODUCTION"),
                        ("HF_HUB_OFFLINE", "1"), ("REGRET_SERVE_ENGINE", args.engine),
                        ("REGRET_SERVE_THREADS", str(args.threads))):
        os.environ.setdefault(name, value)
    from finetune._loop import IterateConfig, iterate

    settings = dict(QUICK if args.quick else FULL)
    for name in ("iterations", "rollouts", "k", "train_instances", "eval_instances", "selector", "max_decision_regret"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    settings["backend_config"] = {**settings["backend_config"], **args.fit}
    if args.plain:
        settings = {k: v for k, v in settings.items() if k not in ("max_decision_regret", "relabel")}
    agent_params = {**AGENT_PARAMS, "shuffle_options": args.shuffle}
    if args.eval_temperature is not None:
        settings["eval_params"] = {"temperature": args.eval_temperature}
    if args.engine != "llama.cpp":  # no GGUF export needed; a GPU trains every layer in no time
        backend_config = {k: v for k, v in settings["backend_config"].items() if k != "top_layers"}
        settings["backend_config"] = {**backend_config, "gguf": "none"}
    model = Path(args.model).resolve()
    config = IterateConfig(out=args.out, suite=plan(args.horizon, args.gap), agent=f"openai/{model}",
                           agent_params=agent_params, backend=args.backend, baselines=BASELINES, per="decision",
                           concurrency=args.concurrency, seed=0, **settings)
    started = time.perf_counter()
    if not args.summarise_only:
        iterate(config, log=lambda message: print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True))
    lines, table, references = summarise(Path(args.out), {**settings, "horizon": args.horizon, "gap": args.gap,
                                       "agent": agent_params, "per": "decision"}, started)
    if args.extra_eval:
        lines += extra_evaluation(Path(args.out), args.extra_eval, args.horizon, args.gap)
    print("\n".join(lines))
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text("\n".join(lines) + "\n")
    plot(table, references, results.with_suffix(".png"))


if __name__ == "__main__":
    main()
