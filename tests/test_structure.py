"""The package structure: no import cycles, and every public module lists its built-ins on import."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("scenarios", "agents", "harness", "finetune")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """Project modules this module imports anywhere (module level or inside functions), except
    under `if TYPE_CHECKING:`, which never runs."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                if f"{source}.{alias.name}" in modules:
                    found.add(f"{source}.{alias.name}")
                elif source in modules:
                    found.add(source)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {(_module_name(p), p) for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    modules = {name for name, _ in files}
    return {name: _imports(ast.parse(path.read_text()), name, path.name == "__init__.py", modules)
            for name, path in files}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def connect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    tree = ast.parse("from . import b\nif TYPE_CHECKING:\n    import c\ndef f():\n    from a.d import x\n")
    assert _imports(tree, "a", True, {"a", "a.b", "c", "a.d"}) == {"a.b", "a.d"}


def test_no_import_cycles_among_the_projects_modules():
    graph = import_graph()
    assert "scenarios._base" in graph and "harness._runner" in graph  # the graph really was read
    assert cycles(graph) == []


def test_layers_import_downward_only():
    """DESIGN.md: scenarios imports no other package, agents only scenarios, harness not finetune
    (harness.cli, the command-line face, may import everything)."""
    allowed = {"scenarios": {"scenarios"}, "agents": {"agents", "scenarios"},
               "harness": {"harness", "agents", "scenarios"}, "finetune": set(PACKAGES)}
    wrong = [f"{module} imports {other}" for module, imports in import_graph().items()
             for other in imports
             if other.split(".")[0] not in allowed[module.split(".")[0]] and not module.startswith("harness.cli")]
    assert wrong == []


# each public module, imported alone in a fresh interpreter, then its registries listed
BUILTINS = {
    "scenarios": ("scenarios", "list_scenarios()", ["bandit/bernoulli", "contextual/linear", "experts/full-info"]),
    "scenarios.framing": ("scenarios.framing", "list_framings()", ["buttons", "numeric", "restaurants"]),
    "agents": ("agents", "list_agents()", ["ucb1", "thompson", "hedge", "oracle"]),
    "agent sources": ("agents", "AGENT_SOURCES.names()", ["llm", "torch"]),
    "harness executors": ("harness", "EXECUTORS.names()", ["local", "process", "ray"]),
    "harness metrics": ("harness.metrics", "METRICS.names()", ["regret", "growth", "exploration", "usage"]),
    "dataset formats": ("finetune.dataset", "DATASET_FORMATS.names()", ["messages", "openai", "prompt-completion"]),
    "backends": ("finetune.backends", "list_backends()", ["api", "hf", "torch", "unsloth"]),
}


@pytest.mark.parametrize("what", sorted(BUILTINS))
def test_a_public_module_lists_its_builtins_right_after_import(what):
    module, call, expected = BUILTINS[what]
    code = f"import json, {module} as m; print(json.dumps(list(m.{call})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert set(expected) <= set(listed), (what, listed)


def test_every_registry_describes_its_entries_without_importing_lazy_ones():
    code = ("import sys, json; from finetune.backends import BACKENDS; rows = BACKENDS.describe(); "
            "print(json.dumps([[e.name, e.help] for e in rows] + ['finetune.backends.hf' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    *rows, imported = json.loads(out.stdout)
    assert not imported
    assert all(help_text for _, help_text in rows) and {"hf", "torch"} <= {name for name, _ in rows}


def test_regret_extensions_lists_every_registry_with_help(capsys):
    from harness.cli import main

    assert main(["extensions"]) == 0
    out = capsys.readouterr().out
    for title in ("scenario families (entry points: regret_harness.scenarios)", "metrics", "executors",
                  "dataset formats", "fine-tuning backends", "provider quirks"):
        assert title in out
    # other tests may register more executors, which widens the name column
    assert re.search(r"^ +local +asyncio in this process", out, re.MULTILINE) and "hf " in out


def test_a_registry_takes_entry_points_lazily_and_suggests_close_names(monkeypatch):
    from importlib.metadata import EntryPoint

    from scenarios import Registry, UnknownNameError

    group = "regret_harness.test_things"
    points = [EntryPoint("greedy-plugin", "agents.baselines:Greedy", group),
              EntryPoint("self-registering", "json", group)]  # a module: imported, registers nothing here
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group=None: points if group == points[0].group else [])
    things = Registry("thing", group)
    things.add("local", object(), help="registered in code")
    assert [e.name for e in things.describe()] == ["greedy-plugin", "local"]
    assert things.get("greedy-plugin").__name__ == "Greedy"
    with pytest.raises(UnknownNameError, match=r"unknown thing 'greedy-plugn'; did you mean 'greedy-plugin'\?"):
        things.get("greedy-plugn")
