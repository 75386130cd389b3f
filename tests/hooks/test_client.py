"""frugal_client.Client against real servers: well-formed decisions and every fail-open cause."""

from __future__ import annotations

import ast
import json
import logging
import time
from pathlib import Path

import pytest

from frugal_client import BadAnswer, Client, RequestRejected, ServiceTimeout, ServiceUnreachable

CLIENT_SRC = Path(__file__).parent.parent.parent / "clients" / "python" / "frugal_client"


def test_prune_decision_is_read_and_the_request_carries_inputs_and_token(scripted_server):
    url, requests = scripted_server("prune")
    decision = Client(url, token="s3cret").decide("penguin", lane="main", run_id="r7", inputs=[12, "13"])
    assert decision.action == "prune" and decision.run is False
    assert decision.fallback is None and len(decision.decision_id) == 32
    assert decision.probability == pytest.approx(0.1) and decision.threshold == pytest.approx(0.3)
    assert decision.reasons == ("scripted prune",) and decision.lane == "main"
    sent = [json.loads(line) for line in requests.read_text().splitlines()]
    assert sent == [{"body": {"pipeline": "penguin", "lane": "main", "run_id": "r7", "inputs": [12, 13]},
                     "authorization": "Bearer s3cret"}]


def test_closed_port_fails_open(closed_port, caplog):
    with caplog.at_level(logging.WARNING, logger="frugal_client"):
        decision = Client(f"http://127.0.0.1:{closed_port}").decide("penguin")
    assert (decision.action, decision.fallback, decision.decision_id) == ("run", "unreachable", None)
    assert decision.run is True and decision.reasons[0].startswith("fail-open: unreachable")
    assert "failing open" in caplog.text and "penguin" in caplog.text
    with pytest.raises(ServiceUnreachable):
        Client(f"http://127.0.0.1:{closed_port}").decide("penguin", fail_open=False)


def test_slow_service_fails_open_within_the_timeout(scripted_server):
    url, _ = scripted_server("sleep", sleep=10.0)
    started = time.monotonic()
    decision = Client(url, timeout_s=0.5).decide("penguin")
    elapsed = time.monotonic() - started
    assert (decision.action, decision.fallback) == ("run", "timeout")
    assert elapsed < 2.0, f"a 0.5 s timeout took {elapsed:.2f} s"
    with pytest.raises(ServiceTimeout):
        Client(url, timeout_s=0.3).decide("penguin", fail_open=False)


@pytest.mark.parametrize("mode, cause", [("garbage", "bad-answer"), ("not-a-decision", "bad-answer"),
                                         ("error", "server-error"), ("missing", "rejected")])
def test_bad_answers_fail_open(scripted_server, mode, cause):
    url, _ = scripted_server(mode)
    decision = Client(url).decide("penguin")
    assert (decision.action, decision.fallback, decision.decision_id) == ("run", cause, None)
    if mode == "error":
        assert "warehouse is being rebuilt" in decision.reasons[0]
    if mode == "missing":
        assert "unknown pipeline 'penguin'" in decision.reasons[0]


def test_errors_are_raised_when_fail_open_is_off(scripted_server):
    url, _ = scripted_server("garbage")
    with pytest.raises(BadAnswer, match="not JSON"):
        Client(url).decide("penguin", fail_open=False)
    url, _ = scripted_server("missing")
    with pytest.raises(RequestRejected, match="404"):
        Client(url).decide("penguin", fail_open=False)


def test_bad_arguments_are_refused_before_any_request():
    with pytest.raises(ValueError, match="http://"):
        Client("127.0.0.1:8470")
    with pytest.raises(ValueError, match="artifact ids"):
        Client("http://127.0.0.1:1").decide("p", inputs=["examples"])


def test_client_is_standard_library_python_3_9():
    """The distribution must install into old images: Python 3.9 syntax, stdlib imports only."""
    import sys

    allowed = set(sys.stdlib_module_names) | {"frugal_client"}
    for path in CLIENT_SRC.glob("*.py"):
        tree = ast.parse(path.read_text(), feature_version=(3, 9))
        if path.stem in ("tfx", "kfp", "airflow"):
            continue  # the orchestrator gates import their orchestrator
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
