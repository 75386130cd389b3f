"""Render the pipeline pages (HTML) from the analysis package's JSON-ready views.

Jinja2 with autoescaping on for every template: MLMD names and properties are untrusted text,
so a property holding ``<script>`` is shown as text. The only markup that is not escaped by
the template is the DAG's SVG, which :mod:`frugal.pages.dag` builds from escaped labels.
Every number carries ``data-key``, its path in the page's JSON (``/api/v1/pipelines/NAME/view``
or ``.../compare``; ``pipeline.json`` / ``compare-N.json`` in a static report), so a test
or a reader can check the page against the API.

Links differ between the service and a static report, so pages take a :class:`Links`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from frugal.pages.dag import STATE_LABEL, STATE_NOTE, STATE_STYLE, dag_dot, dot_available, render_svg

__all__ = ["Links", "ServedLinks", "StaticLinks", "render_compare", "render_error", "render_index",
           "render_pipeline"]


class Links:
    """Where a page links to; subclasses build service URLs or static file names."""

    def index(self) -> str | None:
        raise NotImplementedError

    def pipeline(self, name: str, source: str | None = None, run: str | None = None) -> str | None:
        raise NotImplementedError

    def compare(self, name: str, a: str, b: str, source: str | None = None) -> str | None:
        raise NotImplementedError

    def view_json(self, name: str, source: str | None = None, run: str | None = None) -> str | None:
        return None

    def compare_json(self, name: str, a: str, b: str, source: str | None = None) -> str | None:
        return None

    compare_form: bool = False


@dataclass(frozen=True)
class ServedLinks(Links):
    """URLs of ``frugal serve`` (``root`` is the mount prefix, normally empty)."""

    root: str = ""
    compare_form: bool = True

    def _q(self, **params) -> str:
        clean = {k: v for k, v in params.items() if v is not None}
        return ("?" + urlencode(clean)) if clean else ""

    def index(self) -> str:
        return f"{self.root}/"

    def pipeline(self, name, source=None, run=None):
        return f"{self.root}/pipelines/{quote(name, safe='')}" + self._q(source=source, run=run)

    def compare(self, name, a, b, source=None):
        return f"{self.root}/pipelines/{quote(name, safe='')}/compare" + self._q(a=a, b=b, source=source)

    def view_json(self, name, source=None, run=None):
        return f"{self.root}/api/v1/pipelines/{quote(name, safe='')}/view" + self._q(source=source, run=run)

    def compare_json(self, name, a, b, source=None):
        return f"{self.root}/api/v1/pipelines/{quote(name, safe='')}/compare" + self._q(a=a, b=b, source=source)


class StaticLinks(Links):
    """File names of a static report of one pipeline: ``index.html`` (latest run),
    ``run-N.html`` (run N of the history, 1-based), ``compare-N.html`` (run N-1 against N)."""

    def __init__(self, runs: list[str]):
        self.position = {r: i + 1 for i, r in enumerate(runs)}
        self.latest = runs[-1] if runs else None

    def index(self):
        return None

    def pipeline(self, name, source=None, run=None):
        if run is None or run == self.latest:
            return "index.html"
        return f"run-{self.position[run]}.html" if run in self.position else None

    def compare(self, name, a, b, source=None):
        pa, pb = self.position.get(a), self.position.get(b)
        return f"compare-{pb}.html" if pa is not None and pb is not None and pb == pa + 1 else None

    def view_json(self, name, source=None, run=None):
        return "pipeline.json"

    def compare_json(self, name, a, b, source=None):
        page = self.compare(name, a, b, source)
        return page.replace(".html", ".json") if page else None


# ------------------------------------------------------------------------------ formatting

def _num(value: Any, key: str, digits: int = 2, kind: str = "float") -> Markup:
    """A number as ``<span class="num" data-key=...>``; ``kind`` int, float or pct."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Markup('<span class="none">–</span>')
    if kind == "pct":
        text = f"{100 * value:,.{max(digits - 1, 0)}f}"
        return Markup('<span class="num" data-key="{}" data-kind="pct">{}</span>&#8239;%').format(key, text)
    text = f"{value:,}" if kind == "int" else f"{value:,.{digits}f}"
    return Markup('<span class="num" data-key="{}" data-kind="{}">{}</span>').format(key, kind, text)


