"""`regret compare RUN [RUN...]`: paired differences between agents, per scenario, with task-clustered
intervals, raw and Holm-adjusted p-values, the group tied for best and a win-rate matrix.

One run compares its agents (they faced identical worlds). Several runs compare every agent of
every run (named RUN:LABEL); episodes pair by (task, rollout, env seed), so runs of the same plan
pair exactly; a warning says when the plans or an agent's settings differ. Writes
comparison.md/.csv/.parquet/.json and comparison_forest.png into --out (default: RUN/compare).
With --power R it also plans, from these runs as a pilot, the episodes needed to detect a relative
difference R at 80% power, paired beside unpaired.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("compare", help="paired comparison of agents within or across runs",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories written by `regret run`")
    parser.add_argument("--agent", action="append", metavar="NAME", help="only these agents (repeatable)")
    parser.add_argument("--reference", metavar="NAME", help="compare every agent with this one instead of all pairs")
    parser.add_argument("--scope", choices=("instances", "tasks"), default="instances",
                        help="instances (default): intervals cover new instances of each scenario (clustered by "
                             "task); tasks: conditional on these runs' own tasks")
    parser.add_argument("--alpha", type=float, default=0.05, help="level of the tests (default 0.05)")
    parser.add_argument("--out", metavar="DIR", help="where to write the files (default: RUN/compare)")
    parser.add_argument("--power", type=float, metavar="R",
                        help="plan episodes for 80%% power to detect relative difference R against --reference")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness._compare import compare_runs
    from harness.cli import CommandError

    if not 0.0 < args.alpha < 1.0:
        raise CommandError(f"--alpha must be in (0, 1), got {args.alpha}")
    for run in args.runs:
        if not (Path(run) / "store.sqlite").exists():
            raise CommandError(f"{run} is not a run directory (no store.sqlite); produce one with `regret run --out`")
    if args.power is not None and (args.reference is None or args.power <= 0):
        raise CommandError("--power needs --reference and a positive relative difference")
    comparison = compare_runs(args.runs, agents=args.agent, reference=args.reference, alpha=args.alpha,
                              scope=args.scope)
    print(comparison.table())
    paths = comparison.write(args.out or Path(args.runs[0]) / "compare")
    for name, path in sorted(paths.items()):
        print(f"{name}: {path}")
    if args.power is not None:
        from harness._compare import power_table

        print(power_table(args.runs, args.reference, args.power, alpha=args.alpha, scope=args.scope,
                          agents=args.agent))
    return 0
