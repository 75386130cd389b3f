"""Structure the review asked for: no module reaches into another's private names, the reuse
planner's docstring names the flow algorithm it runs, the hook inserts rows by column name
with the role list of the feature SQL."""

from __future__ import annotations

import ast
from pathlib import Path

import optimizer.hook as hook
import optimizer.reuse as reuse
from optimizer.features import PATH_ROLES

ROOT = Path(__file__).resolve().parents[2]


def test_no_package_imports_private_names_of_another_module():
    offenders = []
    for path in sorted((ROOT / "optimizer").rglob("*.py")) + sorted((ROOT / "pipelines").rglob("*.py")):
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


def test_hook_inserts_by_column_name_with_the_shared_role_list():
    src = Path(hook.__file__).read_text()
    inserts = [line.strip() for line in src.splitlines() if "INSERT INTO" in line]
    assert inserts and all(line.endswith("BY NAME") for line in inserts)
    assert hook.PATH_ROLES is PATH_ROLES and "'inference'" not in src and '"inference"' not in src
