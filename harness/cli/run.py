"""`regret run`: execute a suite (the built-in `core` suite by default) and print the leaderboard."""

from __future__ import annotations

import argparse
import sys
import time


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run agents through a suite and print the leaderboard",
                                   description=__doc__)
    parser.add_argument("--suite", help="a suite TOML file or a built-in suite name (default: core)")
    parser.add_argument("--agent", action="append", metavar="NAME",
                        help="agent to run (repeatable): a baseline name, a litellm model string or torch:PATH; "
                             "replaces the suite's agents")
    parser.add_argument("--scenario", action="append", metavar="ID",
                        help="only this scenario id or family from the suite (repeatable)")
    parser.add_argument("--rollouts", type=int, metavar="N", help="episodes per agent and task")
    parser.add_argument("--seed", type=int, metavar="S", help="master seed")
    parser.add_argument("--out", metavar="DIR", help="run directory (default: runs/<suite>-<time>)")
    parser.add_argument("--concurrency", type=int, default=8, metavar="N", help="episodes in flight (default 8)")
    parser.add_argument("--resume", metavar="DIR", help="finish the run in DIR: only missing or failed episodes")
    parser.add_argument("--max-cost", type=float, metavar="USD",
                        help="hard cap on what the run directory spends in all (each call reserves its worst case "
                             "first; a call that could pass the cap is not made)")
    parser.add_argument("--allow-large", action="store_true",
                        help="run a plan past the size bounds (2 GiB per episode, 5e7 decisions)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-report", action="store_true", help="skip writing the report files")
    add_agent_options(parser)
    parser.set_defaults(handler=handle)


def add_agent_options(parser: argparse.ArgumentParser) -> None:
    """Common per-agent settings given as flags; they apply to every --agent that takes them."""
    group = parser.add_argument_group("LLM agent settings (apply to every LLM --agent)")
    group.add_argument("--api-base", metavar="URL", help="OpenAI-compatible server base URL")
    group.add_argument("--temperature", type=float, help="sampling temperature")
    group.add_argument("--max-tokens", type=int, help="maximum completion tokens per call")
    group.add_argument("--framing", help="story the scenario is told in (buttons, slot-machines, ...)")
    group.add_argument("--history", choices=("full", "summary"), help="history shown to the model")
    group.add_argument("--reasoning", choices=("on", "off"), help="ask for reasoning before the answer (default on)")
    group.add_argument("--no-cache", action="store_true", help="bypass the response cache")
    group.add_argument("--multi-turn", action="store_true", help="play each episode as one multi-turn chat")
    group.add_argument("--answer-format", choices=("text", "json", "tool"),
                       help="text: a final ANSWER line; json: provider-enforced JSON schema; tool: a forced function call")
    group.add_argument("--shuffle-options", nargs="?", const="episode", choices=("episode", "round"),
                       help="list the options in a seeded random order (recorded): one per episode (the default "
                            "when the flag is given alone) or a fresh one every round")
    group.add_argument("--stream", action="store_true", help="stream replies (for servers that only stream)")
    group.add_argument("--timeout", type=float, metavar="S", help="seconds before a provider call times out")
    group.add_argument("--max-retries", type=int, metavar="N", help="retries of a failed provider call")
    group.add_argument("--price-file", metavar="FILE", help="TOML/JSON per-model prices overriding litellm's table")
    # no argparse choices: LLMSettings checks the value (importing agents.llm here would slow every command)
    group.add_argument("--client", metavar="auto|litellm|direct",
                       help="who sends the calls: litellm, direct (a pooled HTTP client for OpenAI-compatible "
                            "servers), auto (direct for openai/ and hosted_vllm/ at a loopback --api-base; default)")


def agent_settings(args: argparse.Namespace) -> dict:
    settings = {
        "api_base": args.api_base, "temperature": args.temperature, "max_tokens": args.max_tokens,
        "framing": args.framing, "history": args.history,
        "reasoning": None if args.reasoning is None else args.reasoning == "on",
        "cache": False if args.no_cache else None,
        "multi_turn": True if getattr(args, "multi_turn", False) else None,
        "answer_format": getattr(args, "answer_format", None),
        "shuffle_options": getattr(args, "shuffle_options", None),
        "stream": True if getattr(args, "stream", False) else None,
        "timeout": getattr(args, "timeout", None), "max_retries": getattr(args, "max_retries", None),
        "price_file": getattr(args, "price_file", None), "client": getattr(args, "client", None),
    }
    return {k: v for k, v in settings.items() if v is not None}


