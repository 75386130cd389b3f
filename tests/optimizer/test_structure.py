"""Structure: no import circle anywhere in the project, each optimizer subsystem in its own folder
importing only downward, no planner module reaching into another's private names, and the reuse
planner's docstring naming the flow algorithm it runs."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import optimizer.reuse.execution as reuse

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("provenance", "analysis", "optimizer", "pipelines", "frugal")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
            if ".venv" not in p.parts}


def _imports(path: Path, name: str, known: dict[str, Path]) -> set[str]:
    """Every project module that ``path`` imports, at any depth of the file (lazy imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def import_graph() -> nx.DiGraph:
    known = _modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for name, path in known.items():
        graph.add_edges_from((name, target) for target in _imports(path, name, known))
    return graph


def test_the_import_graph_sees_known_edges():
    # the check below is only as good as the graph: it must hold edges we know exist
    graph = import_graph()
    assert graph.has_edge("optimizer.pruning.replay", "optimizer.pruning.policy")
    assert graph.has_edge("optimizer.pruning.hook", "optimizer.pruning.replay")  # a lazy import
    assert graph.has_edge("optimizer.reuse.optimize", "optimizer.reuse.rules.evict_stored")
    assert graph.number_of_edges() > 200


def test_no_import_circle_anywhere():
    graph = import_graph()
    cycles = list(nx.simple_cycles(graph))
    assert cycles == []


def test_optimizer_subsystems_stand_apart():
    """pruning and reuse share only optimizer.errors; the rules never import the chain; the
    optimizer package itself re-exports nothing (no shims for old paths)."""
    graph = import_graph()
    crossing = [(a, b) for a, b in graph.edges
                if a.startswith("optimizer.") and b.startswith("optimizer.")
                and a.split(".")[1] != b.split(".")[1] and b != "optimizer.errors"]
    assert crossing == []
    rules = [n for n in graph if n.startswith("optimizer.reuse.rules.")]
    assert len(rules) == 6
    assert not any(graph.has_edge(r, "optimizer.reuse.optimize") for r in rules)
    flat = sorted(p.name for p in (ROOT / "optimizer").glob("*.py"))
    assert flat == ["__init__.py", "errors.py"]
    assert list(graph.successors("optimizer")) == []


def test_no_planner_module_imports_private_names_of_another_module():
    offenders = []
    paths = sorted((ROOT / "optimizer" / "reuse").rglob("*.py")) + sorted((ROOT / "pipelines").rglob("*.py"))
    for path in paths:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in (
                    "optimizer", "pipelines", "provenance", "analysis"):
                offenders += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert offenders == []


def test_reuse_docstring_names_the_algorithm_it_runs():
    assert "preflow-push" in reuse.__doc__ and "Boykov" not in reuse.__doc__
    assert "networkx_cache" not in Path(reuse.__file__).read_text()
