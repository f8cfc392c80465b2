"""The library's layout holds: no import cycles, and the core imports no sink.

Module-level imports only (imports inside functions and under `if TYPE_CHECKING` are how a component is
built on first use, and do not make a module depend on another at import time).
"""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "shared" / "sysevents"
CORE = (
    "events.model",
    "events.strictjson",
    "jobs.model",
    "jobs.matching",
    "topology",
    "config",
    "jobs.store",
    "delivery.message",
    "jobs.origin",
    "jobs.secrets",
    "transport.pubsub",
)
NOT_CORE = (
    "sysevents.sinks",
    "sysevents.alerts",
    "sysevents.admin",
    "sysevents.delivery",
    "sysevents.backfill",
)


def module_graph() -> dict[str, set[str]]:
    mods = {}
    for p in LIBRARY.rglob("*.py"):
        parts = p.relative_to(LIBRARY.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = p
    graph = {}
    for name, p in mods.items():
        pkg = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.parse(p.read_text()).body:
            if isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1] if node.level else []
                mod = ".".join(base + [node.module]) if node.module else ".".join(base)
                for a in node.names:
                    deps.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(module_graph()) == []


def test_the_core_imports_no_sink():
    graph = module_graph()
    for name in CORE:
        assert not [d for d in graph[f"sysevents.{name}"] if d.startswith(NOT_CORE)], name


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
