"""The pipeline pages in a real browser (headless Chromium), static and served by a real
`frugal serve`: every number equals the JSON's, node states and compare pages equal the TFX
ground truth, hostile MLMD text is shown as text."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)

TRUTH_STATE = {"executed": "executed", "resolver_executed": "executed", "cached": "cached"}


class Page(HTMLParser):
    """What the tests read from a DOM: numbers with their data-key, rows with data-*
    attributes and their text, the DAG's nodes, script elements, the title."""

    def __init__(self, dom: str):
        super().__init__(convert_charrefs=True)
        self.numbers: list[tuple[str, str, str]] = []
        self.row_of_number: list[str | None] = []  # the data-pipeline of the row holding each number
        self.row = None
        self.rows: list[dict] = []  # elements with data-component/-property/-run/-pipeline
        self.dag_nodes: list[str] = []  # class attribute of every drawn node
        self.scripts = 0
        self.title = ""
        self.text: list[str] = []
        self._num = None
        self._stack: list[dict] = []
        self._in_title = False
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "title":
            self._in_title = True
        if tag == "tr":
            self.row = a.get("data-pipeline")
        if "data-key" in a:
            self._num = (a["data-key"], a.get("data-kind", "float"))
            self.row_of_number.append(self.row)
        if tag == "g" and "dag-node" in (a.get("class") or "").split():
            self.dag_nodes.append(a["class"])
        if tag in ("tr", "span", "td") and any(k.startswith("data-") and k != "data-key" and k != "data-kind"
                                                for k in a):
            entry = {**a, "_tag": tag, "_text": []}
            self.rows.append(entry)
            self._stack.append(entry)
        elif tag in ("tr", "span", "td"):
            self._stack.append(None)

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        if tag in ("tr", "span", "td") and self._stack:
            self._stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._in_title:
            self.title += data
        for entry in self._stack:
            if entry is not None:
                entry["_text"].append(data)
        if self._num is not None:
            self.numbers.append((*self._num, data))
            self._num = None

    def with_attr(self, name: str) -> list[dict]:
        return [r for r in self.rows if name in r]


def lookup(doc, key: str):
    value = doc
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def check_numbers(page: Page, doc: dict, at_least: int) -> int:
    """Every data-key number on the page equals its value in ``doc`` (to the shown digits)."""
    assert len(page.numbers) >= at_least
    for key, kind, text in page.numbers:
        value = lookup(doc, key)
        shown = float(re.sub(r"[,\s%]", "", text))
        decimals = len(text.split(".")[1]) if "." in text else 0
        if kind == "int":
            assert shown == value, key
        elif kind == "pct":
            assert shown == pytest.approx(100 * value, abs=0.51 * 10 ** -decimals), key
        else:
            assert shown == pytest.approx(value, abs=0.51 * 10 ** -decimals), key
    return len(page.numbers)


def node_states(page: Page) -> dict[str, str]:
    return {r["data-component"]: r["data-state"] for r in page.rows
            if r["_tag"] == "tr" and "data-state" in r}


# ------------------------------------------------------------------------------ static pages

def test_report_pipeline_writes_every_page_with_its_json(static_site, con, tfx_ground_truth):
    from analysis.run_compare import compare

    runs = [r["pipeline_run_id"] for r in tfx_ground_truth("penguin_prod")["runs"]]
    names = {p.name for p in static_site.iterdir()}
    expected = {"index.html", "pipeline.json"}
    expected |= {f"run-{i}.{x}" for i in range(1, len(runs)) for x in ("html", "json")}
    expected |= {f"compare-{i}.{x}" for i in range(2, len(runs) + 1) for x in ("html", "json")}
    assert names == expected
    view = json.loads((static_site / "pipeline.json").read_text())
    assert view["run"]["run"] == runs[-1] and [r["run"] for r in view["runs"]] == runs
    assert json.loads((static_site / "compare-5.json").read_text()) == json.loads(
        json.dumps(compare(con, "penguin_prod", runs[3], runs[4]), default=str))


def test_report_pipeline_unknown_name_fails_clearly_and_keeps_the_folder(static_site, warehouse, tmp_path, tools):
    import shutil

    wh = tmp_path / "w.duckdb"
    shutil.copyfile(warehouse, wh)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    done = tools.frugal("report", "--warehouse", str(wh), "--pipeline", "nope", "--out", str(out))
    assert done.returncode == 2
    assert "no pipeline 'nope'" in done.stderr and "penguin_prod" in done.stderr
    assert (out / "keep.txt").read_text() == "x"


