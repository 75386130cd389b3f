"""Planner benchmark: reuse-plan time at scale, exactness, and materialization policies.

1. Plan time of ``plan_execution`` on 10,000-node DAGs of several shapes, against the plain
   formulation (the whole project-selection network through ``networkx.minimum_cut``).
2. Agreement of the min-cut plan with brute force on random small DAGs (cost equality).
3. Simulated iterations: random pipelines edited the way data scientists work (change a
   step, revert, re-run unchanged, add data), each policy choosing what to store under the
   same byte budget and evicting with its own utility; cumulative cost = plan cost
   (``plan_execution``) + writes. Ratios are against storing nothing.

Run: ``.venv/bin/python benchmarks/planner.py`` (``--quick`` for a smoke run). The last line
is a JSON object with every figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import statistics
import time

import networkx as nx

import common  # noqa: F401  (the working tree's packages first on sys.path)
from optimizer.reuse.costs import CostModel
from optimizer.reuse.materialize import (
    POLICIES,
    choose_evictions,
    choose_materializations,
    estimate_recurrence,
    recreation_costs,
)
from optimizer.reuse.plan import PlanError, StoreEntry
from optimizer.reuse.execution import execution_plan

INF = math.inf


# --------------------------------------------------------------------------- 1. plan time
def random_dag(n: int, seed: int, p_stored: float, load_mu: float, window: int = 200) -> nx.DiGraph:
    """Pipeline-like DAG: each node reads 1-3 recent nodes; lognormal costs; some stored."""
    rng = random.Random(seed)
    g = nx.DiGraph()
    for v in range(n):
        stored = rng.random() < p_stored
        g.add_node(
            v,
            compute_cost=rng.lognormvariate(0, 1.5),
            load_cost=rng.lognormvariate(load_mu, 1.5) if stored else INF,
        )
        if v:
            for _ in range(rng.choice((1, 1, 2, 3))):
                g.add_edge(rng.randrange(max(0, v - window), v), v)
    return g


def plain_min_cut_plan_cost(dag: nx.DiGraph, outputs) -> float:
    """Reference: the textbook project-selection network, solved by networkx.minimum_cut."""
    s, t = "s", "t"
    f = nx.DiGraph()
    f.add_nodes_from((s, t))
    const = 0.0
    for v, d in dag.nodes(data=True):
        c, l = d["compute_cost"], d.get("load_cost", INF)
        a, b = ("a", v), ("b", v)
        if l == INF:
            f.add_edge(a, t, capacity=c)
            for p in dag.pred[v]:
                f.add_edge(a, ("a", p))
        else:
            f.add_edge(a, t, capacity=l)
            f.add_edge(b, a)
            if c < l:
                f.add_edge(s, b, capacity=l - c)
                const += c - l
            else:
                f.add_edge(b, t, capacity=c - l)
            for p in dag.pred[v]:
                f.add_edge(b, ("a", p))
    for o in outputs:
        f.add_edge(s, ("a", o))
    value, _ = nx.minimum_cut(f, s, t, flow_func=nx.algorithms.flow.preflow_push)
    return value + const


def bench_plan_time(n: int, repeats: int, with_reference: bool) -> dict:
    shapes = {
        "none stored, sinks": (0.0, 0.0, "sinks"),
        "30% stored, cheap loads, sinks": (0.3, -1.0, "sinks"),
        "50% stored, loads ~ compute, sinks": (0.5, 0.0, "sinks"),
        "50% stored, 50 random outputs": (0.5, 0.0, "random"),
        "90% stored, dear loads, sinks": (0.9, 0.5, "sinks"),
    }
    out = {}
    for k, (name, (p, mu, which)) in enumerate(shapes.items()):
        g = random_dag(n, seed=k, p_stored=p, load_mu=mu)
        outputs = (
            [v for v in g if g.out_degree(v) == 0]
            if which == "sinks"
            else random.Random(k).sample(range(n), 50)
        )
        times, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            plan = execution_plan(g, outputs)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        row = {"median_s": statistics.median(times), "max_s": max(times),
               "median_cpu_s": statistics.median(cpu), "max_cpu_s": max(cpu), "cost": plan.cost}
        if with_reference:
            t0 = time.perf_counter()
            ref = plain_min_cut_plan_cost(g, outputs)
            row["plain_min_cut_s"] = time.perf_counter() - t0
            row["same_cost"] = math.isclose(ref, plan.cost, rel_tol=1e-9, abs_tol=1e-6)
            row["speedup"] = row["plain_min_cut_s"] / row["median_s"]
        out[name] = row
        extra = (
            f"  plain min-cut {row['plain_min_cut_s']:.2f} s ({row['speedup']:.1f}x), same cost: {row['same_cost']}"
            if with_reference
            else ""
        )
        print(f"  {name:36s} median {row['median_s']:.3f} s (cpu {row['median_cpu_s']:.3f} s)"
              f"  max {row['max_s']:.3f} s{extra}")
    return out


def bench_materialize_time(sizes: list[int]) -> dict:
    """CPU seconds of choose_materializations per policy on random DAGs, budget 20% of bytes."""
    out: dict[str, dict[str, float]] = {}
    for n in sizes:
        g = random_dag(n, seed=n, p_stored=0.1, load_mu=-1.0, window=min(200, n))
        rng = random.Random(n)
        for v in g:
            g.nodes[v]["size_bytes"] = int(rng.lognormvariate(15, 1))
        budget = sum(d["size_bytes"] for _, d in g.nodes(data=True)) // 5
        row = {}
        for policy in POLICIES:
            c0 = time.process_time()
            choose_materializations(g, budget, policy=policy)
            row[policy] = time.process_time() - c0
        out[str(n)] = row
        print(f"  {n:6d} nodes: " + "  ".join(f"{p} {t:.3f} s" for p, t in row.items()))
    return out


# --------------------------------------------------------------------------- 2. agreement
def brute_force_cost(dag: nx.DiGraph, outputs) -> float:
    nodes = list(dag)
    best = INF
    for mask in range(1 << len(nodes)):
        computed = {nodes[i] for i in range(len(nodes)) if mask >> i & 1}
        cost = sum(dag.nodes[v]["compute_cost"] for v in computed)
        needed = set(outputs) | {p for v in computed for p in dag.pred[v]}
        cost += sum(dag.nodes[v]["load_cost"] for v in needed - computed)
        best = min(best, cost)
    return best


def bench_agreement(cases: int, max_nodes: int) -> dict:
    rng = random.Random(42)
    agree = feasible = 0
    for _ in range(cases):
        n = rng.randint(1, max_nodes)
        g = nx.DiGraph()
        for v in range(n):
            g.add_node(
                v,
                compute_cost=INF if rng.random() < 0.05 else rng.choice((0.0, 1.0, rng.uniform(0, 10))),
                load_cost=INF if rng.random() < 0.5 else rng.choice((0.0, 1.0, rng.uniform(0, 10))),
            )
        g.add_edges_from((i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.35)
        outputs = rng.sample(range(n), rng.randint(1, n))
        best = brute_force_cost(g, outputs)
        try:
            cost = execution_plan(g, outputs).cost
        except PlanError:  # infeasible: agreement only when brute force finds none either
            cost = INF
        if best < INF:
            feasible += 1
        agree += (cost == best == INF) or math.isclose(cost, best, rel_tol=1e-9, abs_tol=1e-9)
    rate = agree / cases
    print(f"  {cases} random DAGs of 1-{max_nodes} nodes ({feasible} feasible): agreement {rate:.4f}")
    return {"cases": cases, "feasible": feasible, "agreement": rate}


# --------------------------------------------------------------------------- 3. iterations
class Workload:
    """A random pipeline and a data scientist's sequence of edits to it.

    Components have their own propensity to be edited (a few are edited most of the time,
    as in real iterative work); edits change a component's version, so its fingerprint and
    every descendant's change. Costs and sizes are drawn per component and jittered per version.
    """

    def __init__(self, seed: int, model: CostModel) -> None:
        rng = self.rng = random.Random(seed)
        m = rng.randint(8, 24)
        self.sources = list(range(rng.randint(1, 2)))
        g = nx.DiGraph()
        g.add_nodes_from(range(m))
        for v in range(len(self.sources), m):
            k = rng.choice((1, 1, 2, 2, 3))
            for p in rng.sample(range(v), min(k, v)):
                g.add_edge(p, v)
        self.dag = g
        self.model = model
        self.compute = {v: rng.lognormvariate(1.0, 1.2) for v in g}
        # data-heavy early steps, small models and metrics late
        self.size = {v: int(rng.lognormvariate(17.5 - 3.0 * v / m, 1.0)) for v in g}
        weights = [rng.paretovariate(1.2) for _ in g]
        self.edit_weight = {v: w for v, w in zip(g, weights) if v not in self.sources}
        self.version = {v: 0 for v in g}
        self.past: dict[int, list[int]] = {v: [0] for v in g}
        self.next_version = 1

    def step(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.2:
            return "rerun"
        if r < 0.35:
            v = rng.choice(self.sources)
            self._set(v, self._new())
            return "add data"
        if r < 0.55:
            changed = [v for v in self.dag if len(self.past[v]) > 1]
            if changed:
                v = rng.choice(changed)
                self._set(v, rng.choice([x for x in self.past[v] if x != self.version[v]]))
                return "revert"
        comps = list(self.edit_weight)
        v = rng.choices(comps, weights=[self.edit_weight[c] for c in comps])[0]
        self._set(v, self._new())
        return "modify"

    def _new(self) -> int:
        self.next_version += 1
        return self.next_version

    def _set(self, v: int, version: int) -> None:
        self.version[v] = version
        if version not in self.past[v]:
            self.past[v].append(version)

    def fingerprints(self) -> dict[int, str]:
        fp: dict[int, str] = {}
        for v in nx.topological_sort(self.dag):
            key = f"{v}:{self.version[v]}:" + ",".join(fp[p] for p in sorted(self.dag.pred[v]))
            fp[v] = hashlib.sha1(key.encode()).hexdigest()[:16]
        return fp

    def jitter(self, fp: str) -> float:
        return 0.8 + 0.4 * (int(fp[:8], 16) / 0xFFFFFFFF)


def simulate(seed: int, policy: str, iterations: int, budget_fraction: float) -> dict:
    model = CostModel()
    w = Workload(seed, model)
    budget = int(budget_fraction * sum(w.size.values()))
    store: dict[str, StoreEntry] = {}
    history: list[tuple[int, int, str]] = []
    total = writes = 0.0
    per_kind: dict[str, float] = {}
    for it in range(iterations):
        kind = "first" if it == 0 else w.step()
        fp = w.fingerprints()
        g = nx.DiGraph()
        for v in w.dag:
            size = int(w.size[v] * w.jitter(fp[v]))
            g.add_node(
                fp[v],
                component=v,
                compute_cost=w.compute[v] * w.jitter(fp[v][::-1]),
                size_bytes=size,
                est_load_cost=model.load_cost(size),
                write_cost=model.write_cost(size),
                load_cost=store[fp[v]].load_cost if fp[v] in store else INF,
            )
        g.add_edges_from((fp[u], fp[v]) for u, v in w.dag.edges)
        sinks = [fp[v] for v in w.dag if w.dag.out_degree(v) == 0]
        plan = execution_plan(g, sinks)
        chosen = choose_materializations(
            g, budget, policy=policy, history=history or None, plan=plan.decisions
        )
        new = [v for v in chosen if v not in store]
        cost = plan.cost + sum(g.nodes[v]["write_cost"] for v in new)
        writes += sum(g.nodes[v]["write_cost"] for v in new)
        total += cost
        per_kind[kind] = per_kind.get(kind, 0.0) + cost
        history.extend((it, v, fp[v]) for v in w.dag)
        # store bookkeeping: new entries, uses, then eviction by the policy's own utility
        rc = recreation_costs(g, [v for v in g if v in store or v in chosen])
        rec = estimate_recurrence(g, history)
        for v in chosen:
            old = store.get(v)
            store[v] = StoreEntry(
                key=v,
                size_bytes=g.nodes[v]["size_bytes"],
                recreation_cost=rc[v],
                load_cost=g.nodes[v]["est_load_cost"],
                recurrence=rec[v],
                frequency=(old.frequency + 1) if old else 1.0,
                last_used=it,
            )
        for v, d in plan.decisions.items():
            if d == "load" and v in store and v not in chosen:
                e = store[v]
                store[v] = StoreEntry(e.key, e.size_bytes, e.recreation_cost, e.load_cost,
                                      rec.get(v, e.recurrence), e.frequency + 1, it)
        for key in choose_evictions(list(store.values()), budget, policy=policy, protect=chosen):
            del store[key]
    return {"total": total, "writes": writes, "per_kind": per_kind,
            "stored_bytes": sum(e.size_bytes for e in store.values()), "budget": budget}


def bench_iterations(sequences: int, iterations: int, fractions: list[float]) -> dict:
    results: dict[str, dict] = {}
    for frac in fractions:
        totals = {p: [] for p in POLICIES}
        for seed in range(sequences):
            for p in POLICIES:
                totals[p].append(simulate(seed, p, iterations, frac)["total"])
        none = sum(totals["none"])
        row = {p: {"cumulative": sum(t), "ratio_vs_none": none / sum(t),
                   "wins_vs_helix": sum(a <= b + 1e-9 for a, b in zip(t, totals["helix"])) / sequences}
               for p, t in totals.items()}
        best = min(POLICIES, key=lambda p: row[p]["cumulative"])
        results[f"budget {frac:.0%}"] = {"policies": row, "best": best}
        print(f"  budget {frac:.0%} of the pipeline's output bytes ({sequences} sequences x {iterations} runs):")
        for p in POLICIES:
            r = row[p]
            print(f"    {p:17s} cumulative {r['cumulative']:10.1f} s  {r['ratio_vs_none']:5.2f}x less than none"
                  f"  (no worse than helix in {r['wins_vs_helix']:.0%} of sequences)")
        print(f"    best: {best}")
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--part", choices=("all", "plan", "agreement", "iterations"), default="all",
                    help="run one part only")
    args = ap.parse_args()
    quick = args.quick
    nodes = args.nodes if not quick else 2000
    summary: dict = {"benchmark": "planner", "nodes": nodes}
    if args.part in ("all", "plan"):
        print(f"1. plan_execution on {nodes:,}-node DAGs (wall time; cpu time is less hit by a busy machine)")
        plan_time = bench_plan_time(nodes, repeats=1 if quick else 3, with_reference=True)
        summary["plan_time_max_s"] = max(r["max_s"] for r in plan_time.values())
        summary["plan_time_max_median_cpu_s"] = max(r["median_cpu_s"] for r in plan_time.values())
        summary["speedup_vs_plain_min_cut_min"] = min(r["speedup"] for r in plan_time.values())
        summary["plan_time"] = plan_time
        print("1b. choose_materializations CPU time (budget 20% of the bytes)")
        summary["materialize_cpu_s"] = bench_materialize_time([100, 1000] if not quick else [100])
    if args.part in ("all", "agreement"):
        print("2. min-cut plan vs brute force")
        summary["agreement"] = bench_agreement(200 if quick else 2000, 8)
    if args.part in ("all", "iterations"):
        print("3. simulated iterations: cumulative cost per materialization policy")
        iters = bench_iterations(4 if quick else 30, 12 if quick else 30,
                                 [0.1, 0.3] if quick else [0.05, 0.15, 0.4])
        summary["iterations"] = iters
        summary["best_policy_per_budget"] = {k: v["best"] for k, v in iters.items()}
        summary["frugal_ratio_vs_none"] = {
            k: v["policies"]["frugal"]["ratio_vs_none"] for k, v in iters.items()
        }
        summary["frugal_ratio_vs_helix"] = {
            k: v["policies"]["helix"]["cumulative"] / v["policies"]["frugal"]["cumulative"]
            for k, v in iters.items()
        }
        summary["frugal_ratio_vs_experiment_graph"] = {
            k: v["policies"]["experiment_graph"]["cumulative"] / v["policies"]["frugal"]["cumulative"]
            for k, v in iters.items()
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
