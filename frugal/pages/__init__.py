"""HTML pages of a pipeline: the DAG drawn from provenance, its history, any two runs compared.

Rendered with Jinja2 (autoescaped) from the JSON-ready views of :mod:`analysis.pipeline_view`
and :mod:`analysis.run_compare`; served by ``frugal serve`` (``frugal.service.routers.pages``)
and written as static files by ``frugal report --pipeline`` (:mod:`frugal.pages.static`).
"""

from __future__ import annotations

from frugal.pages.render import (
    Links,
    ServedLinks,
    StaticLinks,
    render_compare,
    render_error,
    render_index,
    render_pipeline,
)

__all__ = ["Links", "ServedLinks", "StaticLinks", "render_compare", "render_error", "render_index",
           "render_pipeline"]
