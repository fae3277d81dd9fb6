"""`regret scenarios`: list the registered scenario families, their parameters and the framings."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("scenarios", help="list scenario families and framings", description=__doc__)
    parser.set_defaults(handler=handle)


def handle(args) -> int:
    import dataclasses

    from scenarios import SCENARIOS, list_scenarios

    for family in list_scenarios():
        cls = SCENARIOS.get(family)
        print(f"{family}  ({cls.kind}, {cls.feedback} feedback)")
        for f in dataclasses.fields(cls.Params):
            print(f"    {f.name} = {f.default!r}: {f.metadata.get('help', '')}")
    try:
        from scenarios.framing import list_framings
    except ImportError:
        return 0
    print(f"framings: {', '.join(list_framings())}")
    return 0
