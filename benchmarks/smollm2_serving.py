"""Calls per second of SmolLM2-135M-Instruct served locally, played by the harness through litellm.

Each engine (`transformers serve`, llama.cpp) is started once (`finetune.serve.ModelServer`),
then the harness plays Bernoulli K=3, T=20 episodes against it with structured (JSON-schema)
answers at several concurrencies; reported: provider calls per second (wall), decisions per
second, mean latency per call, and CPU seconds of the client and of the server per call.

    .venv/bin/python benchmarks/smollm2_serving.py --model DIR [--episodes 4] [--out FILE]

DIR is `regret init-model --from smollm2 DIR`. Results go to benchmarks/results/smollm2_serving.txt.
The machine is shared: quote the load (printed) with the figures.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def play(server, checkpoint: Path, episodes: int, concurrency: int, horizon: int, seed: int) -> dict:
    import polars as pl

    from harness._plan import Plan, ScenarioEntry
    from harness._runner import run_plan
    from harness._store import load_run

    entry = ScenarioEntry("bandit/bernoulli-k3", "bandit/bernoulli", {"n_arms": 3, "horizon": horizon, "gap": 0.4},
                          "buttons", tuple(range(seed, seed + episodes)))
    params = {"temperature": 1.0, "max_tokens": 24, "cache": False, "reasoning": False, "history": "summary",
              "answer_format": "json", "seed": seed, "max_invalid_retries": 1}
    spec = server.agent_spec(checkpoint, label="smollm2", **params)
    plan = Plan((spec,), (entry,), seed, 1, "serving-bench")
    with tempfile.TemporaryDirectory() as out:
        wall, cpu, server_cpu = time.perf_counter(), time.process_time(), server.cpu_s()
        run_plan(plan, Path(out) / "run", concurrency=concurrency)
        wall, cpu, server_cpu = (time.perf_counter() - wall, time.process_time() - cpu, server.cpu_s() - server_cpu)
        decisions, _ = load_run(Path(out) / "run")
        frame = decisions.select("attempts", "latency_s", "parse_status").collect()
    calls = int(frame["attempts"].sum())
    return {"calls": calls, "decisions": frame.height, "wall_s": wall, "calls_per_s": calls / wall,
            "latency_s": float(frame["latency_s"].sum()) / max(calls, 1), "client_cpu_per_call": cpu / max(calls, 1),
            "server_cpu_per_call": server_cpu / max(calls, 1),
            "valid": float(frame.select(pl.col("parse_status").is_in(["ok", "repaired"]).mean()).item())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint directory from `regret init-model --from smollm2`")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--engines", default="llama.cpp,transformers")
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--threads", type=int, default=1, help="server threads")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "smollm2_serving.txt"))
    args = parser.parse_args()
    for name, value in (("LITELLM_LOCAL_MODEL_COST_MAP", "True"), ("LITELLM_MODE", "PRODUCTION"), ("HF_HUB_OFFLINE", "1")):
        os.environ.setdefault(name, value)
    from finetune.serve import ModelServer, ServeConfig

    checkpoint = Path(args.model).resolve()
    lines = [f"# SmolLM2-135M-Instruct serving, Bernoulli K=3 T={args.horizon}, summary history, JSON-schema "
             f"answers, temperature 1, {args.episodes} episodes per row; server threads {args.threads}; "
             f"load average at start {os.getloadavg()[0]:.1f} (2 cores, shared)",
             f"# command: python benchmarks/smollm2_serving.py --model DIR --episodes {args.episodes} "
             f"--engines {args.engines} --concurrency {args.concurrency} --threads {args.threads}",
             "engine        conc  calls  calls/s  latency_s  valid  client_cpu/call  server_cpu/call  wall_s"]
    print("\n".join(lines), flush=True)
    for engine in args.engines.split(","):
        with tempfile.TemporaryDirectory() as workdir:
            started = time.perf_counter()
            with ModelServer(workdir, ServeConfig(engine=engine, threads=args.threads), checkpoint=checkpoint) as server:
                startup = time.perf_counter() - started
                for concurrency in (int(c) for c in args.concurrency.split(",")):
                    r = play(server, checkpoint, args.episodes, concurrency, args.horizon, seed=1)
                    line = (f"{engine:<13} {concurrency:>4} {r['calls']:>6} {r['calls_per_s']:>8.2f} {r['latency_s']:>10.2f} "
                            f"{r['valid']:>6.2f} {r['client_cpu_per_call']:>16.3f} {r['server_cpu_per_call']:>16.3f} "
                            f"{r['wall_s']:>7.1f}")
                    print(line, flush=True)
                    lines.append(line)
            lines.append(f"# {engine}: server start {startup:.1f} s")
            print(lines[-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
