"""The batch report: one self-contained folder (index.html, PNG figures, summary.json).

:func:`write_report` brings the analysis up to date (incremental, a no-op when nothing
changed), computes every figure with SQL (:mod:`analysis.report.summary`), draws the charts
(:mod:`analysis.report.figures`) and writes the folder atomically: into a temporary sibling
folder first, renamed into place at the end. Every number in the page carries
``data-key="section.field"`` naming its value in ``summary.json``.
"""

from __future__ import annotations

import html
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from analysis.analyze import analyze, open_warehouse
from analysis.report.figures import bar_figure, cdf_figure, graphlet_figure, push_rate_figure, timeline_figure
from analysis.report.summary import compute_summary

__all__ = ["write_report", "compute_summary", "ReportSection", "replace_folder"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportSection:
    """A section that a later stage (e.g. the pruning replay) adds to the report.

    ``numbers`` land in ``summary.json`` under ``key`` and are shown as a table (label ->
    value, formats ``int``, ``float``, ``pct`` or ``text``); ``figures`` are matplotlib
    figures saved as ``<key>_<name>.png``. The analysis package never imports the stages
    that build these: they are handed in by the caller.
    """

    key: str
    title: str
    intro: str = ""
    numbers: Mapping[str, tuple[str, Any, str]] = field(default_factory=dict)  # name -> (label, value, format)
    figures: Mapping[str, Any] = field(default_factory=dict)  # name -> matplotlib Figure


def replace_folder(new: Path, out_dir: Path) -> None:
    """Put the finished folder ``new`` in place of ``out_dir`` by renames (a reader never sees a half-written one)."""
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
        new.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(out_dir)


def write_report(warehouse, out_dir, roles=None, sections: Sequence[ReportSection] = (), *,
                 analyze_first: bool = True) -> Path:
    """Analyse ``warehouse`` (path or DuckDB connection) if needed and write the report into
    ``out_dir``; returns the path of ``index.html``. ``sections`` are appended at the end.
    ``analyze_first=False``: the caller keeps the analysis current (the service does)."""
    out_dir = Path(out_dir)
    if analyze_first:
        analyze(warehouse, roles=roles)
    con, owned = open_warehouse(warehouse)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
        try:
            summary = compute_summary(con)
            figures = _draw(con, tmp, summary)
            extra = "".join(_section_html(summary, section, tmp) for section in sections)
            (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
            (tmp / "index.html").write_text(_html(summary, figures, extra))
            replace_folder(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        if owned:
            con.close()
    return out_dir / "index.html"


def _section_html(summary: dict, section: ReportSection, folder: Path) -> str:
    """Render one extra section; records its numbers in ``summary`` and saves its figures."""
    from analysis.report.figures import _save

    if section.key in summary:
        raise ValueError(f"report section key {section.key!r} clashes with a built-in section")
    summary[section.key] = {name: value for name, (_, value, _) in section.numbers.items()}
    rows = []
    for name, (label, value, kind) in section.numbers.items():
        shown = html.escape(str(value)) if kind == "text" else _n(summary, f"{section.key}.{name}", kind)
        rows.append(f"<tr><td>{html.escape(label)}</td><td>{shown}</td></tr>")
    images = []
    for name, fig in section.figures.items():
        src = f"{section.key}_{name}.png"
        _save(fig, folder / src)
        images.append(_img(src, f"{section.title}: {name}"))
    table = f"<table><tbody>{''.join(rows)}</tbody></table>" if rows else ""
    pair = f'<div class="pair">{"".join(images)}</div>' if images else ""
    return f"<h2>{html.escape(section.title)}</h2>\n<p>{html.escape(section.intro)}</p>\n{table}\n{pair}\n"


def _draw(con, folder: Path, summary: dict) -> dict[str, str]:
    figs: dict[str, str] = {}

    def col(sql: str) -> list:
        return [r[0] for r in con.execute(sql).fetchall()]

    cdf_figure(folder / "cdf_lifespan.png", col(
        """SELECT epoch(max(coalesce(update_time, create_time)) - min(create_time)) / 86400
           FROM analysis_executions GROUP BY source_id, pipeline"""),
        "pipeline lifespan (days)", "pipeline lifespan")
    figs["lifespan"] = "cdf_lifespan.png"
    cdf_figure(folder / "cdf_trainings.png", col(
        """SELECT count(g.graphlet_id) FROM (SELECT DISTINCT source_id, pipeline FROM analysis_executions) p
           LEFT JOIN graphlets g USING (source_id, pipeline) GROUP BY p.source_id, p.pipeline"""),
        "trainings per pipeline", "trainings per pipeline")
    figs["trainings"] = "cdf_trainings.png"
    cdf_figure(folder / "cdf_graphlet_size.png", col("SELECT n_executions FROM graphlets"),
               "executions per graphlet", "graphlet size")
    figs["sizes"] = "cdf_graphlet_size.png"
    bc = summary["waste_by_component"]
    bar_figure(folder / "waste_by_component.png", [f"{r['role']}: {r['component_type'].split('.')[-1]}" for r in bc],
               [r["compute_h"] for r in bc], [r["wasted_h"] for r in bc], "wasted compute by component type")
    figs["by_component"] = "waste_by_component.png"
    bp = summary["waste_by_pipeline"]
    bar_figure(folder / "waste_by_pipeline.png", [f"{r['source_id']}/{r['pipeline']}" for r in bp],
               [r["compute_h"] for r in bp], [r["wasted_h"] for r in bp], "most wasteful pipelines")
    figs["by_pipeline"] = "waste_by_pipeline.png"
    weeks = con.execute(
        """SELECT date_trunc('week', started_at) AS w, avg(CAST(pushed AS INTEGER)), count(*)
           FROM graphlets GROUP BY 1 ORDER BY 1""").fetchall()
    push_rate_figure(folder / "push_rate.png", [w[0] for w in weeks], [w[1] for w in weeks], [w[2] for w in weeks])
    figs["push_rate"] = "push_rate.png"
    series = []
    for b in summary["busiest_pipelines"]:
        rows = con.execute(
            "SELECT started_at, pushed, ended_at FROM graphlets WHERE source_id = ? AND pipeline = ? ORDER BY 1",
            [b["source_id"], b["pipeline"]]).fetchall()
        series.append({"label": f"{b['source_id']}/{b['pipeline']}", "trained": [r[0] for r in rows],
                       "pushed": sorted(r[2] or r[0] for r in rows if r[1])})
    timeline_figure(folder / "timeline.png", series)
    figs["timeline"] = "timeline.png"
    for key, gid in summary["example_graphlets"].items():
        nodes, edges = _graphlet_graph(con, gid) if gid else ([], [])
        graphlet_figure(folder / f"graphlet_{key}.png", f"{key} graphlet {gid or '(none in this corpus)'}", nodes, edges)
        figs[f"graphlet_{key}"] = f"graphlet_{key}.png"
    return figs


def _graphlet_graph(con, graphlet_id: str) -> tuple[list[dict], list[tuple[str, str]]]:
    members = con.execute(
        """SELECT m.entity, m.entity_id, m.role, m.position, m.source_id,
                  coalesce(x.component, a.type_name), a.pushed
           FROM graphlet_members m
           LEFT JOIN analysis_executions x ON m.entity = 'execution' AND x.source_id = m.source_id
                 AND x.execution_id = m.entity_id
           LEFT JOIN analysis_artifacts a ON m.entity = 'artifact' AND a.source_id = m.source_id
                 AND a.artifact_id = m.entity_id
           WHERE m.graphlet_id = ?""", [graphlet_id]).fetchall()
    nodes, seen = [], set()
    for entity, eid, role, position, _, name, pushed in members:
        key = f"{entity[0]}{eid}"
        if key in seen:
            continue
        seen.add(key)
        short = (name or "?").split(".")[-1]
        nodes.append({"key": key, "entity": entity, "position": position, "pushed": bool(pushed),
                      "label": f"{short}\n#{eid}" + ("\npushed" if pushed else "")})
    source = members[0][4] if members else None
    ev = con.execute(
        """SELECT artifact_id, execution_id, type FROM events WHERE source_id = ?
           AND type IN ('INPUT', 'OUTPUT') AND execution_id IN
             (SELECT entity_id FROM graphlet_members WHERE graphlet_id = ? AND entity = 'execution')""",
        [source, graphlet_id]).fetchall()
    edges = [(f"e{x}", f"a{a}") if t == "OUTPUT" else (f"a{a}", f"e{x}") for a, x, t in ev]
    return nodes, edges


def _fmt(value, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "int":
        return f"{int(value):,}"
    return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"


def _n(summary: dict, key: str, kind: str = "int") -> str:
    section, field = key.split(".", 1)
    value = summary[section]
    for part in field.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return (f'<span class="num" data-key="{html.escape(key)}" data-format="{kind}">'
            f"{_fmt(value, kind)}</span>")


def _table(summary: dict, section: str, columns: list[tuple[str, str, str]]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for label, _, _ in columns)
    body = []
    for i, row in enumerate(summary[section]):
        cells = []
        for _, field, kind in columns:
            if kind == "text":
                cells.append(f"<td>{html.escape(str(row[field]))}</td>")
            else:
                cells.append(f"<td>{_n(summary, f'{section}.{i}.{field}', kind)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(columns)}">none</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(src: str, alt: str) -> str:
    return (f'<img src="{src}" alt="{html.escape(alt)}" '
            "onload=\"this.dataset.loaded=this.naturalWidth>0\" onerror=\"this.dataset.loaded='false'\">")


def _html(s: dict, figs: dict[str, str], extra: str = "") -> str:
    o = s["overview"]
    d = s["distributions"]
    unmapped = "".join(f"<li><code>{html.escape(u['type_name'])}</code> ({u['kind']}, used {u['uses']:,}×)</li>"
                       for u in s["unmapped_types"]) or "<li>none: every type in use maps to a role</li>"
    dist_rows = "".join(
        f"<tr><td>{label}</td>" + "".join(f"<td>{_n(s, f'distributions.{key}.{q}', kind)}</td>"
                                          for q in ("p10", "p50", "p90", "max")) + "</tr>"
        for label, key, kind in (("pipeline lifespan (days)", "pipeline_lifespan_days", "float"),
                                 ("trainings per pipeline", "trainings_per_pipeline", "int"),
                                 ("executions per graphlet", "graphlet_executions", "int")))
    del d
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>frugal report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }}
h1 {{ margin-bottom: 0.2em; }} .sub {{ color: #666; margin-top: 0; }}
.cards {{ display: grid; grid-template-columns: repeat(4, 1fr); gap: 0.8em; }}
.card {{ border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 0.8em; }}
.card .num {{ font-size: 1.5em; font-weight: 600; display: block; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.2em; font-size: 0.9em; }}
td, th {{ border-bottom: 1px solid #eee; padding: 0.25em 0.7em; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; border: 1px solid #eee; margin: 0.4em 0; }}
.pair {{ display: grid; grid-template-columns: 1fr 1fr; gap: 0.5em; }}
</style></head><body>
<h1>frugal: where the compute went</h1>
<p class="sub">{html.escape(str(o['first_seen']))} to {html.escape(str(o['last_seen']))}</p>
<h2>Corpus</h2>
<div class="cards">
<div class="card">{_n(s, 'overview.sources')}sources</div>
<div class="card">{_n(s, 'overview.pipelines')}pipelines</div>
<div class="card">{_n(s, 'overview.pipeline_runs')}pipeline runs</div>
<div class="card">{_n(s, 'overview.executions')}executions</div>
<div class="card">{_n(s, 'overview.trainings')}trainings (graphlets)</div>
<div class="card">{_n(s, 'overview.pushed_trainings')}pushed trainings</div>
<div class="card">{_n(s, 'overview.pushes')}pushes</div>
<div class="card">{_n(s, 'overview.push_rate', 'pct')}push rate</div>
<div class="card">{_n(s, 'overview.compute_h', 'float')}compute hours</div>
<div class="card">{_n(s, 'overview.wasted_h', 'float')}wasted hours</div>
<div class="card">{_n(s, 'overview.wasted_share', 'pct')}of compute wasted</div>
<div class="card">{_n(s, 'overview.undetermined_h', 'float')}hours undetermined (censoring window)</div>
</div>
<p>A training is wasted when no pushed deployment is reachable from it along the recorded
lineage; compute still inside the censoring window at the end of history is undetermined and
counted in neither. Redundant re-runs (same inputs and properties as an earlier complete run):
{_n(s, 'overview.redundant_runs')} runs, {_n(s, 'overview.redundant_h', 'float')} hours
({_n(s, 'overview.redundant_share', 'pct')} of compute).</p>
<h2>Distributions</h2>
<table><thead><tr><th></th><th>p10</th><th>median</th><th>p90</th><th>max</th></tr></thead><tbody>{dist_rows}</tbody></table>
<div class="pair">{_img(figs['lifespan'], 'CDF of pipeline lifespan')}{_img(figs['trainings'], 'CDF of trainings per pipeline')}</div>
<div class="pair">{_img(figs['sizes'], 'CDF of graphlet size')}{_img(figs['push_rate'], 'push rate per week')}</div>
<h2>Wasted compute by component type</h2>
{_img(figs['by_component'], 'wasted compute by component type')}
{_table(s, 'waste_by_component', [('role', 'role', 'text'), ('type', 'component_type', 'text'), ('executions', 'executions', 'int'), ('wasted executions', 'wasted_executions', 'int'), ('compute h', 'compute_h', 'float'), ('wasted h', 'wasted_h', 'float')])}
<h2>Most wasteful pipelines</h2>
{_img(figs['by_pipeline'], 'most wasteful pipelines')}
{_table(s, 'waste_by_pipeline', [('source', 'source_id', 'text'), ('pipeline', 'pipeline', 'text'), ('trainings', 'trainings', 'int'), ('compute h', 'compute_h', 'float'), ('wasted h', 'wasted_h', 'float')])}
<h2>Redundant re-runs</h2>
{_table(s, 'redundant_by_component', [('type', 'component_type', 'text'), ('redundant runs', 'redundant_runs', 'int'), ('runs', 'runs', 'int'), ('redundant h', 'redundant_h', 'float')])}
<h2>Trainings and pushes over time</h2>
{_img(figs['timeline'], 'timeline of trainings and pushes')}
{_table(s, 'busiest_pipelines', [('source', 'source_id', 'text'), ('pipeline', 'pipeline', 'text'), ('trainings', 'trainings', 'int'), ('pushed', 'pushed', 'int')])}
<h2>Two graphlets</h2>
<p>Squares are executions, circles artifacts; blue upstream, orange the trainer, green
downstream; a red outline marks a pushed deployment.</p>
{_img(figs['graphlet_pushed'], 'a pushed graphlet')}
{_img(figs['graphlet_wasted'], 'a wasted graphlet')}
<h2>Types with no role</h2>
<p>These type names matched no role rule; add them to a roles file (<code>--roles FILE</code>).</p>
<ul>{unmapped}</ul>
{extra}
<p class="sub">All numbers: <a href="summary.json">summary.json</a>. Query the tables behind them with <code>frugal sql</code>.</p>
</body></html>
"""
