"""Peak memory of `regret run`, `regret report` and the Parquet export at 1M, 4M and 13.6M decisions,
and the store's bytes per decision (issue 15).

The suite is the cheapest baseline one: uniform and greedy on a 5-armed Bernoulli bandit with
horizon 10,000 and 10 rollouts per task; the sizes differ only in the number of tasks (5, 20,
68). Each figure is the peak resident set size (`getrusage` max RSS) of a fresh Python process
doing only that step, so the three sizes compare side by side in one run:

- run: `regret run --suite S --out DIR` (runner, store, export and report, as a user runs it);
- export: `RunStore(DIR).export()` (decisions.parquet and episodes.parquet written again);
- report: `regret report DIR` (leaderboard, curves, plots, HTML; the exports are fresh).

Targets: each peak at 13.6M decisions <= 1 GiB, and no growth with the run (peak at the largest
size / peak at the smallest <= 1.5); at most 100 bytes per decision on disk (store.sqlite).

Generating the runs costs CPU (about 13 us per decision here). They are written to
$REGRET_SCALE_DIR (default: a pytest temporary directory) and reused when the directory already
holds a finished one: its `run` figure is then the one measured when it was made
(run-SIZE.peak.json). $REGRET_SCALE_SIZES picks sizes (default "1m,4m,13.6m").

    REGRET_SCALE_DIR=/work/cache/scale nice -n 15 .venv/bin/python -m pytest benchmarks/bench_scale_memory.py --benchmark-only -s
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

INSTANCES = {"1m": 5, "4m": 20, "13.6m": 68}  # x 2 agents x 10 rollouts x 10,000 rounds
HORIZON, ROLLOUTS, AGENTS = 10_000, 10, ("uniform", "greedy")
SIZES = [s for s in os.environ.get("REGRET_SCALE_SIZES", "1m,4m,13.6m").split(",") if s]
GIB = 1024.0  # MiB
RESULTS: dict[str, dict[str, float]] = {}


def suite_text(size: str) -> str:
    agents = ", ".join(f'"{a}"' for a in AGENTS)
    return (f'name = "scale-{size}"\nseed = 15\nrollouts = {ROLLOUTS}\nagents = [{agents}]\n\n[[scenarios]]\n'
            f'id = "bernoulli-k5-h{HORIZON}"\nfamily = "bandit/bernoulli"\n'
            f"params = {{ n_arms = 5, horizon = {HORIZON} }}\ninstances = {INSTANCES[size]}\n")


def peak(code: str) -> dict[str, float]:
    """Run `code` in a fresh Python process; its peak RSS (MiB) and CPU seconds (all threads)."""
    probe = ("\nimport json, resource, sys, time\n"
             "print('PEAK ' + json.dumps({'peak_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
             "'cpu_s': time.process_time()}), file=sys.stderr)\n")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MODE": "PRODUCTION", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code + probe], env=env, capture_output=True, text=True)
    lines = [line for line in done.stderr.splitlines() if line.startswith("PEAK ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[-1][5:])


def cli(*argv: str) -> str:
    return f"from harness.cli import main\nassert main({list(argv)!r}) == 0"


@pytest.fixture(scope="module")
def scale_dir(tmp_path_factory) -> Path:
    directory = os.environ.get("REGRET_SCALE_DIR")
    path = Path(directory) if directory else tmp_path_factory.mktemp("scale")
    path.mkdir(parents=True, exist_ok=True)
    return path


def measure(size: str, scale_dir: Path) -> dict[str, float]:
    if size in RESULTS:
        return RESULTS[size]
    run = scale_dir / f"run-{size}"
    record = scale_dir / f"run-{size}.peak.json"
    if not record.exists():
        shutil.rmtree(run, ignore_errors=True)
        suite = scale_dir / f"suite-{size}.toml"
        suite.write_text(suite_text(size))
        measured = peak(cli("run", "--suite", str(suite), "--out", str(run), "--no-progress"))
        record.write_text(json.dumps(measured))
    measured = json.loads(record.read_text())
    decisions = len(AGENTS) * INSTANCES[size] * ROLLOUTS * HORIZON
    export = peak(f"from harness import RunStore\nwith RunStore({str(run)!r}, create=False) as store: store.export()")
    report = peak(cli("report", str(run)))
    RESULTS[size] = {
        "decisions": decisions, "run_mib": measured["peak_mib"], "run_cpu_s": measured["cpu_s"],
        "export_mib": export["peak_mib"], "export_cpu_s": export["cpu_s"],
        "report_mib": report["peak_mib"], "report_cpu_s": report["cpu_s"],
        "store_bytes_per_decision": (run / "store.sqlite").stat().st_size / decisions,
        "run_dir_bytes_per_decision": sum(f.stat().st_size for f in run.iterdir() if f.is_file()) / decisions,
    }
    return RESULTS[size]


@pytest.mark.parametrize("size", SIZES)
def test_peak_memory(benchmark, scale_dir, size):
    benchmark.group = "scale: peak memory (MiB) of run, export and report"
    figures = benchmark.pedantic(measure, args=(size, scale_dir), rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    print(f"\n{size:>6} decisions: run {figures['run_mib']:.0f} MiB ({figures['run_cpu_s']:.0f} s CPU), "
          f"export {figures['export_mib']:.0f} MiB, report {figures['report_mib']:.0f} MiB; "
          f"store {figures['store_bytes_per_decision']:.1f} B/decision, "
          f"run directory {figures['run_dir_bytes_per_decision']:.1f} B/decision")
    assert figures["store_bytes_per_decision"] <= 100


def test_memory_is_flat(benchmark, scale_dir):
    """The largest size against the smallest, measured in this run: <= 1 GiB and no growth."""
    benchmark.group = "scale: peak memory (MiB) of run, export and report"
    small, large = (benchmark.pedantic(measure, args=(s, scale_dir), rounds=1, iterations=1) if s == SIZES[0]
                    else measure(s, scale_dir) for s in (SIZES[0], SIZES[-1]))
    ratios = {step: large[f"{step}_mib"] / small[f"{step}_mib"] for step in ("run", "export", "report")}
    benchmark.extra_info.update({f"{step}_ratio": ratio for step, ratio in ratios.items()})
    print(f"\npeak at {SIZES[-1]} / peak at {SIZES[0]}: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    for step in ("run", "export", "report"):
        assert large[f"{step}_mib"] <= GIB, f"{step} peaked at {large[step + '_mib']:.0f} MiB"
        assert ratios[step] <= 1.5, f"{step} grows with the run: {ratios[step]:.2f}x"


def llm_storage(horizon: int, tmp_path: Path) -> dict[str, float]:
    """Bytes of one LLM episode's decisions: as segments, and as the JSON blocks of the old layout."""
    import sqlite3

    import orjson

    from harness import RunStore, parse_suite, run_plan
    from harness._records import DECISION_NAMES, decision_values
    from harness.testing.openai_server import ScriptedServer, round_robin_policy

    out = {}
    with ScriptedServer(round_robin_policy()) as server:
        for mode, settings in (("single-turn", {}), ("multi-turn", {"multi_turn": True})):
            agent = {"agent": "openai/rr", "api_base": server.api_base, "cache": False, **settings}
            plan = parse_suite({"seed": 1, "rollouts": 1, "agents": [agent], "scenarios": [
                {"id": "b", "family": "bandit/bernoulli", "params": {"n_arms": 3, "horizon": horizon}}]})
            directory = tmp_path / f"{mode}-{horizon}"
            run_plan(plan, directory)
            with sqlite3.connect(directory / "store.sqlite") as db:
                out[f"{mode} segment"] = db.execute("SELECT sum(length(data)) FROM decision_segments").fetchone()[0]
            with RunStore(directory, create=False) as store:
                rows = [decision_values(d) for d in store.iter_decisions()]
            out[f"{mode} old block"] = len(orjson.dumps(dict(zip(DECISION_NAMES, map(list, zip(*rows))))))
    return out


