"""`regret extensions`: every registry's entries with their help text (built-ins and installed plugins)."""

from __future__ import annotations

# (title, module, registry attribute); imported only when the command runs
REGISTRIES = (
    ("scenario families", "scenarios", "SCENARIOS"),
    ("framings", "scenarios.framing", "FRAMINGS"),
    ("baseline agents", "agents", "BASELINES"),
    ("agent sources", "agents", "AGENT_SOURCES"),
    ("explainers", "agents", "EXPLAINERS"),
    ("provider quirks", "agents.llm", "QUIRKS"),
    ("metrics", "harness.metrics", "METRICS"),
    ("executors", "harness", "EXECUTORS"),
    ("dataset formats", "finetune.dataset", "DATASET_FORMATS"),
    ("fine-tuning backends", "finetune.backends", "BACKENDS"),
    ("graph framings", "scenarios.graph", "GRAPH_FRAMINGS"),
    ("curriculum schedules", "finetune._curriculum", "SCHEDULES"),
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("extensions", help="list every extension point's entries", description=__doc__)
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    import importlib

    for title, module, attribute in REGISTRIES:
        registry = getattr(importlib.import_module(module), attribute)
        group = f" (entry points: {registry.entry_point_group})" if registry.entry_point_group else ""
        print(f"{title}{group}")
        entries = registry.describe()
        width = max((len(e.name) for e in entries), default=0)
        for entry in entries:
            print(f"  {entry.name:{width}s}  {entry.help}")
    return 0
