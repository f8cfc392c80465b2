"""The library's layout holds: no import cycles, the core imports no sink, and no module or function grows
past what a reader can hold.

Every import counts: module-level ones, those inside functions (a component built on first use), those under
`if TYPE_CHECKING` (a type a module names is a module it depends on), and modules loaded by name -- a module
that calls `importlib.import_module` (or `__import__`) depends on every library module its string literals
name (`"sysevents.sinks.webhook.sink:WebhookSink"`).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[2] / "shared" / "sysevents"
CORE = (
    "config",
    "topology",
    "events.model",
    "events.strictjson",
    "jobs.model",
    "jobs.matching",
    "jobs.changes",
    "jobs.origin",
    "jobs.secrets",
    "delivery.message",
    "delivery.outcome",
    "delivery.attempt",
    "transport.pubsub",
    "transport.delays",
    "transport.coalesce",
    "net.destinations",
    "obs.logs",
)
"""What every function runs and every sink builds on: it knows no sink, no alert engine, no admin API."""
NOT_CORE = (
    "sysevents.sinks",
    "sysevents.alerts",
    "sysevents.admin",
    "sysevents.delivery.envelope",
    "sysevents.delivery.ledger",
    "sysevents.backfill",
    "sysevents.cli",
    "sysevents.local",
    "sysevents.runtime",
    "sysevents.entry",
    "sysevents.ingest",
)
REGISTRY = "sysevents.jobs.registry"
"""The one core module that names the sinks: their config modules, and nothing else of them."""
MAX_MODULE_CODE_LINES = 400
MAX_FUNCTION_LINES = 60
DYNAMIC = re.compile(r"^(sysevents(?:\.\w+)+)(?::\w+)?$")


def _modules() -> dict[str, Path]:
    mods = {}
    for p in LIBRARY.rglob("*.py"):
        parts = p.relative_to(LIBRARY.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Every library module `name` imports, in any form (see the module docstring)."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    deps: set[str] = set()
    dynamic = False
    strings: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1] if node.level else []
            mod = ".".join(base + [node.module]) if node.module else ".".join(base)
            for a in node.names:
                deps.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod)
        elif isinstance(node, ast.Import):
            deps.update(a.name for a in node.names)
        elif isinstance(node, ast.Call):
            fn = node.func
            called = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            dynamic |= called in ("import_module", "__import__")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = DYNAMIC.match(node.value)
            if m:
                strings.add(m.group(1))
    if dynamic:
        deps |= strings
    return {d for d in deps if d in mods and d != name}


def module_graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


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


def test_the_workflow_registry_imports_only_the_sinks_config_modules():
    graph = module_graph()
    sinks = {d for d in graph[REGISTRY] if d.startswith("sysevents.sinks")}
    assert sinks and all(re.fullmatch(r"sysevents\.sinks\.\w+\.config", d) for d in sinks), sinks
    for config in sinks:  # and what a config module imports at import time is light: the core, the alert
        # policy models, and its own sink's helpers (its save-time hooks load the rest when they run)
        own = config.rsplit(".", 1)[0]
        top = _top_level_imports(config)
        heavy = [d for d in top if d.startswith(NOT_CORE) and d != "sysevents.alerts.policy"]
        assert not [d for d in heavy if not d.startswith(own + ".") or d.endswith((".sink", ".saving"))], (
            config
        )


def _top_level_imports(name: str) -> set[str]:
    mods = _modules()
    path = mods[name]
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return {d for d in found if d in mods}


def test_the_graph_sees_every_import_form():
    graph = module_graph()
    # a function-level import, a TYPE_CHECKING import, and modules loaded by name
    assert "sysevents.templates.sandbox" in graph["sysevents.runtime"]
    assert "sysevents.runtime" in graph["sysevents.delivery.envelope"]
    assert "sysevents.sinks.webhook.sink" in graph["sysevents.sinks.registry"]


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def code_lines(text: str) -> int:
    """Lines holding code: not blank, not only a comment, not a docstring."""
    tree = ast.parse(text)
    docs: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                if isinstance(first.value.value, str):
                    docs.update(range(first.lineno, first.end_lineno + 1))
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            docs.update(range(node.lineno, node.end_lineno + 1))  # attribute docstrings
    lines: set[int] = set()
    skip = (
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENDMARKER,
    )
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type not in skip:
            lines.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in docs)
    return len(lines)


LIBRARY_FILES = sorted(LIBRARY.rglob("*.py"))


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: p.relative_to(LIBRARY).as_posix())
def test_no_module_is_over_the_limit(path):
    assert code_lines(path.read_text()) <= MAX_MODULE_CODE_LINES


def test_no_function_is_over_the_limit():
    long = []
    for path in LIBRARY_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(LIBRARY)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []


def test_the_counters_count():
    assert code_lines('"""doc"""\n\n# a comment\nx = 1\n\n\ndef f():\n    """doc"""\n    return x\n') == 3
