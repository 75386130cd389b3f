"""Write one pipeline's pages as static files (``frugal report --pipeline NAME --out DIR``).

The folder holds the same pages ``frugal serve`` shows, with links between files instead of
URLs: ``index.html`` (the latest run), ``run-N.html`` (run N of the history, 1-based, for the
newest ``max_runs`` runs), ``compare-N.html`` (run N-1 against run N), and beside every page
its JSON (``pipeline.json``, ``run-N.json``, ``compare-N.json``) whose values the page's
``data-key`` numbers show. Written into a temporary sibling folder and renamed into place, so
a crash leaves the previous folder as it was.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from analysis.config import AnalysisConfig
from analysis.pipeline_runs import find_pipeline
from analysis.report import replace_folder
from analysis.pipeline_view import run_views
from analysis.run_compare import compare_runs
from frugal.pages.render import StaticLinks, render_compare, render_pipeline

__all__ = ["write_pipeline_pages", "StaticReportLinks"]

log = logging.getLogger(__name__)


class StaticReportLinks(StaticLinks):
    """:class:`StaticLinks` that link only the runs that have a page, and each page's JSON."""

    def __init__(self, runs: list[str], with_pages: set[str]):
        super().__init__(runs)
        self.with_pages = with_pages
        self.current: str | None = None

    def pipeline(self, name, source=None, run=None):
        if run is not None and run not in self.with_pages:
            return None
        return super().pipeline(name, source, run)

    def compare(self, name, a, b, source=None):
        if b not in self.with_pages:
            return None
        return super().compare(name, a, b, source)

    def view_json(self, name, source=None, run=None):
        run = run or self.current
        page = self.pipeline(name, source, run) or "index.html"
        return "pipeline.json" if page == "index.html" else page.replace(".html", ".json")


def _dump(value) -> str:
    return json.dumps(value, indent=1, default=str)


def write_pipeline_pages(con, pipeline: str, out_dir, source: str | None = None,
                         config: AnalysisConfig | None = None, max_runs: int = 50) -> Path:
    """Write the pages of ``pipeline`` from the analysed warehouse ``con`` into ``out_dir``
    (replaced atomically); returns the path of ``index.html``."""
    out_dir = Path(out_dir)
    ref = find_pipeline(con, pipeline, source)
    views = run_views(con, ref, None, config)
    latest = next(views)
    runs = [r["run"] for r in latest["runs"]]
    paged = runs[-max_runs:] if max_runs > 0 else runs[-1:]
    links = StaticReportLinks(runs, set(paged))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        for view in [latest] + list(run_views(con, ref, paged[:-1], config)):
            run = view["run"]["run"] if view["run"] else None
            links.current = run
            page = links.pipeline(pipeline, None, run) or "index.html"
            (tmp / page).write_text(render_pipeline(view, links))
            (tmp / links.view_json(pipeline, None, run)).write_text(_dump(view))
        for i in range(1, len(runs)):
            a, b = runs[i - 1], runs[i]
            page = links.compare(pipeline, a, b)
            if page is None:
                continue
            result = compare_runs(con, ref, a, b, config)
            (tmp / page).write_text(render_compare(result, links, runs))
            (tmp / page.replace(".html", ".json")).write_text(_dump(result))
        replace_folder(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %d pages of %s into %s", len(list(out_dir.glob("*.html"))), pipeline, out_dir)
    return out_dir / "index.html"
