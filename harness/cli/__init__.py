"""The `regret` command. Each subcommand lives in its own module with `register(subparsers)`.

Subcommand modules import nothing heavy at module level, so `regret --help` stays fast.
Exit codes: 0 success, 1 a failed check, 2 a usage error (bad name, bad file, bad value).
The status of an error comes from its type (`RegretError.exit_code`, see scenarios._errors):
a `UsageError` exits 2, any other `RegretError` 1; anything else is a bug and shows its traceback.

litellm's price table: the copy bundled with litellm is used (LITELLM_LOCAL_MODEL_COST_MAP is set
before litellm is imported), so no `regret` process waits on the network at start-up; set
REGRET_FETCH_COST_MAP=1 (or pass --fetch-cost-map) to fetch the newest table instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

FETCH_COST_MAP_ENV = "REGRET_FETCH_COST_MAP"

# subcommand modules, in the order `regret --help` lists them
COMMANDS = ("run", "report", "compare", "scenarios", "agents", "dataset", "iterate", "check", "init_model",
            "extensions")


def __getattr__(name: str):
    # CommandError lives with the error types; loaded on use so `regret --help` imports nothing more
    if name == "CommandError":
        from scenarios._errors import CommandError

        return CommandError
    raise AttributeError(f"module 'harness.cli' has no attribute {name!r}")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (not the usage block) and exits 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"regret: error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="regret",
        description="Run LLMs and algorithms through decision scenarios, measure regret, build datasets, fine-tune.",
    )
    parser.add_argument("--fetch-cost-map", action="store_true",
                        help=f"fetch litellm's newest price table at start-up instead of using the bundled copy "
                             f"(also: {FETCH_COST_MAP_ENV}=1)")
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


def use_bundled_cost_map(fetch: bool = False) -> None:
    """Before litellm is imported: its bundled price table, unless the user asked to fetch."""
    if fetch or os.environ.get(FETCH_COST_MAP_ENV, "").strip().lower() in ("1", "true", "yes"):
        os.environ.pop("LITELLM_LOCAL_MODEL_COST_MAP", None)
    else:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    use_bundled_cost_map(args.fetch_cost_map)
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
