"""Imports inside the package go one way.

Every module's imports are read with :mod:`ast` (nothing is imported): ``import weakdeblur.x``,
``from weakdeblur.x import y`` (``y`` a submodule or a name), relative imports, and imports
inside functions and ``if TYPE_CHECKING:`` blocks too. A function-level import still makes the
two modules depend on each other, so it counts; an annotation-only import counts for cycles
as well, and is told apart only where a layer allows it (the shared types' ``Supervisor``).

Checked: no import cycle (every strongly connected component is one module); the shared
types sit at the bottom; the method never imports the run infrastructure or an entry point;
the main modules follow the data flow (data → physics → generators → losses → stopping →
solver → tracking → report).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import PROJECT

PACKAGE = PROJECT / "weakdeblur"
ENTRY_POINTS = {
    "weakdeblur.run",
    "weakdeblur.report",
    "weakdeblur.bench",
    "weakdeblur.calibrate",
    "weakdeblur.train_supervisor",
    "weakdeblur.evaluate_supervisor",
    "weakdeblur.dashboard",
    "weakdeblur.gpu_check",
    "weakdeblur.time_to_result",
}
RUNTIME = "weakdeblur.runtime"
FLOW = [
    "weakdeblur.data.sample",
    "weakdeblur.types",
    "weakdeblur.physics",
    "weakdeblur.generators",
    "weakdeblur.losses",
    "weakdeblur.stopping",
    "weakdeblur.solver",
    "weakdeblur.runtime.tracking",
    "weakdeblur.report",
]


def modules(package: Path) -> dict[str, Path]:
    """Dotted name → file of every module under ``package`` (a package is its ``__init__``)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def type_checking_nodes(tree: ast.AST) -> set[int]:
    """Ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(child) for child in ast.walk(node))
    return inside


def imports(name: str, path: Path, known: set[str]) -> dict[str, bool]:
    """The package modules ``name`` imports, anywhere in its file → whether only for
    annotations (every import of it inside ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    annotation_only = type_checking_nodes(tree)
    is_package = path.name == "__init__.py"
    found: dict[str, bool] = {}

    def add(target: str, node: ast.AST) -> None:
        while target not in known and "." in target:  # weakdeblur.x.Name -> weakdeblur.x
            target = target.rsplit(".", 1)[0]
        if target in known and target != name:
            found[target] = found.get(target, True) and id(node) in annotation_only

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                add(f"{base}.{alias.name}", node)  # a submodule if there is one, else base
    return found


def import_graph(package: Path) -> dict[str, dict[str, bool]]:
    found = modules(package)
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def cycles(graph: dict[str, dict[str, bool]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
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
    return found


def reachable(graph: dict[str, dict[str, bool]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for successor in graph[todo.pop()]:
            if successor not in seen:
                seen.add(successor)
                todo.append(successor)
    return seen


GRAPH = import_graph(PACKAGE)


def in_runtime(name: str) -> bool:
    return name == RUNTIME or name.startswith(RUNTIME + ".")


def test_the_graph_is_read():
    assert {*FLOW, *ENTRY_POINTS, RUNTIME} <= set(GRAPH)
    assert "weakdeblur.types" in GRAPH["weakdeblur.solver"]
    assert "weakdeblur.runtime.tracking" in GRAPH["weakdeblur.run"]
    assert "weakdeblur.report" in GRAPH["weakdeblur.dashboard"]  # from weakdeblur import report
    assert "weakdeblur.evaluation" in GRAPH["weakdeblur.stopping"]  # inside a function
    assert GRAPH["weakdeblur.types"]["weakdeblur.supervisors.base"]  # annotation only


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_the_shared_types_are_at_the_bottom():
    run_time = {
        target for target, annotation in GRAPH["weakdeblur.types"].items() if not annotation
    }
    assert run_time <= {"weakdeblur.data.sample"}
    assert GRAPH["weakdeblur.data.sample"] == {}


def test_the_method_never_imports_the_run_infrastructure_or_an_entry_point():
    method = [name for name in GRAPH if not in_runtime(name) and name not in ENTRY_POINTS]
    assert "weakdeblur.solver" in method and "weakdeblur.supervisors.map" in method
    wrong = {
        name: sorted(
            target for target in GRAPH[name] if in_runtime(target) or target in ENTRY_POINTS
        )
        for name in method
    }
    assert {name: targets for name, targets in wrong.items() if targets} == {}
    runtime = [name for name in GRAPH if in_runtime(name)]
    assert {name: sorted(set(GRAPH[name]) & ENTRY_POINTS) for name in runtime} == {
        name: [] for name in runtime
    }


@pytest.mark.parametrize("position", range(len(FLOW)))
def test_the_main_modules_follow_the_data_flow(position):
    later = set(FLOW[position + 1 :])
    assert reachable(GRAPH, FLOW[position]) & later == set()


def test_a_cycle_is_seen(tmp_path):
    """The checker itself: a cycle through a function-level ``from package import submodule``."""
    package = tmp_path / "weakdeblur"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from weakdeblur import high\n")
    (package / "high.py").write_text("from weakdeblur.low import f\n")
    (package / "alone.py").write_text("import weakdeblur.low\n")
    assert cycles(import_graph(package)) == [["weakdeblur.high", "weakdeblur.low"]]
