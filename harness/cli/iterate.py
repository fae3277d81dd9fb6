"""`regret iterate`: the Iterative RMFT loop (rollouts -> k lowest-regret per task -> fine-tune -> repeat).

With no arguments it trains the numeric Transformer from an untrained (uniform) policy on a
Bernoulli bandit and on an experts mix, on CPU, printing held-out regret per iteration next to
reference algorithms on the same held-out instances.
"""

from __future__ import annotations

import argparse
import time

# IterateConfig fields whose flags are derived from the fields themselves (harness.cli._flags)
DERIVED_FIELDS = ("teacher", "teacher_params", "risk_aversion", "signed", "replay", "replay_weight")
DEMO_SUITES = ("iterate-bandit", "iterate-experts")
DEMO_BASELINES = {"iterate-bandit": ("uniform", "ucb1", "thompson"), "iterate-experts": ("uniform", "hedge", "ftl")}
TABLE_COLUMNS = ("iteration", "scenario_id", "mean_regret", "ci_low", "ci_high", "median_regret", "p90_regret",
                 "beta", "invalid_rate", "mean_reward", "dataset_size", "acceptance_rate", "level_acceptance",
                 "accepted_total", "train_loss", "wall_s", "cumulative_cpu_s")


def register(subparsers) -> None:
    from harness.cli.run import add_agent_options, add_executor_options

    parser = subparsers.add_parser("iterate", help="Iterative RMFT: fine-tune a model on its own lowest-regret rollouts",
                                   description=__doc__)
    parser.add_argument("--agent", metavar="BASE", help="base model: torch:new (default), torch:PATH or a litellm model string")
    parser.add_argument("--base-model", metavar="PATH", help="what the first fit starts from (default: the agent)")
    parser.add_argument("--backend", metavar="B", help="fine-tuning backend: torch (default), hf, unsloth, api")
    parser.add_argument("--suite", metavar="S", help="suite TOML or built-in name whose scenarios are the tasks "
                        f"(default: the demo, {' and '.join(DEMO_SUITES)})")
    parser.add_argument("--iterations", type=int, metavar="N", help="fine-tuning rounds")
    parser.add_argument("--rollouts", type=int, metavar="L", help="rollouts per training task")
    parser.add_argument("--k", type=int, metavar="K", help="trajectories kept per task")
    parser.add_argument("--selector", choices=("k-lowest", "top-reward", "reward-filtered", "threshold", "correct",
                                               "rise", "advantage"),
                        help="k-lowest regret (RMFT, default), k highest reward (ablation), threshold / correct: "
                             "every rollout with regret <= --max-regret (0: the correct answers), rise (RISE: "
                             "reward-weighted attempts of self-correction scenarios), or advantage (every rollout "
                             "weighted by its regret against its task's mean, signed; torch backend)")
    from finetune._loop import IterateConfig
    from harness.cli._flags import add_config_options

    add_config_options(parser, IterateConfig, DERIVED_FIELDS)
    parser.add_argument("--max-regret", type=float, metavar="R", help="threshold selector's bound (default 0)")
    parser.add_argument("--rise-filter", choices=("all", "better", "best", "success"),
                        help="rise: attempts trained on (default all)")
    parser.add_argument("--tau", type=float, metavar="T", help="rise: weight exp(reward / tau) (default 0.4)")
    parser.add_argument("--keep-fallbacks", action="store_true",
                        help="let episodes with fallback answers be selected (the fallbacks are never trained on)")
    parser.add_argument("--per", choices=("episode", "decision"),
                        help="one training example per kept episode (default) or per decision")
    parser.add_argument("--relabel", action="store_true",
                        help="per decision, history summary: also train each kept decision under every cyclic "
                             "relabelling of its options (the chosen option at every listed position)")
    parser.add_argument("--max-decision-regret", type=float, metavar="R",
                        help="per decision: train only on the kept trajectories' decisions with instantaneous "
                             "regret <= R (0: the rounds that chose an optimal option)")
    parser.add_argument("--train-instances", type=int, metavar="M", help="training tasks per scenario and iteration")
    parser.add_argument("--eval-instances", type=int, metavar="M", help="held-out instances per scenario")
    parser.add_argument("--eval-rollouts", type=int, metavar="R", help="episodes per held-out instance")
    parser.add_argument("--schedule", choices=("mixture", "easy-to-hard", "adaptive"),
                        help="levels (the suite's scenarios, easy to hard by difficulty()) trained per iteration, "
                             "at an equal task budget: mixture (default), easy-to-hard, adaptive")
    parser.add_argument("--advance-at", type=float, metavar="P",
                        help="adaptive schedule: acceptance rate at the current level that moves on (default 0.8)")
    parser.add_argument("--curriculum", action="store_true", help="same as --schedule easy-to-hard")
    parser.add_argument("--baselines", metavar="A,B", help="reference agents on the held-out instances (comma-separated)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="backend setting (repeatable), e.g. --set epochs=10 --set learning_rate=0.005")
    parser.add_argument("--seed", type=int, metavar="S", help="master seed")
    parser.add_argument("--out", metavar="DIR", help="output directory, resumed when it exists (default: runs/iterate-<time>)")
    add_executor_options(parser)
    add_agent_options(parser)
    parser.set_defaults(handler=handle)


def _parse_set(items: list[str]) -> dict:
    import json

    values = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            from scenarios import ConfigError

            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def handle(args: argparse.Namespace) -> int:
    from harness.cli import CommandError
    from harness.cli._flags import config_values
    from harness.cli.run import agent_settings

    out = args.out or f"runs/iterate-{time.strftime('%Y%m%d-%H%M%S')}"
    common = {name: getattr(args, name) for name in ("iterations", "rollouts", "k", "train_instances",
                                                      "eval_instances", "eval_rollouts", "seed", "max_regret",
                                                      "max_decision_regret", "schedule", "advance_at")
              if getattr(args, name) is not None}
    common.update(config_values(args, DERIVED_FIELDS))
    if args.selector:
        common["selector"] = args.selector
    if args.rise_filter:
        common["rise_filter"] = args.rise_filter
    if args.tau is not None:
        common["tau"] = args.tau
    if args.curriculum:
        if args.schedule not in (None, "easy-to-hard"):
            raise CommandError("--curriculum means --schedule easy-to-hard; give one of them")
        common["schedule"] = "easy-to-hard"
    if args.keep_fallbacks:
        common["keep_fallbacks"] = True
    if args.relabel:
        common["relabel"] = True
    if args.per:
        common["per"] = args.per
    common.update({name: getattr(args, name) for name in ("executor", "workers", "address")
                   if getattr(args, name) is not None})
    backend_config = _parse_set(args.set)
    settings = agent_settings(args)
    if args.suite is None:
        if args.agent or args.backend not in (None, "torch"):
            raise CommandError("give --suite with --agent/--backend (the no-argument demo trains the numeric Transformer)")
        for suite in DEMO_SUITES:
            print(f"== {suite}: numeric Transformer from a uniform policy ==", flush=True)
            config = _config(f"{out}/{suite.removeprefix('iterate-')}", suite, "torch:new", {}, "torch", backend_config,
                             args, {**_demo_defaults(suite), **common})
            _run(config)
        return 0
    config = _config(out, args.suite, args.agent or "torch:new", settings, args.backend or "torch", backend_config,
                     args, common)
    _run(config)
    return 0


def _demo_defaults(suite: str) -> dict:
    from finetune._demo import DEMO_SETTINGS

    return dict(DEMO_SETTINGS[suite])


def _config(out, suite, agent, settings, backend, backend_config, args, values):
    from finetune.iterate import IterateConfig

    values = dict(values)
    backend_config = {**values.pop("backend_config", {}), **backend_config}
    eval_params = values.pop("eval_params", {})
    baselines = tuple(b for b in (args.baselines or "").split(",") if b) or values.pop("baselines", ())
    values.pop("baselines", None)
    return IterateConfig(out=out, suite=suite, agent=agent, agent_params=settings, base_model=args.base_model,
                         backend=backend, backend_config=backend_config, eval_params=eval_params,
                         baselines=tuple(baselines), **values)


def _run(config) -> None:
    from finetune.iterate import iterate

    started = time.perf_counter()
    result = iterate(config, log=lambda message: print(f"  {message}", flush=True))
    print_table(result)
    print(f"wrote {result.directory}/iterations.csv, iterations.png ({time.perf_counter() - started:.0f} s)", flush=True)


def print_table(result) -> None:
    import polars as pl

    with pl.Config(tbl_rows=200, tbl_cols=30, float_precision=3, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, tbl_width_chars=220):
        print(result.rows.select(TABLE_COLUMNS))
        rise = [c for c in ("m1@t1", "m5@t1", "m1@t5", "p1@t5") if c in result.rows.columns]
        if rise:
            print("held-out self-correction metrics (95% task-clustered intervals in iterations.csv):")
            print(result.rows.select("iteration", "scenario_id", *rise))
        if result.baselines is not None:
            print("reference agents on the same held-out instances:")
            print(result.baselines.select("agent", "scenario_id", "mean_regret", "ci_low", "ci_high",
                                          "median_regret", "p90_regret", "beta"))
