"""`GET /api/v1/report`: the latest HTML report, rebuilt after ingests that changed data."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from frugal.service.dependencies import get_service
from frugal.service.errors import NotFound, NotReady

router = APIRouter(prefix="/api/v1", tags=["report"])


@router.get("/report")
def report(service=Depends(get_service)):
    """The report's index.html (figures at /api/v1/report/FILE)."""
    return _file(service, "index.html")


@router.get("/report/{name}")
def report_file(name: str, service=Depends(get_service)):
    """A file of the report (figures, summary.json)."""
    return _file(service, name)


def _file(service, name: str):
    folder = Path(service.config.report_dir)
    if not (folder / "index.html").exists():
        raise NotReady("the report is not built yet; it is rebuilt after the first ingest")
    if "/" in name or "\\" in name or name.startswith("."):
        raise NotFound(f"no report file {name!r}")
    path = folder / name
    if not path.is_file():
        raise NotFound(f"no report file {name!r}")
    return FileResponse(path)
