"""`regret report DIR`: print the leaderboard and write Markdown, CSV, Parquet, HTML and a PNG plot."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="leaderboard and report files for a run directory",
                                   description=__doc__)
    parser.add_argument("run_dir", metavar="DIR", help="a run directory written by `regret run`")
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    from harness.report import report_run

    paths = report_run(args.run_dir)
    for name, path in sorted(paths.items()):
        print(f"{name}: {path}")
    return 0