def test_llm_messages_grow_linearly(benchmark, tmp_path, monkeypatch):
    """An LLM episode's stored bytes at horizons 25, 50, 100: old JSON blocks against segments."""
    monkeypatch.setenv("REGRET_CACHE_DIR", str(tmp_path / "cache"))
    benchmark.group = "scale: LLM episode storage (bytes)"
    sizes = {h: (benchmark.pedantic(llm_storage, args=(h, tmp_path), rounds=1, iterations=1) if h == 100
                 else llm_storage(h, tmp_path)) for h in (25, 50, 100)}
    benchmark.extra_info.update({f"{k} T={h}": v for h, row in sizes.items() for k, v in row.items()})
    for h, row in sizes.items():
        print(f"\nT={h}: " + ", ".join(f"{k} {v / h:.0f} B/decision" for k, v in row.items()))
    for mode in ("single-turn", "multi-turn"):
        old = sizes[100][f"{mode} old block"] / sizes[25][f"{mode} old block"]
        new = sizes[100][f"{mode} segment"] / sizes[25][f"{mode} segment"]
        print(f"{mode}: 4x the horizon gives {old:.1f}x the bytes in the old layout, {new:.1f}x in segments")
        assert new <= 6.0 < old  # linear (4x, plus compression warm-up) against quadratic (~16x)
