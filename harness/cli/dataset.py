"""`regret dataset`: turn runs into fine-tuning data (k lowest-regret trajectories per task by default).

Writes OUT/train.jsonl, OUT/validation.jsonl (+ .parquet) and OUT/metadata.json; the split is
by task. Selectors: --k K (Iterative RMFT, the default with K=1), --fraction F, --max-regret R,
--top-reward K (reward-filtered, for comparison); --rise FILTER writes RISE self-correction data.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("dataset", help="build a regret-ranked fine-tuning dataset from runs",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (from `regret run`)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    chooser = parser.add_mutually_exclusive_group()
    chooser.add_argument("--k", type=int, metavar="K", help="keep the K lowest-regret trajectories per task (default 1)")
    chooser.add_argument("--fraction", type=float, metavar="F", help="keep the lowest-regret fraction F of each task")
    chooser.add_argument("--max-regret", type=float, metavar="R", help="keep every trajectory with final regret <= R")
    chooser.add_argument("--top-reward", type=int, metavar="K",
                         help="keep the K highest-reward trajectories per task (reward-filtered baseline)")
    chooser.add_argument("--rise", choices=("all", "better", "best", "success"), metavar="FILTER",
                         help="RISE self-correction data from answer-scenario runs: one reward-weighted example "
                              "per kept attempt (all, better, best or success)")
    parser.add_argument("--tau", type=float, default=0.4, help="RISE: weight exp(reward / tau) (default 0.4)")
    # no argparse choices: a registered format (finetune.dataset.DATASET_FORMATS, entry points) is
    # valid too, and an unknown one fails with suggestions when the config is built
    parser.add_argument("--format", default="messages", metavar="FORMAT",
                        help="row format: TRL conversational messages (default), openai (OpenAI fine-tuning "
                             "JSONL), prompt-completion (TRL conversational), or any registered format")
    parser.add_argument("--per", default="episode", choices=("episode", "decision"),
                        help="one multi-turn example per trajectory (default) or one per decision")
    parser.add_argument("--val-fraction", type=float, default=0.1, metavar="F",
                        help="share of tasks held out for validation (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/validation split (default 0)")
    parser.add_argument("--drop-invalid", action=argparse.BooleanOptionalAction, default=True,
                        help="exclude trajectories with parse failures or fallbacks (default: on)")
    parser.add_argument("--agent", action="append", metavar="NAME", help="only this agent's trajectories (repeatable)")
    parser.add_argument("--no-parquet", action="store_true", help="write JSONL only")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from finetune.dataset import (
        DatasetConfig,
        KLowestRegret,
        LowestRegretFraction,
        RegretThreshold,
        TopReward,
        build_dataset,
        build_rise_dataset,
    )
    from harness.cli import CommandError

    for run in args.runs:
        if not Path(run).is_dir():
            raise CommandError(f"run directory {run!r} does not exist")
    if args.rise is not None:
        if args.format == "openai":
            raise CommandError("--rise writes messages or prompt-completion (OpenAI JSONL cannot carry weights)")
        result = build_rise_dataset(args.runs, args.out, criterion=args.rise, tau=args.tau, fmt=args.format,
                                    agents=args.agent, val_fraction=args.val_fraction, seed=args.seed)
        counts = result.metadata["counts"]
        print(f"RISE ({args.rise}): {counts['examples']['train']} train / {counts['examples']['validation']} "
              f"validation examples from {counts['attempts']} attempts of {counts['episodes']} episodes "
              f"(by reward: {counts['by_reward']}) in {result.directory}")
        return 0
    if args.fraction is not None:
        selector = LowestRegretFraction(args.fraction)
    elif args.max_regret is not None:
        selector = RegretThreshold(args.max_regret)
    elif args.top_reward is not None:
        selector = TopReward(args.top_reward)
    else:
        selector = KLowestRegret(1 if args.k is None else args.k)
    config = DatasetConfig(format=args.format, per=args.per, val_fraction=args.val_fraction, seed=args.seed,
                           drop_invalid=args.drop_invalid, agents=tuple(args.agent) if args.agent else None,
                           parquet=not args.no_parquet)
    result = build_dataset(args.runs, selector, args.out, config)
    counts = result.metadata["counts"]
    regret = result.metadata["mean_regret"]
    print(f"kept {counts['kept']} of {counts['finished']} trajectories over {counts['tasks_kept']} tasks "
          f"(mean regret {regret['kept']:.4g} kept vs {regret['all']:.4g} all); "
          f"{result.n_train} train / {result.n_validation} validation examples in {result.directory}")
    return 0
