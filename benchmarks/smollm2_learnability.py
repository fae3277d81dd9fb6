"""Can a LoRA fit teach SmolLM2-135M-Instruct to read the bandit summary, and how much data and CPU does it take?

    .venv/bin/python benchmarks/smollm2_learnability.py --model DIR --out RUNDIR [--epochs 4] [--tasks 8 --rollouts 6 --k 2]

A diagnostic for `rmft_smollm2.py`, without a single model call: the rollouts are played by a
uniform-random scripted server (`harness.testing.openai_server`) that gets exactly the prompts
SmolLM2 gets (the benchmark's agent settings: summary history, JSON answers, options shuffled
per round). With the options reshuffled every round, SmolLM2's position-biased picks at
iteration 0 are uniformly random over the arms, so these rollouts stand in for its own. They go
through the loop's own steps (`finetune._loop.rollout`, `select`, `fit`: k-lowest per task,
zero-regret decisions, relabelled, LoRA), then a probe reads the fitted weights on held-out
prompts of another random run: on prompts where one tried option has the highest summary
average, the probability the model gives that option's name (`p_best`; sampling at temperature
1 picks it this often), how often it is the model's most likely answer (`acc_best`), and the
probability of the first-listed option (`p_first`). Chance is 1/3 for each.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def random_policy(messages, request):
    """A uniformly random option, seeded by the prompt (the same run twice plays the same)."""
    from harness.testing.openai_server import prompt_options

    names = prompt_options(messages)
    return {"answer": names[int(hashlib.sha256(json.dumps(messages).encode()).hexdigest(), 16) % len(names)]}


def fit_on_random_rollouts(model: Path, out: Path, tasks: int, rollouts: int, k: int, fit: dict) -> None:
    import rmft_smollm2 as bench

    from finetune._loop import IterateConfig, fit as fit_step, prepare, rollout, select, start_model
    from harness.testing.openai_server import ScriptedServer

    params = {**bench.AGENT_PARAMS, "shuffle_options": "round"}
    with ScriptedServer(random_policy) as server:
        config = IterateConfig(out=str(out), suite=bench.plan(20, 0.8), agent=f"openai/{model}", agent_params=params,
                               teacher="openai/random", teacher_params={**params, "api_base": server.api_base},
                               backend="hf", per="decision", max_decision_regret=0.0, relabel=True,
                               rollouts=rollouts, k=k, train_instances=tasks, eval_instances=8, iterations=1, concurrency=8,
                               seed=0,
                               backend_config={**bench.FULL["backend_config"], **fit, "gguf": "none"})
        loop, state = prepare(config)
        start_model(loop, state)
        for step in (rollout, select, fit_step):
            print(step.__name__, step(loop, state, 0), flush=True)


def heldout_prompts(directory: Path, limit: int) -> list[tuple[list[dict], list[str], int]]:
    """Prompts of a fresh random run (instance seeds 1000+) with one tried option of highest average."""
    import polars as pl
    import rmft_smollm2 as bench

    from agents import AgentSpec
    from harness import load_run, run_plan
    from harness._plan import Plan, ScenarioEntry
    from harness.testing.openai_server import ScriptedServer

    if not (directory / "plan.json").exists():
        entry = bench.plan(20, 0.8).scenarios[0]
        entry = ScenarioEntry(entry.id, entry.family, entry.params, entry.framing, tuple(range(1000, 1008)))
        with ScriptedServer(random_policy) as server:
            spec = AgentSpec("openai/random", {**bench.AGENT_PARAMS, "shuffle_options": "round",
                                               "api_base": server.api_base}, "rand")  # the label seeds the option orders: these prompts
            run_plan(Plan((spec,), (entry,), 7, 4, "probe-prompts"), directory, concurrency=8)
    decisions, _ = load_run(directory)
    items = []
    for row in decisions.filter(pl.col("t") >= 3).sort("task_id", "rollout", "t").collect().iter_rows(named=True):
        messages = json.loads(row["messages"])
        listed = bench.SUMMARY_LINE.findall(messages[-1]["content"])
        means = [float(value) if value else None for _, value in listed]
        tried = [value for value in means if value is not None]
        if len(tried) >= 2 and max(tried) > 0 and tried.count(max(tried)) == 1:
            items.append((messages, [name for name, _ in listed], means.index(max(tried))))
    return items[:: max(1, len(items) // limit)][:limit]


def probe(checkpoint: Path, items) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    p_best = hits = p_first = 0.0
    started = time.process_time()
    for messages, names, best in items:
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + '{"answer": "'
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        # the option names differ in their first token, so it decides the answer
        firsts = [tokenizer(prompt + name, return_tensors="pt").input_ids[0, ids.shape[1]].item() for name in names]
        with torch.no_grad():
            probs = model(ids).logits[0, -1][firsts].softmax(0)
        p_best += probs[best].item()
        p_first += probs[0].item()
        hits += float(probs.argmax().item() == best)
    n = len(items)
    return {"checkpoint": str(checkpoint), "prompts": n, "p_best": round(p_best / n, 3),
            "acc_best": round(hits / n, 3), "p_first": round(p_first / n, 3),
            "cpu_s": round(time.process_time() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint from `regret init-model --from smollm2 DIR`")
    parser.add_argument("--out", required=True, help="a new directory for the random rollouts and the fit")
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--rollouts", type=int, default=6)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--fit", type=json.loads, default={"epochs": 4.0}, help="backend_config overrides (JSON)")
    parser.add_argument("--probe-prompts", type=int, default=100)
    parser.add_argument("--probe-only", nargs="*", help="only probe these checkpoints")
    args = parser.parse_args()
    for name, value in (("LITELLM_LOCAL_MODEL_COST_MAP", "True"), ("LITELLM_MODE", "PRODUCTION"),
                        ("HF_HUB_OFFLINE", "1")):
        os.environ.setdefault(name, value)
    out, model = Path(args.out), Path(args.model).resolve()
    checkpoints = [Path(c) for c in args.probe_only] if args.probe_only is not None else [model]
    if args.probe_only is None:
        fit_on_random_rollouts(model, out, args.tasks, args.rollouts, args.k, args.fit)
        checkpoints.append(out / "iter-001" / "checkpoint" / "merged")
    items = heldout_prompts(out / "probe-prompts", args.probe_prompts)
    for checkpoint in checkpoints:
        print(json.dumps(probe(checkpoint, items)), flush=True)


if __name__ == "__main__":
    main()
