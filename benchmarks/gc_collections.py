"""Time spent in garbage collections during runs, with the episodes' young generation on and off.

`harness._executor.YOUNG_THRESHOLD` (10,000) is the young-generation threshold episodes play
with; 0 leaves CPython's own (700), as before it existed. This script runs each benchmark's plan
in paired rounds (the order alternated), both settings in this process, and reports per run the
seconds inside collections (gc.callbacks) and their count, and the CPU time of the run.

    .venv/bin/python benchmarks/gc_collections.py [--rounds 6] [--plans runner,executors,llm]

Plans: `runner` (benchmarks/bench_runner.py, ucb1, 20 x 1,000 decisions), `executors`
(bench_executors.py's CPU-bound suite on the local executor, 360k decisions), `llm`
(bench_llm_overhead.py's plan at concurrency 64 against its scripted server, 1,024 decisions).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import harness._executor as executor_module  # noqa: E402
from _paired import paired_ratio, round_order  # noqa: E402

SETTINGS = {"default (700)": 0, f"young {executor_module.YOUNG_THRESHOLD:,}": executor_module.YOUNG_THRESHOLD}


class Collections:
    """Seconds inside collections and their number, from gc.callbacks."""

    def __init__(self) -> None:
        self.seconds, self.count, self._start = 0.0, 0, 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start
            self.count += 1

    def reset(self) -> None:
        self.seconds, self.count = 0.0, 0


def plans(names: list[str], scratch: Path):
    """name -> a function that plays that plan once into a fresh directory; the LLM server's process."""
    from harness import run_plan

    counter = itertools.count()
    runs = {}
    server = None
    if "runner" in names:
        import bench_runner

        runs["runner"] = lambda: run_plan(bench_runner.plan(), scratch / f"r{next(counter)}")
    if "executors" in names:
        import bench_executors

        runs["executors"] = lambda: run_plan(bench_executors.plan(), scratch / f"e{next(counter)}")
    if "llm" in names:
        import bench_llm_overhead

        server = subprocess.Popen([sys.executable, "-m", "harness.testing.openai_server", "--latency",
                                   str(bench_llm_overhead.LATENCY_S)], stdout=subprocess.PIPE, text=True)
        api_base = server.stdout.readline().strip()
        bench_llm_overhead.through_harness(api_base, 4, scratch / "warm")  # litellm's lazy imports
        runs["llm"] = lambda: bench_llm_overhead.through_harness(api_base, 64, scratch / f"l{next(counter)}")
    return runs, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--plans", default="runner,executors,llm")
    args = parser.parse_args()
    names = [name for name in args.plans.split(",") if name]
    unknown = set(names) - {"runner", "executors", "llm"}
    if unknown or args.rounds < 2:
        parser.error(f"unknown plans {sorted(unknown)}" if unknown else "--rounds must be >= 2")
    collections = Collections()
    original = executor_module.YOUNG_THRESHOLD
    with tempfile.TemporaryDirectory() as scratch:
        runs, server = plans(names, Path(scratch))
        try:
            for name, play in runs.items():
                results: dict[str, list[tuple[float, float, int]]] = {setting: [] for setting in SETTINGS}
                for round_ in range(args.rounds):
                    for setting in round_order(list(SETTINGS), round_):
                        executor_module.YOUNG_THRESHOLD = SETTINGS[setting]
                        collections.reset()
                        cpu = time.process_time()
                        play()
                        results[setting].append((time.process_time() - cpu, collections.seconds, collections.count))
                default, young = (results[setting] for setting in SETTINGS)
                ratio, low, high = paired_ratio([cpu for cpu, _, _ in default], [cpu for cpu, _, _ in young])
                print(f"\n{name}: {args.rounds} paired rounds; CPU speed young / default {ratio:.3f} "
                      f"[95% CI {low:.3f}, {high:.3f}]")
                for setting, rows in results.items():
                    seconds = [s for _, s, _ in rows]
                    counts = [c for _, _, c in rows]
                    cpus = [c for c, _, _ in rows]
                    print(f"  {setting:14s} in collections {min(seconds):.3f}-{max(seconds):.3f} s per run "
                          f"({min(counts)}-{max(counts)} collections); run CPU {min(cpus):.2f}-{max(cpus):.2f} s")
        finally:
            executor_module.YOUNG_THRESHOLD = original
            if server is not None:
                server.kill()
                server.wait()


if __name__ == "__main__":
    main()
