"""The report's figures (matplotlib, Agg backend), each a PNG written into the report folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402

__all__ = ["cdf_figure", "bar_figure", "timeline_figure", "push_rate_figure", "graphlet_figure"]

_DPI = 100


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def cdf_figure(path: Path, values: list[float], xlabel: str, title: str, log: bool = False) -> Path:
    """Empirical CDF of ``values`` (like the study's distribution plots)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    vals = sorted(v for v in values if v is not None)
    if vals:
        n = len(vals)
        ax.step(vals, [(i + 1) / n for i in range(n)], where="post")
        if log and vals[0] > 0:
            ax.set_xscale("log")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction ≤ x")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def bar_figure(path: Path, labels: list[str], total: list[float], wasted: list[float], title: str,
               xlabel: str = "compute (hours)") -> Path:
    """Horizontal bars: total compute with its wasted part."""
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * max(len(labels), 2) + 1.2))
    ys = list(range(len(labels)))[::-1]
    ax.barh(ys, total, color="#c9d6e3", label="all compute")
    ax.barh(ys, wasted, color="#d9534f", label="wasted")
    ax.set_yticks(ys)
    ax.set_yticklabels([lbl if len(lbl) <= 40 else "…" + lbl[-39:] for lbl in labels], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    if not labels:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path)


def timeline_figure(path: Path, series: list[dict]) -> Path:
    """Cumulative trainings (solid) and pushes (dashed) over time for the busiest pipelines:
    the gap between the two lines is the trainings that were never deployed."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, s in enumerate(series):
        color = f"C{i}"
        ax.step(s["trained"], range(1, len(s["trained"]) + 1), where="post", color=color,
                label=f"{s['label'][-28:]}: trainings")
        ax.step(s["pushed"], range(1, len(s["pushed"]) + 1), where="post", color=color, linestyle="--",
                label=f"{s['label'][-28:]}: pushes")
    ax.set_ylabel("cumulative count")
    ax.set_title("trainings vs pushes, busiest pipelines")
    if series:
        ax.legend(fontsize=7, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no graphlets", ha="center", va="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _save(fig, path)


def push_rate_figure(path: Path, weeks: list, rates: list[float], counts: list[int]) -> Path:
    """Share of trainings that were pushed, per week."""
    fig, ax = plt.subplots(figsize=(6.5, 3))
    if weeks:
        ax.plot(weeks, rates, marker="o", ms=3)
        ax2 = ax.twinx()
        ax2.bar(weeks, counts, width=5, alpha=0.15, color="gray")
        ax2.set_ylabel("trainings", color="gray")
    else:
        ax.text(0.5, 0.5, "no graphlets", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("push rate")
    ax.set_title("push rate per week")
    fig.autofmt_xdate()
    return _save(fig, path)


_COLORS = {"upstream": "#9fb8d0", "trainer": "#f0ad4e", "downstream": "#8fcf8f"}


def graphlet_figure(path: Path, title: str, nodes: list[dict], edges: list[tuple[str, str]]) -> Path:
    """Draw one graphlet: executions as squares, artifacts as circles, left to right in
    lineage order, coloured by position (upstream, trainer, downstream)."""
    g = nx.DiGraph()
    for n in nodes:
        g.add_node(n["key"], **n)
    g.add_edges_from((a, b) for a, b in edges if a in g and b in g)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    if g.number_of_nodes():
        if nx.is_directed_acyclic_graph(g):
            for layer, names in enumerate(nx.topological_generations(g)):
                for name in names:
                    g.nodes[name]["layer"] = layer
            pos = nx.multipartite_layout(g, subset_key="layer")
        else:
            pos = nx.spring_layout(g, seed=1)
        for shape, entity in (("s", "execution"), ("o", "artifact")):
            sel = [k for k, d in g.nodes(data=True) if d["entity"] == entity]
            nx.draw_networkx_nodes(g, pos, nodelist=sel, node_shape=shape, ax=ax,
                                   node_color=[_COLORS.get(g.nodes[k]["position"], "#ddd") for k in sel],
                                   node_size=520 if entity == "execution" else 260,
                                   edgecolors=["#c00" if g.nodes[k].get("pushed") else "#333" for k in sel])
        nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=10, edge_color="#777",
                               node_size=520)
        nx.draw_networkx_labels(g, {k: (x, y - 0.07) for k, (x, y) in pos.items()},
                                labels={k: d["label"] for k, d in g.nodes(data=True)}, font_size=6, ax=ax)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    return _save(fig, path)
