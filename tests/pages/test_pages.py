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
    assert [r["data-pipeline"] for r in rows] == ["fingerprints", "hostile", "penguin_minimal", "penguin_prod",
                                                  "team/penguin"]
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


# ------------------------------------------------------------------ names with "/", async, long values

class _Links(HTMLParser):
    """Every ``href`` and form ``action`` of a page (entities decoded)."""

    def __init__(self, dom: str):
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("href", "action", "data-view"):
            if a.get(key):
                self.urls.append(a[key])


def test_a_pipeline_named_with_a_slash_is_reachable_and_its_links_work(served):
    name = "team/penguin"
    for path in (quote(name, safe=""), name):  # percent-encoded, as the pages link it, or as it is
        page = _get(f"{served}/pipelines/{path}")
        assert page.status_code == 200, (path, page.text[:300])
        assert Page(page.text).title.startswith(name)
        view = _get(f"{served}/api/v1/pipelines/{path}/view")
        assert view.status_code == 200 and view.json()["pipeline"] == name
        runs = [r["run"] for r in view.json()["runs"]]
        assert runs == ["team-run-1", "team-run-2"]
        compared = _get(f"{served}/api/v1/pipelines/{path}/compare?a=team-run-1&b=team-run-2")
        assert compared.status_code == 200
        assert [p["property"] for p in compared.json()["properties_changed"]] == ["learning_rate"]
        assert _get(f"{served}/pipelines/{path}/compare").status_code == 200
        figures = _get(f"{served}/api/v1/pipelines/{path}")
        assert figures.status_code == 200 and figures.json()["pipeline"] == name
        assert figures.json()["sources"][0]["trainings"] == 2
    # the routes that take the rest of the path leave the other pipelines' routes alone
    assert _get(f"{served}/api/v1/pipelines/penguin_prod").json()["pipeline"] == "penguin_prod"
    assert _get(f"{served}/api/v1/pipelines/penguin_prod/view").json()["pipeline"] == "penguin_prod"
    assert _get(f"{served}/api/v1/pipelines/team%2Fnope/view").status_code == 404
    assert _get(f"{served}/api/v1/pipelines/team/nope").status_code == 404

    # every link the pages make to the pipeline answers with the pipeline's page or JSON
    index = _get(served + "/").text
    followed = set()
    pages = [served + "/"]
    while pages:
        url = pages.pop()
        for link in _Links(_get(url).text).urls:
            target = served + link if link.startswith("/") else link
            if quote(name, safe="") not in link or target in followed:
                continue
            followed.add(target)
            got = _get(target)
            assert got.status_code == 200, (url, link, got.text[:300])
            if "text/html" in got.headers["content-type"]:
                assert name in Page(got.text).title, link
                if len(followed) < 30:
                    pages.append(target)
            else:
                assert got.json().get("pipeline", name) == name, link
    kinds = {re.sub(r"\?.*", "", u[len(served):]) for u in followed}
    assert kinds >= {"/pipelines/team%2Fpenguin", "/pipelines/team%2Fpenguin/compare",
                     "/api/v1/pipelines/team%2Fpenguin/view", "/api/v1/pipelines/team%2Fpenguin/compare"}, kinds
    assert "team%2Fpenguin" in index


def _layout(url: str, expression: str, width: int = 1280, height: int = 1000, timeout: float = 120):
    """Load ``url`` in headless Chromium with a ``width``-pixel-wide window and return the value
    of the JavaScript ``expression`` evaluated on the loaded page (Chrome DevTools protocol)."""
    import os
    import signal
    import subprocess
    import tempfile
    import time

    import httpx
    from websockets.sync.client import connect

    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             f"--window-size={width},{height}", "--remote-debugging-port=0", f"--user-data-dir={profile}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + timeout
            while not (port_file.exists() and port_file.read_text().strip()):
                assert time.monotonic() < deadline and proc.poll() is None, "Chromium did not start"
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            target = next(t for t in httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=30).json()
                          if t["type"] == "page")
            with connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
                calls = iter(range(1, 1000))

                def call(method: str, **params) -> dict:
                    n = next(calls)
                    ws.send(json.dumps({"id": n, "method": method, "params": params}))
                    while True:
                        msg = json.loads(ws.recv(timeout=timeout))
                        if msg.get("id") == n:
                            assert "error" not in msg, msg
                            return msg["result"]

                call("Page.enable")
                call("Page.navigate", url=url)
                while True:  # the load event of the page navigated to
                    msg = json.loads(ws.recv(timeout=timeout))
                    if msg.get("method") == "Page.loadEventFired":
                        break
                result = call("Runtime.evaluate", expression=expression, returnByValue=True)
                assert "exceptionDetails" not in result, result
                return result["result"]["value"]
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