@pytest.mark.browser
def test_static_pipeline_pages_show_the_json_and_the_ground_truths_node_states(static_site, tfx_ground_truth, tools):
    truth = tfx_ground_truth("penguin_prod")["runs"]
    for page_name, json_name, run in (("index.html", "pipeline.json", truth[-1]),
                                      ("run-5.html", "run-5.json", truth[4]),
                                      ("run-3.html", "run-3.json", truth[2])):
        page = Page(tools.dump_dom((static_site / page_name).as_uri()))
        doc = json.loads((static_site / json_name).read_text())
        assert doc["run"]["run"] == run["pipeline_run_id"]
        check_numbers(page, doc, at_least=40)
        # the DAG: exactly the pipeline's components, each drawn in its state in this run
        assert len(page.dag_nodes) == len(run["nodes"])
        states = node_states(page)
        assert states == {name: TRUTH_STATE[n["status"]] for name, n in run["nodes"].items()}
        drawn = sorted(re.search(r"state-(\w+)", c).group(1) for c in page.dag_nodes)
        assert drawn == sorted(states.values())
        assert page.scripts == 0


@pytest.mark.browser
def test_static_compare_pages_show_exactly_the_ground_truths_changes(static_site, tfx_ground_truth, tools):
    truth = tfx_ground_truth("penguin_prod")["runs"]
    for n in range(2, len(truth) + 1):
        a, b = truth[n - 2], truth[n - 1]
        page = Page(tools.dump_dom((static_site / f"compare-{n}.html").as_uri()))
        doc = json.loads((static_site / f"compare-{n}.json").read_text())
        check_numbers(page, doc, at_least=20)
        props = {(r["data-component"], r["data-property"]) for r in page.with_attr("data-property")}
        assert props == {(p["component"], p["property"]) for p in doc["properties_changed"]}
        hp = {p.split(".", 1)[1] for c, p in props if c == "Trainer" and p.startswith("custom_config.")}
        assert hp == {k for k in a["hyperparameters"] if a["hyperparameters"][k] != b["hyperparameters"][k]}, n
        inputs = [r["data-change"] for r in page.with_attr("data-change")]
        if b["data_changes"]:
            span_a = next(r for r in reversed(truth[:n - 1]) if r["data_changes"])["data_changes"][0]["span"]
            assert inputs == ["new span" if b["data_changes"][0]["span"] != span_a else "new data"], n
        else:
            assert inputs == [], n
        if not b["executed_nodes"]:  # a fully cached run: no change at all
            assert props == set() and inputs == []
            assert "No execution property differs." in "".join(page.text)


# ------------------------------------------------------------------------------ served pages

def _get(url: str):
    import httpx

    return httpx.get(url, timeout=60)


def test_served_compare_json_equals_the_library_and_unknown_names_are_404(served, con, tfx_ground_truth):
    from analysis.run_compare import compare

    runs = [r["pipeline_run_id"] for r in tfx_ground_truth("penguin_prod")["runs"]]
    got = _get(f"{served}/api/v1/pipelines/penguin_prod/compare?a={quote(runs[4])}&b={quote(runs[5])}")
    assert got.status_code == 200
    assert got.json() == json.loads(json.dumps(compare(con, "penguin_prod", runs[4], runs[5]), default=str))
    assert set(got.json()) >= {"components_added", "components_removed", "properties_changed",
                               "inputs_changed", "outcome"}
    missing = _get(f"{served}/api/v1/pipelines/nope/compare?a=1&b=2")
    assert missing.status_code == 404 and "no pipeline 'nope'" in missing.json()["detail"]
    missing = _get(f"{served}/api/v1/pipelines/penguin_prod/compare?a=nope&b={quote(runs[0])}")
    assert missing.status_code == 404 and "has no run 'nope'" in missing.json()["detail"]
    assert runs[-1] in missing.json()["detail"]  # it says which runs exist
    page = _get(f"{served}/pipelines/nope")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "penguin_prod" in Page(page.text).title + "".join(Page(page.text).text)


