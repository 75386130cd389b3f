"""Draw a pipeline DAG as inline SVG with Graphviz ``dot`` (Debian package ``graphviz``).

Nodes are drawn in their run's state (executed, cached, failed, running, skipped, absent; in an
asynchronous pipeline also independent and elsewhere) with their seconds; executed work that led to no deployment gets an orange frame and says
"wasted". Names from MLMD are untrusted: they reach ``dot`` only inside HTML-like labels with
every character escaped, node ids are our own (``n0``, ``n1``, ...), and the SVG's comments
and prolog are dropped. Without ``dot`` on the PATH :func:`render_svg` returns None and the
page lists the nodes instead.
"""

from __future__ import annotations

import functools
import html
import logging
import re
import shutil
import subprocess

__all__ = ["STATE_LABEL", "STATE_NOTE", "STATE_STYLE", "dag_dot", "render_svg", "dot_available"]

log = logging.getLogger(__name__)

FONT = "DejaVu Sans,Helvetica,Arial,sans-serif"

# state -> (fill, border, text colour, border style)
STATE_STYLE = {
    "executed": ("#e8f1ff", "#2f6fdb", "#0f2a55", "solid"),
    "cached": ("#eef1f4", "#8d99a8", "#3d4653", "solid"),
    "failed": ("#fde8e8", "#c93030", "#5c1010", "solid"),
    "running": ("#fff5d6", "#c99400", "#4d3a00", "solid"),
    "skipped": ("#ffffff", "#9aa3af", "#6b7480", "dashed"),
    "absent": ("#fbfbfc", "#d3d8de", "#a0a7b0", "dotted"),
    "independent": ("#f6f2ff", "#9b86d6", "#4b3a80", "dashed"),
    "elsewhere": ("#fbfbfc", "#c3c9d1", "#8d96a3", "dashed"),
    None: ("#ffffff", "#5b6474", "#1d232b", "solid"),
}
# What a state is called on a page where its name alone would mislead, and what each means.
STATE_LABEL = {"independent": "runs on its own", "elsewhere": "other training"}
STATE_NOTE = {
    "executed": "ran and computed in this run",
    "cached": "reused the output of an earlier run",
    "failed": "failed, was canceled or died",
    "running": "not finished",
    "skipped": "did not run in this run, though it ran before and after it",
    "absent": "not part of the pipeline yet or any more",
    "independent": "runs on its own schedule: part of no training",
    "elsewhere": "part of other trainers' trainings, not of this one",
}
WASTED = "#e07b00"


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _seconds(s) -> str:
    if s is None:
        return ""
    return f"{s:,.2f} s" if s < 100 else f"{s:,.0f} s"


def dag_dot(dag: dict, nodes: list[dict] | None = None) -> str:
    """DOT text of ``dag`` (:func:`analysis.pipeline_view.pipeline_dag`); with ``nodes``
    (:func:`analysis.pipeline_view.run_nodes`) every node is drawn in its run's state."""
    ids = {n["component"]: f"n{i}" for i, n in enumerate(dag["nodes"])}
    state = {n["component"]: n for n in (nodes or [])}
    lines = [
        "digraph G {",
        f'  graph [rankdir=LR, bgcolor="transparent", nodesep=0.3, ranksep=0.55, pad=0.15, fontname="{FONT}"];',
        f'  node [shape=box, style="rounded,filled", fontname="{FONT}", fontsize=12, margin="0.16,0.08", penwidth=1.4];',
        f'  edge [fontname="{FONT}", fontsize=10, color="#9aa3af", fontcolor="#5b6474", arrowsize=0.7, penwidth=1.1];',
    ]
    for i, n in enumerate(dag["nodes"]):
        c = n["component"]
        s = state.get(c, {})
        st = s.get("state")
        fill, border, text, style = STATE_STYLE.get(st, STATE_STYLE[None])
        wasted = bool(s.get("wasted"))
        rows = [f'<B>{_e(c)}</B>']
        kind = n.get("role") or (n.get("type_name") or "").rsplit(".", 1)[-1]
        if kind:
            rows.append(f'<FONT POINT-SIZE="9" COLOR="#6b7480">{_e(kind)}</FONT>')
        if st is not None:
            detail = STATE_LABEL.get(st, st)
            if s.get("seconds") is not None:
                detail += " · " + _seconds(s["seconds"])
            rows.append(f'<FONT POINT-SIZE="9">{_e(detail)}</FONT>')
            if wasted:
                rows.append(f'<FONT POINT-SIZE="9" COLOR="{WASTED}"><B>wasted</B></FONT>')
            elif s.get("undetermined"):
                rows.append('<FONT POINT-SIZE="9" COLOR="#6b7480">undetermined</FONT>')
        label = "<" + "<BR/>".join(rows) + ">"
        classes = " ".join(x for x in ("dag-node", f"state-{st}" if st else "", "wasted" if wasted else "") if x)
        lines.append(
            f'  {ids[c]} [label={label}, id="dag-node-{i}", class="{classes}", tooltip="{_e(n.get("type_name") or c)}", '
            f'fillcolor="{fill}", color="{WASTED if wasted else border}", fontcolor="{text}", '
            f'style="rounded,filled,{style}"{", penwidth=2.6" if wasted else ""}];'
        )
    for e in dag["edges"]:
        if e["from"] in ids and e["to"] in ids:
            label = ", ".join(e["artifact_types"])
            lines.append(f'  {ids[e["from"]]} -> {ids[e["to"]]} [label=<{_e(label)}>];')
    lines.append("}")
    return "\n".join(lines)


def dot_available() -> bool:
    return shutil.which("dot") is not None


_COMMENT = re.compile(r"<!--.*?-->", re.S)


@functools.lru_cache(maxsize=256)
def render_svg(dot_text: str, timeout_s: float = 20.0) -> str | None:
    """The ``<svg>`` element ``dot -Tsvg`` draws for ``dot_text``, scaled to fit its
    container (never wider than drawn); None when ``dot`` is missing or fails."""
    exe = shutil.which("dot")
    if exe is None:
        log.warning("Graphviz `dot` is not installed (apt-get install graphviz): DAGs are listed, not drawn")
        return None
    try:
        done = subprocess.run([exe, "-Tsvg"], input=dot_text, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("dot failed: %s", exc)
        return None
    if done.returncode != 0 or "<svg" not in done.stdout:
        log.warning("dot failed (%s): %s", done.returncode, done.stderr.strip()[:500])
        return None
    svg = _COMMENT.sub("", done.stdout[done.stdout.index("<svg"):])
    m = re.match(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg)
    if m:
        width = float(m.group(1))
        svg = svg.replace(m.group(0), f'<svg class="dag" role="img" style="max-width:{width:.0f}pt"', 1)
    return svg.strip()