def _secs(value: Any, key: str, digits: int = 2) -> Markup:
    if value is None:
        return Markup('<span class="none">–</span>')
    return Markup('<span title="{}">{}&#8239;s</span>').format(_human(value), _num(value, key, digits))


def _human(seconds: float) -> str:
    s = float(seconds)
    if s < 90:
        return f"{s:.1f} seconds"
    if s < 5400:
        return f"{s / 60:.1f} minutes"
    return f"{s / 3600:.1f} hours"


def _when(text: str | None) -> str:
    """'2026-11-21 22:22:46.787000' -> '2026-11-21 22:22:46' (UTC)."""
    if not text:
        return "–"
    return str(text).split(".")[0].replace("T", " ")


def _short(text: Any, width: int = 60) -> str:
    s = _plain(text)
    return s if len(s) <= width else s[: width - 1] + "…"


def _plain(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if (value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e7)) else f"{value:g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _bar(value: float | None, total: float | None) -> str:
    if not value or not total:
        return "0%"
    return f"{max(0.0, min(100.0, 100.0 * value / total)):.1f}%"


_ENV: Environment | None = None


def _env() -> Environment:
    global _ENV
    if _ENV is None:
        env = Environment(
            loader=PackageLoader("frugal.pages", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.globals.update(num=_num, secs=_secs, when=_when, short=_short, plain=_plain, bar=_bar,
                           STATE_STYLE=STATE_STYLE, STATE_LABEL=STATE_LABEL, STATE_NOTE=STATE_NOTE)
        _ENV = env
    return _ENV


def _page(template: str, **context) -> str:
    return _env().get_template(template).render(**context)


# ----------------------------------------------------------------------------------- pages

def render_index(pipelines: list[dict], links: Links, title: str = "Pipelines") -> str:
    """The list of pipelines (:func:`analysis.pipeline_view.list_pipelines`)."""
    sources = {p["source_id"] for p in pipelines}
    names = [p["pipeline"] for p in pipelines]
    ambiguous = {n for n in names if names.count(n) > 1}
    return _page("index.html", pipelines=pipelines, links=links, title=title, sources=sorted(sources),
                 ambiguous=ambiguous, max_compute=max([p["compute_s"] or 0 for p in pipelines] or [0]))


def render_pipeline(view: dict, links: Links, max_runs: int = 200) -> str:
    """The pipeline page of :func:`analysis.pipeline_view.pipeline_view`: DAG of the chosen
    run, history (the newest ``max_runs`` runs), decisions."""
    run = view["run"]
    svg = None
    if run is not None:
        svg = render_svg(dag_dot(view["dag"], run["nodes"]))
    runs = view["runs"]
    shown = list(enumerate(runs))[-max_runs:][::-1]
    max_compute = max([r["compute_s"] or 0 for r in runs] or [0])
    position = {r["run"]: i for i, r in enumerate(runs)}
    chosen = position.get(run["run"]) if run else None
    return _page(
        "pipeline.html", v=view, links=links, svg=Markup(svg) if svg else None, dot=dot_available(),
        shown=shown, hidden=len(runs) - len(shown), max_compute=max_compute, chosen=chosen,
        previous=runs[chosen - 1]["run"] if chosen else None,
        following=runs[chosen + 1]["run"] if chosen is not None and chosen + 1 < len(runs) else None,
        source=view["source_id"] if links.compare_form else None,
    )


def render_compare(result: dict, links: Links, runs: list[str] | None = None) -> str:
    """The comparison page of :func:`analysis.run_compare.compare`; ``runs`` (all run names,
    oldest first) fills the form that picks two other runs."""
    return _page("compare.html", c=result, links=links, runs=runs or [],
                 source=result["source_id"] if links.compare_form else None)


def render_error(status: int, message: str, links: Links) -> str:
    """A plain error page (unknown pipeline or run): the message says what exists."""
    return _page("error.html", status=status, message=message, links=links)

