"""The batch report: summary.json figures equal the warehouse; a real browser loads every image
and shows exactly the numbers of summary.json."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from analysis.report import write_report

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def report_dir(analyzed_tfx_warehouse, tmp_path_factory) -> Path:
    wh = tmp_path_factory.mktemp("rep") / "w.duckdb"
    shutil.copyfile(analyzed_tfx_warehouse, wh)
    out = wh.parent / "report"
    index = write_report(wh, out)
    assert index == out / "index.html"
    return out


def test_summary_matches_ground_truth(report_dir, tfx_ground_truth, truth):
    s = json.loads((report_dir / "summary.json").read_text())
    o = s["overview"]
    # executed trainers per store (execution ids restart at 1 in each store: keep them apart)
    expected = {name: truth(tfx_ground_truth(name)) for name in ("penguin_prod", "penguin_minimal")}
    runs = len(tfx_ground_truth("penguin_prod")["runs"]) + len(tfx_ground_truth("penguin_minimal")["runs"])
    assert o["sources"] == 2 and o["pipelines"] == 2
    assert o["pipeline_runs"] == runs
    assert o["trainings"] == 8 + 3
    assert o["pushed_trainings"] == 5 + 3
    # pushes = Pusher runs that really pushed (cached re-emissions excluded)
    real_pushes = sum(any(r["model_pushed_this_run"].values())
                      for name in ("penguin_prod", "penguin_minimal") for r in tfx_ground_truth(name)["runs"])
    assert o["pushes"] == real_pushes
    assert o["push_rate"] == pytest.approx(8 / 11, abs=1e-3)
    assert o["trainings"] == sum(len(e) for e in expected.values())
    assert o["pushed_trainings"] == sum(t["pushed"] for e in expected.values() for t in e.values())
    # per pipeline (one per store): trainings and pushed trainings equal the ground truth's
    assert sorted((p["trainings"], p["pushed"]) for p in s["busiest_pipelines"]) == sorted(
        (len(e), sum(t["pushed"] for t in e.values())) for e in expected.values())
    assert s["example_graphlets"]["pushed"] and s["example_graphlets"]["wasted"]
    assert s["distributions"]["trainings_per_pipeline"]["max"] == 8
    assert s["unmapped_types"] == []


def test_report_numbers_equal_the_warehouse(report_dir, analyzed_tfx_warehouse):
    s = json.loads((report_dir / "summary.json").read_text())
    con = duckdb.connect(str(report_dir.parent / "w.duckdb"), read_only=True)
    try:
        wasted_h = con.execute("SELECT sum(duration_s) / 3600 FROM execution_waste WHERE wasted").fetchone()[0]
        by_type = dict(con.execute(
            "SELECT component_type, sum(duration_s) FILTER (WHERE wasted) / 3600 FROM execution_waste GROUP BY 1"
        ).fetchall())
    finally:
        con.close()
    assert s["overview"]["wasted_h"] == pytest.approx(wasted_h, abs=1e-5)
    for row in s["waste_by_component"]:
        assert row["wasted_h"] == pytest.approx(by_type[row["component_type"]] or 0, abs=1e-5)


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[dict] = []
        self.numbers: list[tuple[str, str, str]] = []
        self._open: tuple[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a)
        if tag == "span" and "data-key" in a:
            self._open = (a["data-key"], a.get("data-format", "int"))

    def handle_data(self, data):
        if self._open:
            self.numbers.append((*self._open, data))
            self._open = None


def _lookup(summary: dict, key: str):
    section, rest = key.split(".", 1)
    value = summary[section]
    for part in rest.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


@pytest.mark.browser
def test_browser_loads_images_and_shows_summary_numbers(report_dir):
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
         "--virtual-time-budget=10000", "--dump-dom", (report_dir / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    page = _Collect()
    page.feed(dom)
    pngs = sorted(p.name for p in report_dir.glob("*.png"))
    assert sorted(i["src"] for i in page.images) == pngs and len(pngs) >= 9
    assert all(i.get("data-loaded") == "true" for i in page.images), [
        (i["src"], i.get("data-loaded")) for i in page.images]
    summary = json.loads((report_dir / "summary.json").read_text())
    assert len(page.numbers) >= 20
    for key, kind, text in page.numbers:
        value = _lookup(summary, key)
        shown = float(re.sub(r"[,%]", "", text))
        if kind == "pct":
            assert shown == pytest.approx(100 * value, abs=0.051), key
        elif kind == "int":
            assert shown == value, key
        else:
            decimals = len(text.split(".")[1]) if "." in text else 0
            assert shown == pytest.approx(value, abs=0.51 * 10 ** -decimals), key


def test_report_replaces_folder_atomically_and_rejects_missing_warehouse(tmp_path, report_dir):
    from analysis.errors import AnalysisError

    with pytest.raises(AnalysisError, match="does not exist"):
        write_report(tmp_path / "missing.duckdb", tmp_path / "out")
    assert not (tmp_path / "out").exists()
