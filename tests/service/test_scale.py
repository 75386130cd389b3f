"""`frugal serve` at scale: answers while the first policy is fitted (warm-up), learns within its
memory limit from a bounded training set, and keeps its last policy when a refit runs out of memory."""

from __future__ import annotations

import time

import pytest

from frugal.service.config import ConfigError, ServiceConfig, load_toml
from frugal.service.memory import parse_size


def _pipeline(s) -> str:
    return s.sql("SELECT pipeline FROM graphlets GROUP BY 1 ORDER BY 1 LIMIT 1")[0][0]


def test_memory_limit_setting(tmp_path):
    assert parse_size("6GB") == 6 * 1000 ** 3 and parse_size("512MiB") == 512 << 20 and parse_size(10 ** 9) == 10 ** 9
    cfg = ServiceConfig(stores=("a.sqlite",), warehouse=tmp_path / "w.duckdb", memory_limit="2GB")
    assert cfg.memory_limit == 2 * 1000 ** 3
    default = ServiceConfig(stores=("a.sqlite",), warehouse=tmp_path / "w.duckdb")
    assert isinstance(default.memory_limit, int) and default.memory_limit > 256 * 1000 ** 2
    for bad in ("lots", "0GB", "100MB"):
        with pytest.raises(ConfigError, match="memory_limit"):
            ServiceConfig(stores=("a.sqlite",), warehouse=tmp_path / "w.duckdb", memory_limit=bad)
    with pytest.raises(ConfigError, match="learn_max_rows"):
        ServiceConfig(stores=("a.sqlite",), warehouse=tmp_path / "w.duckdb", learn_max_rows=10)
    toml = tmp_path / "f.toml"
    toml.write_text('[serve]\nstores = ["a.sqlite"]\nwarehouse = "w.duckdb"\nmemory_limit = "6GB"\n'
                    'learn_max_rows = 5000\n')
    data = load_toml(toml)
    assert data["memory_limit"] == "6GB" and data["learn_max_rows"] == 5000


def test_first_start_answers_while_the_policy_warms_up(store_copy, tmp_path, serve, monkeypatch):
    # a first fit that takes 25 s: decisions are answered meanwhile, every training runs
    monkeypatch.setenv("FRUGAL_REFIT_DELAY_S", "25")
    s = serve([store_copy()], tmp_path / "w.duckdb", extra=["--ingest-every", "3600"], wait_ready=False)
    t0 = time.monotonic()
    while True:
        r = s.get("/readyz")
        body = r.json()
        if body.get("answering") or r.status_code == 200:
            break
        assert time.monotonic() - t0 < 60, body
        time.sleep(0.2)
    assert r.status_code == 503 and body["ready"] is False and body["answering"] is True
    assert body["warmup"]["step"] in ("warm-up", "fitting"), body
    while s.get("/readyz").json()["warmup"]["step"] != "fitting":
        assert time.monotonic() - t0 < 60
        time.sleep(0.2)
    progress = s.call("GET", "/api/v1/sources")["progress"]
    assert progress["warming_up"] is True and progress["step"]["step"] == "fitting"
    pipeline = _pipeline(s)
    early = s.decide(pipeline)
    assert early["action"] == "run" and early["policy_version"] == "none"
    assert "warming up" in " ".join(early["reasons"]) and "warming up" in early["fallback"]
    answered_s = time.monotonic() - t0
    # the fit ends: the policy's own decisions
    while s.get("/readyz").status_code != 200:
        assert time.monotonic() - t0 < 180, s.log_tail()
        time.sleep(0.5)
    ready_s = time.monotonic() - t0
    assert answered_s < ready_s and ready_s >= 25
    late = s.decide(pipeline)
    assert late["policy_version"] != "none" and "warming up" not in " ".join(late["reasons"])
    assert late["probability"] is not None or late["fallback"] is None
    progress = s.call("GET", "/api/v1/sources")["progress"]
    assert progress["warming_up"] is False and progress["last_refit"]["ok"] is True


def test_refit_within_a_small_memory_limit_learns_from_a_bounded_set(store_copy, tmp_path, serve, monkeypatch):
    # 1141 trainings, a limit of 300MB and at most 400 trainings learned from: a sample, weighted
    s = serve([store_copy()], tmp_path / "w.duckdb",
              extra=["--ingest-every", "3600", "--memory-limit", "300MB", "--learn-max-rows", "400"])
    progress = s.call("GET", "/api/v1/sources")["progress"]
    refit = progress["last_refit"]
    assert refit["ok"] is True and refit["where"] == "in a child process", refit
    plan = refit["training_set"]
    assert plan["bounded"] is True and plan["recent"] + plan["sampled"] <= 400 < plan["total"]
    assert progress["memory_limit"] == "300MB"
    limit = s.sql("SELECT current_setting('memory_limit')")[0][0]
    assert limit.endswith("MiB") and float(limit.split()[0]) < 100, limit   # the service's DuckDB share
    policy = s.call("GET", "/api/v1/policy")["policy"]
    assert policy["trainings"] == plan["total"]      # no endless refits: the warehouse's count is recorded
    version = policy["version"]
    pipeline = _pipeline(s)
    assert s.decide(pipeline)["policy_version"] == version
    s.stop()

    # the next refit runs out of memory (an address-space limit far too small for it): the
    # service says why and keeps answering from its last policy
    monkeypatch.setenv("FRUGAL_REFIT_ADDRESS_LIMIT", str(300 * 1000 ** 2))
    s.start()
    assert s.get("/readyz").json()["policy_version"] == version
    t0 = time.monotonic()
    while not s.call("GET", "/api/v1/sources")["last_refresh"]:   # the restart's first refresh is done
        assert time.monotonic() - t0 < 120
        time.sleep(0.2)
    did = s.call("POST", "/api/v1/policy/refit")
    assert did["policy"]["version"] == version, did
    assert "memory" in did["refit_error"].lower(), did
    refit = s.call("GET", "/api/v1/sources")["progress"]["last_refit"]
    assert refit["ok"] is False and "memory" in refit["error"].lower()
    answer = s.decide(pipeline)
    assert answer["policy_version"] == version
    assert s.get("/readyz").status_code == 200
