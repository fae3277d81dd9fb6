"""`regret check`: gate CI on agent quality. Compare a run with a stored baseline; exit 1 when
an agent's regret got worse beyond noise (a one-sided t-test at level alpha, Holm-corrected,
with a minimum effect), rises above a ceiling, or its invalid-action rate or cost exceeds a
bound; exit 0 otherwise. `--write-baseline` stores an accepted run as the baseline instead.

Settings stored in the baseline (by --write-baseline) are the defaults; flags override them.
"""

from __future__ import annotations

import argparse
import os


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check", help="fail (exit 1) when a run's regret is worse than a baseline beyond noise",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `regret run`")
    parser.add_argument("--baseline", required=True, metavar="FILE", help="baseline JSON file")
    parser.add_argument("--write-baseline", action="store_true",
                        help="write RUN_DIR as the baseline FILE (with the given settings) instead of checking")
    parser.add_argument("--alpha", type=float, metavar="A", help="level of the one-sided test (default 0.05)")
    parser.add_argument("--min-effect", type=float, metavar="FRAC",
                        help="smallest relative increase of mean regret that can fail (default 0.10 = 10%%)")
    parser.add_argument("--min-effect-abs", type=float, metavar="R",
                        help="smallest absolute increase of mean regret that can fail (default 0)")
    parser.add_argument("--test", choices=("auto", "paired", "stratified", "task-means", "welch"),
                        help="auto (default): paired when both runs hold the same episodes (same suite and seed), "
                             "Welch stratified by task when they hold the same tasks, else Welch on task means")
    parser.add_argument("--correction", choices=("holm", "bonferroni", "none"),
                        help="multiple-comparison correction over all checks (default holm)")
    parser.add_argument("--fail-above", action="append", metavar="[SCENARIO=]VALUE",
                        help="hard ceiling on mean regret, for a scenario id or glob, or every scenario (repeatable)")
    parser.add_argument("--max-invalid-rate", type=float, metavar="FRAC",
                        help="fail when the share of invalid decisions exceeds this")
    parser.add_argument("--max-cost", type=float, metavar="USD",
                        help="fail when an agent x scenario's total cost exceeds this")
    parser.add_argument("--junit", metavar="FILE", help="also write JUnit XML (one testcase per check)")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write the Markdown table here (it is appended to $GITHUB_STEP_SUMMARY when set)")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.check import Baseline, merge_settings, parse_fail_above, write_baseline
    from harness.cli import CommandError

    run_dir = Path(args.run_dir)
    if not (run_dir / "store.sqlite").exists():
        raise CommandError(f"{run_dir} is not a run directory (no store.sqlite); produce one with `regret run --out`")
    overrides = {
        "alpha": args.alpha, "min_effect": args.min_effect, "min_effect_abs": args.min_effect_abs,
        "test": args.test, "correction": args.correction, "max_invalid_rate": args.max_invalid_rate,
        "max_cost": args.max_cost,
        "fail_above": parse_fail_above(args.fail_above) if args.fail_above else None,
    }
    if args.write_baseline:
        baseline = write_baseline(run_dir, args.baseline, merge_settings(None, overrides))
        print(f"wrote baseline {args.baseline}: {len(baseline.samples)} agent x scenario checks from {run_dir}")
        return 0

    baseline = Baseline.load(args.baseline)
    settings = merge_settings(baseline.settings, overrides)
    from harness.check import compare

    report = compare(Baseline.from_run(run_dir), baseline, settings)
    print(report.table())
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        with open(summary_path, "a", encoding="utf-8") as handle_:
            handle_.write(report.markdown())
    if args.markdown:
        Path(args.markdown).write_text(report.markdown(), encoding="utf-8")
    if args.junit:
        Path(args.junit).parent.mkdir(parents=True, exist_ok=True)
        Path(args.junit).write_text(report.junit_xml(), encoding="utf-8")
    return 0 if report.passed else 1