@pytest.mark.browser
def test_served_pages_show_the_apis_numbers(served, tfx_ground_truth, tools):
    index = Page(tools.dump_dom(served + "/"))
    rows = [r for r in index.rows if r["_tag"] == "tr" and "data-pipeline" in r]
    assert [r["data-pipeline"] for r in rows] == ["hostile", "penguin_minimal", "penguin_prod"]
    # every number of a pipeline's row is its summary in the pipeline's view JSON
    for r in rows:
        doc = _get(served + r["data-view"]).json()
        mine = [n for n, row in zip(index.numbers, index.row_of_number) if row == r["data-pipeline"]]
        check_numbers(_Numbers(mine), doc, at_least=7)
    assert len(index.numbers) == 7 * len(rows)

    truth = tfx_ground_truth("penguin_prod")["runs"]
    run = truth[6]  # the code change
    url = f"{served}/pipelines/penguin_prod?run={quote(run['pipeline_run_id'])}"
    page = Page(tools.dump_dom(url))
    doc = _get(f"{served}/api/v1/pipelines/penguin_prod/view?run={quote(run['pipeline_run_id'])}").json()
    check_numbers(page, doc, at_least=40)
    assert node_states(page) == {name: TRUTH_STATE[n["status"]] for name, n in run["nodes"].items()}

    a, b = truth[7]["pipeline_run_id"], truth[8]["pipeline_run_id"]  # bad run -> new span 3, lr 0.02
    page = Page(tools.dump_dom(f"{served}/pipelines/penguin_prod/compare?a={quote(a)}&b={quote(b)}"))
    doc = _get(f"{served}/api/v1/pipelines/penguin_prod/compare?a={quote(a)}&b={quote(b)}").json()
    check_numbers(page, doc, at_least=20)
    cells = {(r["data-component"], r["data-property"]): "".join(r["_text"]) for r in page.with_attr("data-property")}
    lr = [t for (c, p), t in cells.items() if p == "custom_config.learning_rate"]
    assert len(lr) == 1 and "0.0001" in lr[0] and "0.02" in lr[0]
    assert [r["data-change"] for r in page.with_attr("data-change")] == ["new span"]


class _Numbers:
    def __init__(self, numbers):
        self.numbers = numbers


@pytest.mark.browser
def test_markup_in_mlmd_is_shown_as_text(served, tmp_path, tools, hostile_text):
    url = f"{served}/pipelines/hostile/compare?a=hostile-run-1&b=hostile-run-2"
    page = Page(tools.dump_dom(url))
    assert page.scripts == 0 and "pwned" not in page.title
    [row] = page.with_attr("data-property")
    assert row["data-component"] == hostile_text["component"] and row["data-property"] == "note"
    b = [r for r in page.rows if r.get("data-side") == "b"]
    assert "".join(b[0]["_text"]) == hostile_text["script"]  # the text itself, not an element
    page = Page(tools.dump_dom(f"{served}/pipelines/hostile"))
    assert page.scripts == 0 and "pwned" not in page.title
    assert hostile_text["component"] in node_states(page)
    assert len(page.dag_nodes) == 3
    shot = tools.screenshot(url, tmp_path / "hostile.png")
    assert shot.stat().st_size > 10_000


@pytest.mark.browser
def test_a_decision_of_the_hook_is_listed_with_its_reasons(served, tools):
    import httpx

    answer = httpx.post(f"{served}/api/v1/decisions", json={"pipeline": "penguin_prod"}, timeout=60)
    assert answer.status_code == 200, answer.text
    decision = answer.json()
    doc = _get(f"{served}/api/v1/pipelines/penguin_prod/view").json()
    listed = {d["decision_id"]: d for d in doc["decisions"]}
    assert listed[decision["decision_id"]]["action"] == decision["action"]
    assert listed[decision["decision_id"]]["reasons"] == decision["reasons"]
    page = Page(tools.dump_dom(f"{served}/pipelines/penguin_prod"))
    check_numbers(page, doc, at_least=40)
    [row] = [r for r in page.rows if r.get("data-decision") == decision["decision_id"]]
    text = "".join(row["_text"])
    assert decision["action"] in text and all(reason in text for reason in decision["reasons"])
    index = Page(tools.dump_dom(served + "/"))
    [prod] = [r for r in index.rows if r.get("data-pipeline") == "penguin_prod"]
    assert decision["action"] in "".join(prod["_text"])
