"""The `regret` command. Each subcommand lives in its own module with `register(subparsers)`.

Subcommand modules import nothing heavy at module level, so `regret --help` stays fast.
Exit codes: 0 success, 1 a failed check, 2 a usage error (bad name, bad file, bad value).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand modules, in the order `regret --help` lists them
COMMANDS = ("run", "report", "compare", "scenarios", "agents", "dataset", "iterate", "check", "init_model")


class CommandError(Exception):
    """A failure to report as one line; `code` is the exit status."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regret",
        description="Run LLMs and algorithms through decision scenarios, measure regret, build datasets, fine-tune.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"harness.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"harness.cli.{name}":
                continue  # a subcommand not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.handler(args) or 0)
    except CommandError as exc:
        print(f"regret: error: {exc}", file=sys.stderr)
        return exc.code
    except ValueError as exc:  # PlanError, ScenarioError, UnknownNameError, RunStoreError, ...
        print(f"regret: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("regret: interrupted; finished episodes are saved (resume with --resume DIR)", file=sys.stderr)
        return 130
