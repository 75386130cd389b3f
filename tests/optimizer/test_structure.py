"""Structure the review asked for: no planner module reaches into another's private names, and
the reuse planner's docstring names the flow algorithm it runs."""

from __future__ import annotations

import ast
from pathlib import Path

import optimizer.reuse as reuse
from optimizer.optimize import RULES

ROOT = Path(__file__).resolve().parents[2]


PLANNER = ("plan", "dag", "reuse", "materialize", "costs", "optimize", *(r.__name__ for r in RULES))


def test_no_planner_module_imports_private_names_of_another_module():
    offenders = []
    paths = [ROOT / "optimizer" / f"{m}.py" for m in PLANNER] + sorted((ROOT / "pipelines").rglob("*.py"))
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
