"""The shape of the code base (issue 13): no import cycles inside the package, small modules,
experiments that import no other experiment and not the CLI.

Imports are read with ``ast``, at every level (a lazy import inside a function is an edge too),
and importing ``a.b.c`` also imports the packages ``a.b`` (their ``__init__``), as Python does.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "bsnn_bindsnet"
MAX_LINES = 400


def _modules(folder: str) -> dict[str, Path]:
    mods = {}
    for path in (ROOT / folder).rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def import_graph(folder: str, prefix: str) -> dict[str, set[str]]:
    """Module -> the modules of ``prefix`` it imports (with their parent packages)."""
    mods = _modules(folder)
    graph = {}
    for name, path in mods.items():
        edges = set()
        for target in _imported(path):
            if not target.startswith(prefix):
                continue
            parts = target.split(".")
            for k in range(2, len(parts) + 1):  # a.b.c imports a.b and a.b.c
                if ".".join(parts[:k]) in mods:
                    edges.add(".".join(parts[:k]))
        edges.discard(name)
        graph[name] = {e for e in edges if not name.startswith(e + ".")}  # own parents: no
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_hand_made_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_inside_the_package():
    assert cycles(import_graph(PACKAGE, PACKAGE)) == []


def test_no_module_over_the_line_limit():
    long = {str(p.relative_to(ROOT)): n for folder in (PACKAGE, "experiments", "benchmarks")
            for p in (ROOT / folder).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_experiment_imports_another_experiment_or_the_cli():
    shared = {"experiments", "experiments.common", "experiments.harness"}
    offenders = {}
    for name, targets in import_graph("experiments", "").items():
        if name in shared:
            continue
        bad = {t for t in targets if t.startswith("experiments.") and t not in shared}
        bad |= {t for t in _imported(_modules("experiments")[name])
                if t.startswith(f"{PACKAGE}.cli")}
        if bad:
            offenders[name] = sorted(bad)
    assert offenders == {}


def test_every_experiment_has_the_one_skeleton():
    """A frozen ``Config``, ``parse_args(argv) -> Config`` and ``main(argv)`` per experiment."""
    import dataclasses
    import importlib

    for name in _modules("experiments"):
        if name in ("experiments", "experiments.common", "experiments.harness"):
            continue
        module = importlib.import_module(name)
        assert callable(module.parse_args) and callable(module.main), name
        assert dataclasses.is_dataclass(module.Config), name
        assert module.Config.__dataclass_params__.frozen, name