def select_plan(args: argparse.Namespace):
    """The plan the flags describe: a suite, narrowed and overridden by --scenario/--agent/..."""
    import dataclasses

    from agents import AgentSpec
    from harness import PlanError, load_suite_or_builtin
    from scenarios import suggest

    plan = load_suite_or_builtin(args.suite or "core")
    if args.scenario:
        known = {e.id for e in plan.scenarios} | {e.family for e in plan.scenarios}
        for wanted in args.scenario:
            if wanted not in known:
                raise PlanError(f"unknown scenario {wanted!r} in suite {plan.name!r}{suggest(wanted, known, n=2)}")
        plan = plan.replace(scenarios=tuple(e for e in plan.scenarios if e.id in args.scenario or e.family in args.scenario))
    if args.agent:
        plan = plan.replace(agents=tuple(AgentSpec(name) for name in args.agent))
    settings = agent_settings(args)
    if settings:
        def with_settings(spec: AgentSpec) -> AgentSpec:
            is_llm = "/" in spec.agent and not spec.agent.startswith("torch:")
            return dataclasses.replace(spec, params={**spec.params, **settings}) if is_llm else spec

        plan = plan.replace(agents=tuple(map(with_settings, plan.agents)))
    if args.rollouts is not None:
        if args.rollouts < 1:
            raise PlanError(f"--rollouts must be >= 1, got {args.rollouts}")
        plan = plan.replace(rollouts=args.rollouts,
                            scenarios=tuple(dataclasses.replace(e, rollouts=None) for e in plan.scenarios))
    if args.seed is not None:
        if args.seed < 0:
            raise PlanError(f"--seed must be >= 0, got {args.seed}")
        plan = plan.replace(seed=args.seed)
    if not plan.agents:
        raise PlanError("no agents: name some with --agent or in the suite's 'agents' list")
    return plan


class BarProgress:
    """A rich progress bar on stderr."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("[bold]episodes"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(), transient=False)
        self._task = None
        self._failed = 0

    def start(self, total: int, done: int) -> None:
        self._bar.start()
        self._task = self._bar.add_task("run", total=total, completed=done, failed=0)

    def advance(self, episode, status: str) -> None:
        self._failed += status == "failed"
        self._bar.update(self._task, advance=1, failed=self._failed)

    def stop(self) -> None:
        self._bar.stop()


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness import Plan, Progress, RunStore, build_factories, run_plan
    from harness.cli import CommandError

    if args.concurrency < 1:
        raise CommandError(f"--concurrency must be >= 1, got {args.concurrency}")
    if args.resume:
        # the plan saved in DIR is run as it is: flags that would change it are refused, not ignored
        changing = [flag for flag, value in (("--suite", args.suite), ("--agent", args.agent),
                                             ("--scenario", args.scenario), ("--rollouts", args.rollouts),
                                             ("--seed", args.seed), ("--out", args.out)) if value is not None]
        changing += [f"--{name.replace('_', '-')}" for name in agent_settings(args)]
        if changing:
            raise CommandError(f"--resume {args.resume} runs the plan saved there; {', '.join(changing)} would "
                               "change it and cannot be combined with --resume (start a new run with --out instead)")
        directory = Path(args.resume)
        with RunStore(directory, create=False) as store:
            plan = Plan.from_dict(store.read_plan(), str(store.plan_path))
    else:
        plan = select_plan(args)
        directory = Path(args.out or f"runs/{plan.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    # each agent is resolved once, here: bad settings fail before anything is written, and the
    # run opens these same factories (one client per LLM agent spec, closed when the run ends)
    factories = build_factories(plan)
    progress = Progress() if args.no_progress else BarProgress()
    result = run_plan(plan, directory, concurrency=args.concurrency, resume=bool(args.resume),
                      max_cost=args.max_cost, progress=progress, factories=factories, allow_large=args.allow_large)
    for line in result.warnings:
        print(f"regret: warning: {line}", file=sys.stderr)
    if not args.no_report:
        from harness.report import report_run

        report_run(directory)
    print(f"run directory: {result.directory}  ({result.finished} episodes finished, {result.failed} failed, "
          f"{result.skipped} already done, {result.wall_s:.1f} s)")
    for line in result.errors[:5]:
        print(f"  failed: {line}")
    if result.stopped:
        print(f"stopped early: {result.stopped}; resume with: regret run --resume {result.directory}")
    elif result.failed:
        print(f"retry the failed episodes with: regret run --resume {result.directory}")
    return 0
