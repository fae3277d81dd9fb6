"""The `regret` command. Each subcommand lives in its own module with `register(subparsers)`.

Subcommand modules import nothing heavy at module level, so `regret --help` stays fast.
Exit codes: 0 success, 1 a failed check, 2 a usage error (bad name, bad file, bad value).
The status of an error comes from its type (`RegretError.exit_code`, see scenarios._errors):
a `UsageError` exits 2, any other `RegretError` 1; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand modules, in the order `regret --help` lists them
COMMANDS = ("run", "report", "scenarios", "agents", "dataset", "iterate", "check", "init_model")


def __getattr__(name: str):
    # CommandError lives with the error types; loaded on use so `regret --help` imports nothing more
    if name == "CommandError":
        from scenarios._errors import CommandError

        return CommandError
    raise AttributeError(f"module 'harness.cli' has no attribute {name!r}")


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
    from scenarios._errors import RegretError

    try:
        return int(args.handler(args) or 0)
    except RegretError as exc:  # PlanError, ScenarioError, UnknownNameError, ProviderError, ...
        print(f"regret: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("regret: interrupted; finished episodes are saved (resume with --resume DIR)", file=sys.stderr)
        return 130
