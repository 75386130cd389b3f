"""Operating `frugal serve`: several sources, sources that go away (SQLite and MySQL), tokens, config files, kill -9."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest

from .runs import append_run

TOKEN = "s3cret-token-for-tests-0123456789"


def test_two_sources_conflict_a_source_goes_away_and_comes_back(store_copy, tmp_path, serve):
    staging, prod = store_copy("staging"), store_copy("prod")
    config = tmp_path / "frugal.toml"
    config.write_text(f'[serve]\nstores = ["{staging}", "{prod}"]\nwarehouse = "w.duckdb"\n'
                      'ingest_every = 3600\nsql_timeout_s = 1.5\nsql_max_rows = 5\n')
    s = serve([], tmp_path / "w.duckdb", extra=["--config", str(config)], token=TOKEN)
    pipeline = s.sql("SELECT pipeline FROM graphlets GROUP BY 1 ORDER BY 1 LIMIT 1")[0][0]

    # the same pipeline name in two sources: never a silent pick
    r = s.post("/api/v1/decisions", json={"pipeline": pipeline})
    assert r.status_code == 409
    assert "prod" in r.json()["detail"] and "staging" in r.json()["detail"]
    assert s.decide(pipeline, source="staging")["source"] == "staging"
    r = s.post("/api/v1/decisions", json={"pipeline": pipeline, "source": "elsewhere"})
    assert r.status_code == 404 and "prod, staging" in r.json()["detail"]

    # the config file's SQL limits: the row cap, and a long cross join interrupted at the time limit
    body = s.post("/api/v1/sql", json={"query": "SELECT * FROM range(100)"}).json()
    assert len(body["rows"]) == 5 and body["truncated"]
    t0 = time.monotonic()
    r = s.post("/api/v1/sql", json={"query": "SELECT count(*) FROM range(100000000) a, range(100000000) b"})
    assert r.status_code == 422 and "time limit of 1.5 s" in r.json()["detail"]
    assert time.monotonic() - t0 < 30

    # prod goes away: reported with its error, retried; staging and decisions go on
    hidden = prod.with_name("prod.hidden")
    prod.rename(hidden)
    did = s.post("/api/v1/ingest").json()
    states = {x["source"]: x for x in did["sources"]}
    assert states["prod"]["status"] == "error" and "prod.sqlite" in states["prod"]["error"]
    assert states["prod"]["failures"] == 1 and states["staging"]["status"] == "ok"
    assert s.decide(pipeline, source="prod")["action"] in ("run", "prune")
    assert s.get("/readyz").status_code == 200
    # ... and comes back with a new run, which is read
    hidden.rename(prod)
    append_run(prod, pipeline, started_at=time.time())
    did = s.post("/api/v1/ingest").json()
    states = {x["source"]: x for x in did["sources"]}
    assert states["prod"]["status"] == "ok" and states["prod"]["error"] is None and did["changed_sources"] == ["prod"]
    counts = dict(s.sql(f"SELECT source_id, count(*) FROM graphlets WHERE pipeline = '{pipeline}' GROUP BY 1"))
    assert counts["prod"] == counts["staging"] + 1


def test_token_is_required_everywhere_but_healthz(store_copy, tmp_path, serve):
    s = serve([store_copy()], tmp_path / "w.duckdb", token=TOKEN, extra=["--ingest-every", "3600"])
    bare = httpx.Client(base_url=s.url, timeout=30)
    try:
        assert bare.get("/healthz").status_code == 200
        for method, path in (("GET", "/readyz"), ("GET", "/api/v1/pipelines"), ("POST", "/api/v1/decisions"),
                             ("POST", "/api/v1/sql"), ("GET", "/metrics"), ("GET", "/api/v1/rules")):
            r = bare.request(method, path, json={"pipeline": "x"})
            assert r.status_code == 401 and "bearer token" in r.json()["detail"], (method, path)
            r = bare.request(method, path, json={"pipeline": "x"}, headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401 and r.json()["detail"] == "invalid token", (method, path)
        assert bare.get("/readyz", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    finally:
        bare.close()


def test_refuses_a_public_address_without_a_token(store_copy, tmp_path):
    r = subprocess.run([sys.executable, "-m", "frugal", "serve", str(store_copy()), "--warehouse",
                        str(tmp_path / "w.duckdb"), "--host", "0.0.0.0", "--port", "0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "without a token" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "w.duckdb").exists()


def test_kill_9_loses_no_acknowledged_decision_and_restarts_warm(store_copy, tmp_path, serve):
    """kill -9 while decisions are written and an ingest runs; the restart serves from the saved policy."""
    store = store_copy()
    warehouse = tmp_path / "w.duckdb"
    s = serve([store], warehouse, extra=["--ingest-every", "3600"])
    try:
        pipeline = s.sql("SELECT pipeline FROM graphlets GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")[0][0]
        version = s.get("/readyz").json()["policy_version"]
        s.post("/api/v1/rules", json={"pipeline": pipeline, "action": "prune", "reason": "freeze"})
        acknowledged: list[str] = []
        stop = threading.Event()

        def hammer():
            client = httpx.Client(base_url=s.url, timeout=10)
            while not stop.is_set():
                try:
                    r = client.post("/api/v1/decisions", json={"pipeline": pipeline})
                except httpx.HTTPError:
                    break
                if r.status_code == 200:
                    acknowledged.append(r.json()["decision_id"])
            client.close()

        for i in range(20):
            append_run(store, pipeline, started_at=time.time() + i)
        threads = [threading.Thread(target=hammer) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        def ingest_now():
            try:
                httpx.post(s.url + "/api/v1/ingest", timeout=60)
            except httpx.HTTPError:       # killed under it, as intended
                pass

        ingest = threading.Thread(target=ingest_now, daemon=True)
        ingest.start()
        time.sleep(0.7)
        s.kill9()                     # mid-ingest, mid-ledger-write
        stop.set()
        for t in threads:
            t.join(15)
        assert len(acknowledged) >= 10
    finally:
        s.stop()

    t0 = time.monotonic()
    s2 = serve([store], warehouse, extra=["--ingest-every", "3600"], wait_ready=False)
    try:
        while s2.get("/readyz").status_code != 200:
            time.sleep(0.05)
        restored = s2.get("/readyz").json()
        ready_s = time.monotonic() - t0
        assert restored["policy_version"] == version      # served from the saved policy, before any refit
        ledger = {r[0] for r in s2.sql("SELECT decision_id FROM decisions")}
        assert set(acknowledged) <= ledger                 # nothing acknowledged was lost
        d = s2.decide(pipeline)
        assert d["action"] == "prune" and d["reasons"] == ["operator rule: prune (freeze)"]   # rules persist
        did = s2.post("/api/v1/ingest").json()             # the interrupted ingest is redone in full
        assert did["sources"][0]["status"] == "ok"
        n = s2.sql(f"SELECT count(*) FROM executions e JOIN analysis_executions x USING (source_id, execution_id) "
                   f"WHERE x.pipeline = '{pipeline}' AND e.create_time > now() - INTERVAL 1 DAY "
                   "AND e.type_name LIKE '%Trainer'")[0][0]
        assert n == 20
        assert ready_s < 60
    finally:
        s2.stop()


def test_a_restart_cuts_the_last_gates_slices_before_their_next_decision(store_copy, tmp_path, serve):
    """The pipelines that decided from their inputs last get their slices cut again, and their
    lanes prepared for the saved policy, at a restart's first refresh: their next decision
    waits for neither."""
    store = store_copy()
    warehouse = tmp_path / "w.duckdb"
    s = serve([store], warehouse, extra=["--ingest-every", "3600"])
    try:
        gates = [r[0] for r in s.sql("SELECT pipeline FROM graphlets GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 2")]
        for pipeline in gates:
            ids = append_run(store, pipeline, started_at=time.time(), train=False)
            s.decide(pipeline, inputs=[ids["Examples"], ids["ExampleAnomalies"]])
        assert s.get("/api/v1/sources").json()["progress"]["slices"]["cuts"] == 2
    finally:
        s.stop()
    s2 = serve([store], warehouse, extra=["--ingest-every", "3600"])
    try:
        slices = lambda: s2.get("/api/v1/sources").json()["progress"]["slices"]  # noqa: E731
        deadline = time.monotonic() + 60
        while (slices()["cuts"] < 2 or slices()["prepared"] < 2) and time.monotonic() < deadline:
            time.sleep(0.1)        # the first refresh cuts them, and prepares them for the saved policy
        assert slices() | {"cut_seconds": 0} == {"kept": 2, "capacity": 128, "cuts": 2, "cut_seconds": 0,
                                                 "prepared": 2}
        ids = append_run(store, gates[0], started_at=time.time(), train=False)
        s2.decide(gates[0], inputs=[ids["Examples"], ids["ExampleAnomalies"]])
        assert slices()["cuts"] == 2           # found warm
    finally:
        s2.stop()


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "not a TCP port"),
    (["--ingest-every", "0"], "ingest_every"),
    (["--mode", "sometimes"], "mode must be one of enforce, shadow, off"),
    (["--explore", "1.5"], "explore must be a probability in [0, 1)"),
])
def test_bad_settings_are_clear_errors(store_copy, tmp_path, args, message):
    r = subprocess.run([sys.executable, "-m", "frugal", "serve", str(store_copy()), "--warehouse",
                        str(tmp_path / "w.duckdb"), *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_login_form_sets_an_httponly_cookie(store_copy, tmp_path, serve):
    s = serve([store_copy()], tmp_path / "w.duckdb", token=TOKEN, extra=["--ingest-every", "3600"])
    bare = httpx.Client(base_url=s.url, timeout=30)
    try:
        r = bare.get("/api/v1/report")
        assert r.status_code == 401                          # the API answers JSON, no redirect
        r = bare.post("/login", data={"token": "wrong", "next": "/api/v1/rules"})
        assert r.status_code == 401 and "not right" in r.text and "set-cookie" not in r.headers
        r = bare.post("/login", data={"token": TOKEN, "next": "//evil.example/x"})
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "frugal_token=" in cookie and "samesite=strict" in cookie.lower()
        assert bare.get("/api/v1/rules").status_code == 200  # the cookie now opens the API and pages
    finally:
        bare.close()


def test_real_tfx_store_too_little_history_is_ready_and_runs(tfx_store, tmp_path, serve):
    s = serve([tfx_store("penguin_prod")], tmp_path / "w.duckdb", extra=["--ingest-every", "3600"])
    ready = s.get("/readyz").json()
    assert ready["ready"] is True and "too little history" in ready["fallback"]
    d = s.decide("penguin_prod")
    assert d["action"] == "run" and d["probability"] is None and "too little history" in d["fallback"]
    assert d["reasons"] == [d["fallback"]] and d["lane"] == "Trainer"
    info = s.get("/api/v1/pipelines/penguin_prod").json()
    assert info["sources"][0]["trainings"] == s.sql("SELECT count(*) FROM graphlets")[0][0] == 8
    assert info["decisions"][0]["decision_id"] == d["decision_id"]


@pytest.fixture
def mysql_store():
    """A MariaDB/MySQL database of its own and a user that may read it: (url, root connection, user)."""
    import pymysql

    name = f"frugal_svc_{uuid.uuid4().hex[:10]}"
    user = f"frugal_{uuid.uuid4().hex[:8]}"
    root = pymysql.connect(host="127.0.0.1", port=3306, user="root", autocommit=True)
    cur = root.cursor()
    cur.execute(f"CREATE DATABASE {name}")
    cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-{user}'")
    cur.execute(f"GRANT ALL ON {name}.* TO '{user}'@'%'")
    try:
        yield f"mysql://{user}:pw-{user}@127.0.0.1:3306/{name}", cur, user, name
    finally:
        cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        root.close()


@pytest.mark.mysql
def test_a_mysql_source_goes_away_and_comes_back(store_copy, mysql_store, tmp_path, serve):
    url, root, user, name = mysql_store
    t0 = time.time() - 3 * 86400
    for i in range(3):                      # a pipeline on a MySQL store, written with the ml_metadata API
        append_run(url, "mysql_pipeline", started_at=t0 + i * 3600)
    s = serve([store_copy("prod"), url], tmp_path / "w.duckdb", extra=["--ingest-every", "3600"])
    sid = next(x["source"] for x in s.get("/api/v1/sources").json()["sources"] if x["kind"] == "mysql")
    assert s.sql(f"SELECT count(*) FROM graphlets WHERE source_id = '{sid}'") == [[3]]
    d = s.decide("mysql_pipeline")
    assert d["source"] == sid and d["action"] == "run"      # three trainings: too little history to prune

    # the server refuses the service's user now (as after a password rotation or a network cut)
    root.execute(f"DROP USER '{user}'@'%'")
    did = s.post("/api/v1/ingest").json()
    states = {x["source"]: x for x in did["sources"]}
    assert states[sid]["status"] == "error" and states[sid]["failures"] == 1
    assert user in states[sid]["error"] or "denied" in states[sid]["error"].lower()
    assert states["prod"]["status"] == "ok"
    assert s.decide("mysql_pipeline")["action"] == "run"     # decisions go on from what was read
    assert s.get("/readyz").status_code == 200

    # access comes back, with a run recorded meanwhile: the next refresh reads it
    root.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-{user}'")
    root.execute(f"GRANT ALL ON {name}.* TO '{user}'@'%'")
    append_run(url, "mysql_pipeline", started_at=t0 + 4 * 3600)
    did = s.post("/api/v1/ingest").json()
    states = {x["source"]: x for x in did["sources"]}
    assert states[sid]["status"] == "ok" and states[sid]["error"] is None and did["changed_sources"] == [sid]
    assert s.sql(f"SELECT count(*) FROM graphlets WHERE source_id = '{sid}'") == [[4]]
