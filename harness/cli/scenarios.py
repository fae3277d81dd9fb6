"""`regret scenarios`: list the registered scenario families, their parameters and the framings."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("scenarios", help="list scenario families and framings", description=__doc__)
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    import dataclasses

    from scenarios import SCENARIOS

    for entry in SCENARIOS.describe():
        cls = SCENARIOS.get(entry.name)
        print(f"{entry.name}  ({cls.kind}, {cls.feedback} feedback): {entry.help}")
        for f in dataclasses.fields(cls.Params):
            print(f"    {f.name} = {f.default!r}: {f.metadata.get('help', '')}")
    try:
        from scenarios.framing import list_framings
    except ImportError:
        return 0
    print(f"framings: {', '.join(list_framings())}")
    return 0