# For each card: its right edge, and per element holding MLMD text the right edge of that text
# (a Range over it: text that runs out of its box counts), its box and its lines.
_MEASURE = """(() => {
  const text = el => { const r = document.createRange(); r.selectNodeContents(el); return r.getBoundingClientRect(); };
  const box = el => { const r = el.getBoundingClientRect(); return {left: r.left, right: r.right, width: r.width}; };
  const cards = {};
  for (const id of ["properties", "inputs", "side-a", "side-b"]) {
    const card = document.getElementById(id);
    cards[id] = {right: card.getBoundingClientRect().right, values: []};
    for (const el of card.querySelectorAll("td[data-side], [data-fingerprint], td.value, .mono")) {
      cards[id].values.push({...box(el), text_right: text(el).right, title: el.getAttribute("title"),
                             content: el.textContent.trim()});
    }
  }
  const props = [...document.querySelectorAll("#properties tr[data-property] td.prop")].map(td => ({
    ...box(td), lines: td.querySelector("code").getClientRects().length,
    name: td.querySelector("code").textContent}));
  return {inner_width: innerWidth, scroll_width: document.documentElement.scrollWidth, cards, props};
})()"""


@pytest.mark.browser
def test_compare_page_keeps_long_values_inside_their_cards(served):
    """A 256-digit hex property value and 128-digit input fingerprints, at a 1280-pixel-wide
    window: every value stays inside its card (wrapped, the whole value in its title), the
    property-name column keeps its width and the page does not scroll sideways."""
    doc = _get(f"{served}/api/v1/pipelines/fingerprints/compare?a=fp-run-1&b=fp-run-2").json()
    [prop] = doc["properties_changed"]
    assert prop["property"] == "input_fingerprint" and len(prop["a"]) == len(prop["b"]) == 256
    [changed] = doc["inputs_changed"]
    fingerprints = {changed["a"][0]["fingerprint"], changed["b"][0]["fingerprint"]}
    assert {len(f) for f in fingerprints} == {128}

    got = _layout(f"{served}/pipelines/fingerprints/compare?a=fp-run-1&b=fp-run-2", _MEASURE)
    assert got["inner_width"] == 1280
    assert got["scroll_width"] <= 1280
    for card_id, card in got["cards"].items():
        assert card["values"], card_id
        for v in card["values"]:
            assert v["right"] <= card["right"] + 0.5, (card_id, v)
            assert v["text_right"] <= card["right"] + 0.5, (card_id, v)
    values = {v["content"]: v for v in got["cards"]["properties"]["values"] if v["title"]}
    assert set(values) == {prop["a"], prop["b"]}
    assert all(v["title"] == content for content, v in values.items())  # the whole value on hover
    shown = {v["title"] for v in got["cards"]["inputs"]["values"] if v["title"] in fingerprints}
    assert shown == fingerprints
    [cell] = got["props"]
    assert cell["name"] == "input_fingerprint"
    assert cell["width"] >= 160 and cell["lines"] == 1, cell  # not a column of letters


@pytest.mark.browser
def test_async_pipeline_page_shows_components_outside_every_training_as_running_on_their_own(
        simulated_warehouse, tmp_path, tools):
    """`frugal report` of a simulated asynchronous pipeline with two trainers: the
    ExampleValidator, which no training holds, is shown and drawn as running on its own, the
    other trainer's components as part of another training, never as absent."""
    sim, warehouse, _ = simulated_warehouse(tmp_path, pipelines=3, days=10, seed=5, mode="async")
    truth = json.loads(sim.ground_truth_paths[0].read_text())
    [pipeline] = [p["name"] for p in truth["pipelines"] if p["n_trainers"] == 2]
    lane_of = {str(t["execution_id"]): t["node"] for t in truth["trainers"] if t["pipeline"] == pipeline}
    done = tools.frugal("report", "--warehouse", str(warehouse), "--pipeline", pipeline, "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    lanes = set()
    for name in ("index.html", "run-1.html", "run-2.html", "run-3.html", "run-4.html"):
        html = tmp_path / "out" / name
        doc = json.loads(html.with_name("pipeline.json" if name == "index.html" else html.stem + ".json").read_text())
        page = Page(tools.dump_dom(html.as_uri()))
        rows = {r["data-component"]: r for r in page.rows if r["_tag"] == "tr" and "data-state" in r}
        assert {c: r["data-state"] for c, r in rows.items()} == {n["component"]: n["state"] for n in doc["run"]["nodes"]}
        own = rows["ExampleValidator"]
        assert own["data-state"] == "independent" and "runs on its own" in "".join(own["_text"])
        assert "absent" not in "".join(own["_text"])
        lane = lane_of[doc["run"]["run"]]
        [other] = set(lane_of.values()) - {lane}
        assert rows[other]["data-state"] == "elsewhere" and "other training" in "".join(rows[other]["_text"])
        drawn = {re.search(r"state-(\w+)", c).group(1) for c in page.dag_nodes}
        assert {"independent", "elsewhere"} <= drawn
        assert page.scripts == 0
        lanes.add(lane)
    assert len(lanes) == 2  # both trainers' trainings were looked at
