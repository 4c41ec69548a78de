"""The package's shape, read from its source: no import circle, no driver reaching into the core's
private names, the core free of engine imports, and the trial wrapper on the standard library.

Every ``import`` counts, also those inside function bodies (a circle dodged by a late import is still a
circle); only ``if TYPE_CHECKING:`` blocks are left out, as they never run.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "hp_components"
DRIVERS = ("hp_components.argo", "hp_components.kfp")
ENGINES = ("kfp", "hera", "kubernetes")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import that can run."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
    return out


def _edges(name: str) -> set[str]:
    """The project modules ``name`` imports (``from hp_components import search`` is the module search)."""
    out = set()
    for module, names in _imports(MODULES[name]):
        if module not in MODULES:
            continue
        subs = {f"{module}.{n}" for n in names} & MODULES.keys()
        out |= subs or {module}
        if set(names) - {n.rsplit(".", 1)[-1] for n in subs}:
            out.add(module)
    out.discard(name)
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle():
    # a module importing its own package's __init__ (for a re-exported name) is not a circle of design
    graph = {m: {e for e in _edges(m) if not m.startswith(e + ".")} for m in MODULES}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_walker_finds_a_circle_hidden_in_a_function_body(tmp_path):
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x\n"
                   "def f():\n    from hp_components.space import SearchSpace\n")
    assert _imports(src) == [("typing", ["TYPE_CHECKING"]), ("hp_components.space", ["SearchSpace"])]


def test_no_driver_imports_a_private_name_of_the_core():
    bad = []
    for name, path in MODULES.items():
        if not name.startswith(DRIVERS):
            continue
        own = name.split(".")[:2]
        for module, names in _imports(path):
            if not module.startswith("hp_components") or module.split(".")[:2] == own:
                continue
            private = [n for n in names if n.startswith("_")] + [p for p in module.split(".")[1:] if p.startswith("_")]
            if private:
                bad.append(f"{name}: from {module} import {', '.join(names)}")
    assert bad == []


def test_the_core_imports_no_engine():
    bad = []
    for name, path in MODULES.items():
        if name.startswith(DRIVERS):
            continue
        for module, _ in _imports(path):
            top = module.split(".")[0]
            if top in ENGINES and not (top == "kubernetes" and name == "hp_components.jobs"):
                bad.append(f"{name} imports {module}")
    assert bad == []  # jobs.py alone talks to the Kubernetes API (the job trials both drivers share)


def _optional_imports(path: Path) -> set[str]:
    """Top-level modules imported inside a ``try`` whose ``except`` catches ImportError (used if installed)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Try) and any(h.type is not None and "ImportError" in ast.unparse(h.type)
                                             for h in node.handlers):
            out |= {a.name.split(".")[0] for stmt in node.body for n in ast.walk(stmt)
                    if isinstance(n, ast.Import) for a in n.names}
    return out


def test_the_trial_wrapper_needs_only_the_standard_library():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    # google-re2 where the image has it; tests/test_regex.py runs the wrapper where it cannot be imported
    optional = _optional_imports(MODULES["hp_components.metrics"]) - stdlib
    assert optional <= {"re2"}, optional
    used = {m.split(".")[0] for m, _ in _imports(MODULES["hp_components.metrics"])} - optional
    assert used <= stdlib, used - stdlib
