"""`regret agents`: list the registered baseline agents and the scenario kinds each plays."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("agents", help="list baseline agents", description=__doc__)
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    import dataclasses

    from agents import BASELINES

    for entry in BASELINES.describe():
        cls = BASELINES.get(entry.name)
        settings = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else ""
        print(f"{entry.name:20s} {entry.help}\n{'':20s} plays: {', '.join(sorted(cls.kinds))}"
              + (f"   settings: {settings}" if settings else ""))
    print("LLMs: any litellm model string, e.g. openai/gpt-4o-mini, anthropic/..., hosted_vllm/NAME, ollama/NAME")
    print("numeric policies: torch:PATH (a checkpoint from `regret iterate --backend torch`)")
    return 0
