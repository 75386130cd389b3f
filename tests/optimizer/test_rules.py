"""Every rule of the optimizer against its fixture file of titled DAG -> expected plan cases
(``tests/optimizer/fixtures/<rule>.toml``), all read by one loader; then the whole chain.

A case gives ``edges``, ``nodes`` (``compute``, ``load`` when stored, ``size``, ``recurrence``,
``measured``, ``startup`` for engine steps, ``fingerprint``), ``outputs``, optional
``config`` (OptimizerConfig fields, ``budget`` for budget_bytes), ``costs`` (``startup_s``,
``store`` entries) and ``plan`` (the input plan; default: the plan without optimizer), and
``expect``: any of ``decisions``, ``write``, ``keep``, ``evict``, ``recreation_s``, ``note``
(a substring of the rule's note).
"""

from __future__ import annotations

import importlib
import math
import tomllib
from pathlib import Path

import networkx as nx
import pytest

from optimizer.reuse.costs import CostModel, NodeCost, PipelineCosts
from optimizer.reuse.config import OptimizerConfig
from optimizer.reuse.optimize import RULES, annotate, initial_plan, optimize
from optimizer.reuse.plan import Plan, StoreEntry
from optimizer.reuse.execution import check_plan

FIXTURES = Path(__file__).parent / "fixtures"
MODEL = CostModel()


def load_cases() -> list[tuple[str, dict]]:
    cases = []
    for path in sorted(FIXTURES.glob("*.toml")):
        for case in tomllib.loads(path.read_text())["case"]:
            cases.append((path.stem, case))
    return cases


def build(case: dict) -> tuple[nx.DiGraph, PipelineCosts, OptimizerConfig, Plan]:
    g = nx.DiGraph()
    nodes = {}
    for name, spec in case["nodes"].items():
        g.add_node(name, materialized="load" in spec, needs_startup=spec.get("startup", False),
                   fingerprint=spec.get("fingerprint", name))
        size = int(spec.get("size", 1000))
        nodes[name] = NodeCost(
            compute_cost=float(spec["compute"]), load_cost=float(spec.get("load", MODEL.load_cost(size))),
            write_cost=float(spec.get("write", MODEL.write_cost(size))), size_bytes=size,
            basis="fingerprint" if spec.get("measured", True) else "default",
            recurrence=spec.get("recurrence"))
    g.add_edges_from(tuple(e) for e in case.get("edges", ()))
    c = case.get("costs", {})
    store = tuple(StoreEntry(key=e["key"], size_bytes=int(e["size"]), recreation_cost=float(e.get("recreation", 0.0)),
                             load_cost=float(e.get("load", 0.0)), recurrence=float(e.get("recurrence", 0.5)),
                             last_used=float(e.get("last_used", 0.0))) for e in c.get("store", ()))
    costs = PipelineCosts(nodes=nodes, startup_s=float(c.get("startup_s", 0.0)), store=store)
    cfg = dict(case.get("config", {}))
    if "budget" in cfg:
        cfg["budget_bytes"] = cfg.pop("budget")
    config = OptimizerConfig(outputs=tuple(case["outputs"]), **cfg)
    plan = initial_plan(g, config.outputs)
    given = case.get("plan")
    if given:
        plan = plan.replace(decisions={**plan.decisions, **given.get("decisions", {})},
                            write=frozenset(given.get("write", ())), keep=frozenset(given.get("keep", ())))
    return g, costs, config, plan


CASES = load_cases()


@pytest.mark.parametrize(("rule", "case"), CASES, ids=[f"{r}: {c['title']}" for r, c in CASES])
def test_rule_fixture(rule, case):
    g, costs, config, plan = build(case)
    fn = getattr(importlib.import_module(f"optimizer.reuse.rules.{rule}"), rule)
    out = fn(plan, annotate(g, costs), costs, config)
    exp = case["expect"]
    if "decisions" in exp:
        assert dict(out.decisions) == exp["decisions"]
    for name in ("write", "keep"):
        if name in exp:
            assert sorted(getattr(out, name)) == sorted(exp[name]), name
    if "evict" in exp:
        assert list(out.evict) == exp["evict"]
    if "recreation_s" in exp:
        assert dict(out.recreation_s) == pytest.approx(exp["recreation_s"])
    if "note" in exp:
        assert any(exp["note"] in n for n in out.notes), out.notes
    assert plan == build(case)[3]  # the input plan is a value: the rule left it as it was


def test_every_rule_has_a_fixture_file_with_cases():
    names = {r.__name__ for r in RULES}
    files = {p.stem for p in FIXTURES.glob("*.toml")}
    assert names == files
    assert all(sum(1 for r, _ in CASES if r == n) >= 3 for n in names)


@pytest.mark.parametrize(("rule", "case"), CASES, ids=[f"{r}: {c['title']}" for r, c in CASES])
def test_the_whole_chain_gives_a_feasible_plan_that_writes_only_what_it_computes(rule, case):
    g, costs, config, _ = build(case)
    plan = optimize(g, costs, config)
    check_plan(annotate(g, costs), config.outputs, plan.decisions)
    assert all(plan.decisions[n] == "compute" and not g.nodes[n]["materialized"] for n in plan.write)
    assert all(plan.decisions[n] != "prune" for n in plan.keep)
    assert len(plan.notes) == len(RULES)


def test_without_reuse_the_plan_is_the_plan_without_optimizer():
    g, costs, _, _ = build(CASES[0][1])
    config = OptimizerConfig(outputs=tuple(CASES[0][1]["outputs"]), reuse=False, budget_bytes=0)
    plan = optimize(g, costs, config)
    assert plan == initial_plan(g, config.outputs) and math.isinf(OptimizerConfig(outputs=()).budget)


def test_the_example_of_docs_optimizer_runs():
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "optimizer.md").read_text()
    [example] = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "optimize(" in b]
    exec(compile(example, "docs/optimizer.md", "exec"), {})
