"""The one registry mechanism: name -> object, with decorator registration, lazy built-ins,
entry-point plugins, did-you-mean errors and a listing with help text.

Every extension point uses it: scenario families and framings (`scenarios`), baselines and
agent sources (`agents`), metrics and executors (`harness`), dataset formats and backends
(`finetune`). It lives in `scenarios`, the bottom layer, so each package can create its own
registry without importing upward (see DESIGN.md).

Three ways in:

- a decorator, where the object is defined: `@FAMILIES.register("toy/x", help="...")`;
- lazily by target string, for built-ins whose module is heavy or would import the registry's
  own module back: `BACKENDS.lazy("hf", "finetune.backends.hf:HFBackend", help="...")`, or
  `Registry(..., builtin_modules=("scenarios.bandits",))` for modules that register
  themselves with the decorator when first imported;
- an entry point in the registry's group (`[project.entry-points."regret_harness.scenarios"]`):
  `name = "package.module:object"` registers the object lazily under `name`;
  `name = "package.module"` (no attribute) imports a module that registers itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from scenarios._errors import ConfigError, UnknownNameError, suggest

T = TypeVar("T")

__all__ = ["Entry", "Registry", "UnknownNameError", "load_target"]


def load_target(target: str) -> Any:
    """Import "package.module:attribute" (or a bare module) and return the object."""
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in filter(None, attribute.split(".")):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Entry:
    """A listing row: the name, its one-line help, and where it comes from."""

    name: str
    help: str
    source: str  # "builtin", "plugin" or the registering module


def _first_line(obj: Any) -> str:
    """The first line of a class's or function's docstring, or an instance's `help` attribute."""
    is_code = isinstance(obj, type) or hasattr(obj, "__code__")
    doc = (obj.__doc__ if is_code else getattr(obj, "help", None)) or ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""


class Registry(Generic[T]):
    """Maps names to objects; see the module docstring for the ways in."""

    def __init__(self, kind: str, entry_point_group: str | None = None, *,
                 builtin_modules: Iterable[str] = (), hint: str = "", instantiate: bool = False) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.hint = hint  # appended to the unknown-name message (e.g. how LLMs are named)
        self.instantiate = instantiate  # a registered class is replaced by one instance on first get
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}  # name -> "module:attribute", imported on first get
        self._help: dict[str, str] = {}
        self._source: dict[str, str] = {}
        self._builtin_modules = tuple(builtin_modules)
        self._builtins_loaded = not self._builtin_modules
        self._plugins_loaded = entry_point_group is None

    # --- registering ----------------------------------------------------------------------
    def register(self, name: str, *, help: str | None = None) -> Callable[[T], T]:
        """Decorator: `@REGISTRY.register("name", help="...")` (help defaults to the docstring)."""

        def decorator(obj: T) -> T:
            self.add(name, obj, help=help)
            return obj

        return decorator

    def add(self, name: str, obj: T, *, help: str | None = None, source: str | None = None) -> T:
        if name in self._items and self._items[name] is not obj and not (
                self.instantiate and type(self._items[name]) is obj):
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        self._lazy.pop(name, None)
        if help is not None or name not in self._help:
            self._help[name] = help if help is not None else _first_line(obj)
        self._source.setdefault(name, source or getattr(obj, "__module__", "") or "")
        return obj

    def remove(self, name: str) -> None:
        """Forget `name` (a plugin unloading, a test cleaning up after itself)."""
        for table in (self._items, self._lazy, self._help, self._source):
            table.pop(name, None)

    def lazy(self, name: str, target: str, *, help: str = "", source: str = "builtin") -> None:
        """Register "module:attribute" under `name`; the module is imported on first `get(name)`."""
        if name not in self._items:
            self._lazy[name] = target
            self._help[name] = help
            self._source[name] = source

    # --- loading ----------------------------------------------------------------------------
    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)  # registers itself through the decorators

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.entry_point_group):
            if ":" in ep.value:
                self.lazy(ep.name, ep.value, source="plugin")
            else:
                ep.load()  # a module that registers itself

    def _load(self) -> None:
        self._load_builtins()
        self._load_plugins()

    def _resolve(self, name: str) -> T:
        target = self._lazy.pop(name)
        try:
            obj = load_target(target)
        except BaseException:
            self._lazy[name] = target  # still listed; the next get raises again
            raise
        self._items[name] = obj
        if not self._help.get(name):
            self._help[name] = _first_line(obj)
        return obj

    # --- looking up -------------------------------------------------------------------------
    def get(self, name: str) -> T:
        if name not in self._items and name not in self._lazy:
            self._load()
        if name in self._lazy:
            self._resolve(name)
        if name not in self._items:
            raise UnknownNameError(self.unknown_message(name))
        obj = self._items[name]
        if self.instantiate and isinstance(obj, type):
            obj = self._items[name] = obj()
        return obj

    def unknown_message(self, name: str) -> str:
        self._load()
        known = self.names()
        hint = suggest(name, known, n=3, cutoff=0.5)
        return f"unknown {self.kind} {name!r}{hint} (known: {', '.join(known)}){self.hint}"

    def __contains__(self, name: object) -> bool:
        if name in self._items or name in self._lazy:
            return True
        self._load()
        return name in self._items or name in self._lazy

    def names(self) -> list[str]:
        self._load()
        return sorted({*self._items, *self._lazy})

    def items(self) -> Iterator[tuple[str, T]]:
        """Every (name, object), importing lazy entries."""
        return iter([(name, self.get(name)) for name in self.names()])

    def describe(self) -> list[Entry]:
        """The listing: name, one-line help and source of every entry, without importing lazy ones."""
        return [Entry(name, self._help.get(name, ""), self._source.get(name, "")) for name in self.names()]

    def help(self, name: str) -> str:
        self.get(name)
        return self._help.get(name, "")
