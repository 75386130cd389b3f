"""The client and the Airflow callable against a real `frugal serve` (bearer token on).

The service reads a copy of the real TFX store penguin_prod; its decisions for the pipeline
`penguin_prod` are real ones, written to the ledger before they are answered.
"""

from __future__ import annotations

import pytest

from frugal_client import Client
from frugal_client.airflow import should_train

PIPELINE = "penguin_prod"
TOKEN = "hooks-test-token"


@pytest.fixture(scope="module")
def service(frugal_service, prod_store):
    return frugal_service([prod_store], token=TOKEN)


def ledger(service, decision_id: str) -> list:
    return service.sql(f"SELECT pipeline, run_id, action, rule FROM decisions WHERE decision_id = '{decision_id}'")


def test_real_decision_is_in_the_ledger(service):
    decision = Client(service.url, token=TOKEN).decide(PIPELINE, run_id="airflow-run-1")
    assert decision.action == "run" and len(decision.decision_id) == 32
    assert decision.pipeline == PIPELINE and decision.policy_version
    assert ledger(service, decision.decision_id) == [[PIPELINE, "airflow-run-1", "run", None]]


def test_wrong_token_and_unknown_pipeline_fail_open(service):
    decision = Client(service.url, token="wrong").decide(PIPELINE)
    assert (decision.action, decision.fallback, decision.decision_id) == ("run", "rejected", None)
    assert "401" in decision.reasons[0]
    decision = Client(service.url, token=TOKEN).decide("no_such_pipeline")
    assert (decision.action, decision.fallback) == ("run", "rejected")
    assert "404" in decision.reasons[0] and "no_such_pipeline" in decision.reasons[0]


def test_should_train_follows_an_operator_rule_and_fails_open(service, closed_port):
    service.call("POST", "/api/v1/rules", {"pipeline": PIPELINE, "action": "prune", "reason": "freeze"})
    try:
        assert should_train(PIPELINE, service.url, token=TOKEN, run_id="scheduled__2026-12-02") is False
        pruned = service.sql("SELECT run_id, action, rule FROM decisions WHERE run_id = 'scheduled__2026-12-02'")
        assert pruned == [["scheduled__2026-12-02", "prune", "freeze"]]
        assert should_train(PIPELINE, f"http://127.0.0.1:{closed_port}", token=TOKEN) is True
        assert should_train(PIPELINE, "not a url") is True
    finally:
        service.call("DELETE", f"/api/v1/rules/{PIPELINE}")
    assert should_train(PIPELINE, service.url, token=TOKEN, run_id="manual__1", dag=object()) is True


def test_stopped_service_fails_open(frugal_service, prod_store):
    stopped = frugal_service([prod_store])
    url = stopped.url
    assert Client(url).decide(PIPELINE).decision_id is not None
    stopped.stop()
    decision = Client(url).decide(PIPELINE)
    assert (decision.action, decision.fallback) == ("run", "unreachable")
