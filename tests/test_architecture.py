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


LAYOUT = {"ann", "snn", "conversion", "simulation", "analysis", "direct", "training", "imc",
          "interop", "zoo", "data", "cli"}


def test_the_package_is_one_folder_per_layer():
    """Issue 23: no flat prefixes at the root; the folders are the architecture."""
    pkg = ROOT / PACKAGE
    root_modules = {p.name for p in pkg.glob("*.py")}
    folders = {p.name for p in pkg.iterdir() if (p / "__init__.py").exists()}
    assert root_modules == {"__init__.py", "checkpoint.py", "locking.py"}
    assert folders == LAYOUT


# The floor rule of docs/extending.md ("Where things live"): a module imports only from its own
# folder and from folders (or ground-floor modules) on lower floors. Keep the two tables equal.
FLOORS = {"checkpoint": 0, "locking": 0, "data": 1, "snn": 1, "ann": 2, "analysis": 2,
          "conversion": 3, "direct": 3, "simulation": 3, "imc": 3, "interop": 3,
          "training": 4, "zoo": 5, "cli": 6}


def _unit(module: str) -> str | None:
    """The folder (or root module) of ``bsnn_bindsnet.<unit>...``; None for the package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def floor_violations(graph: dict[str, set[str]], floors: dict[str, int]) -> list[str]:
    """``"a -> b"`` for every import of a unit on the same or a higher floor than the
    importer's (own folder excepted)."""
    return sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                  if _unit(m) and _unit(t) and _unit(m) != _unit(t)
                  and floors[_unit(t)] >= floors[_unit(m)])


def test_floor_checker_finds_a_hand_made_upward_import():
    graph = {"p.snn.plan": {"p.snn.neurons", "p.training.models"}, "p.training.models":
             {"p.snn.plan"}, "p.imc.array": {"p.interop.nir"}, "p.interop.nir": set()}
    floors = {"snn": 1, "imc": 3, "interop": 3, "training": 4}
    assert floor_violations(graph, floors) == ["p.imc.array -> p.interop.nir",
                                               "p.snn.plan -> p.training.models"]


def test_every_import_goes_to_the_own_folder_or_a_lower_floor():
    graph = import_graph(PACKAGE, PACKAGE)
    units = {_unit(m) for m in graph} - {None}
    assert units <= set(FLOORS), f"give {sorted(units - set(FLOORS))} a floor (here and in " \
                                 "docs/extending.md)"
    assert floor_violations(graph, FLOORS) == []


def test_the_guide_states_the_floors_this_file_checks():
    text = (ROOT / "docs" / "extending.md").read_text()
    table = text[text.index("| floor |"):text.index("\n\n", text.index("| floor |"))]
    stated = {}
    for row in table.splitlines()[2:]:
        floor, units = row.split("|")[1:3]
        for unit in units.replace("`", "").split(","):
            stated[unit.strip().removesuffix("/").removesuffix(".py")] = int(floor)
    assert stated == FLOORS
