"""Command-line flags derived from a config dataclass's fields: name, help, type and choices.

`--field-name` per field; the help is the field's `metadata["help"]`, the choices its
`metadata["choices"]`; the type follows the default: a bool gets `--x/--no-x`, an int or float
a number, a mapping (a `default_factory=dict` field) a JSON object, anything else a string. A
flag left out is absent from `config_values`, so the dataclass's own default applies.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc.msg}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"c\": 0.5}}', got {text!r}")
    return value


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None


def add_config_options(parser: argparse.ArgumentParser | Any, config_class: type, names: Iterable[str]) -> None:
    """Add one flag per named field of `config_class` to `parser` (or an argument group)."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    for name in names:
        f = fields[name]
        flag, default = "--" + name.replace("_", "-"), _default(f)
        options: dict[str, Any] = {"dest": name, "default": None, "help": f.metadata.get("help", "")}
        if "choices" in f.metadata:
            options["choices"] = tuple(f.metadata["choices"])
        if isinstance(default, bool):
            options["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, (int, float)):
            options.update(type=type(default), metavar=name.upper())
        elif isinstance(default, Mapping):
            options.update(type=_json_object, metavar="JSON")
        elif "choices" not in options:
            options["metavar"] = name.upper()
        if isinstance(default, (bool, int, float, str)):
            options["help"] += f" (default {json.dumps(default)})"
        parser.add_argument(flag, **options)


def config_values(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The named fields given on the command line (flags left out are not in the result)."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
