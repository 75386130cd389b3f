"""The frugal service client: ask whether a pipeline run should train, and never break the run.

Standard library only, so it installs into TFX, Kubeflow or Airflow images whose pins clash with
frugal's own. `decide` fails open: when the service is unreachable, slower than `timeout_s`
(the whole request, not each socket read), answers 5xx or 4xx, or answers something that is not
a decision, the result is `run` with `fallback` naming the cause, and the cause is logged.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional, Sequence, Union

from .decision import Decision, fail_open_decision, parse_decision
from .errors import (
    BadAnswer,
    FrugalClientError,
    RequestRejected,
    ServiceError,
    ServiceTimeout,
    ServiceUnreachable,
)

__all__ = ["Client", "DECISIONS_PATH"]

logger = logging.getLogger(__name__)

DECISIONS_PATH = "/api/v1/decisions"


class Client:
    """A connection-less client of one frugal service (`frugal serve`).

    `url` is the service's base URL (http://host:port), `token` the bearer token when the
    service was started with `--token-file`, `timeout_s` the most a decision may take.
    """

    def __init__(self, url: str, token: Optional[str] = None, timeout_s: float = 2.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"frugal service url {url!r} must start with http:// or https://")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = float(timeout_s)

    def __repr__(self) -> str:
        return f"Client({self.url!r}, timeout_s={self.timeout_s})"

    def decide(
        self,
        pipeline: str,
        lane: Optional[str] = None,
        run_id: Optional[str] = None,
        source: Optional[str] = None,
        inputs: Optional[Sequence[Union[int, str]]] = None,
        fail_open: bool = True,
    ) -> Decision:
        """Ask whether this run of `pipeline` should train.

        `inputs` are the MLMD artifact ids of this run's upstream artifacts (examples,
        statistics, anomalies), so the decision sees this run's data. With `fail_open`
        (the default) any failure gives a `run` decision; otherwise it raises
        `FrugalClientError`.
        """
        body: Dict[str, Any] = {"pipeline": pipeline}
        for key, value in (("lane", lane), ("run_id", run_id), ("source", source)):
            if value is not None:
                body[key] = value
        if inputs is not None:
            body["inputs"] = [_artifact_id(i) for i in inputs]
        try:
            return parse_decision(self._post(DECISIONS_PATH, body))
        except FrugalClientError as e:
            if not fail_open:
                raise
            logger.warning(
                "frugal: no decision for pipeline %r from %s (%s: %s); failing open: run",
                pipeline, self.url, e.fallback, e,
            )
            return fail_open_decision(pipeline, e.fallback, f"{e.fallback}: {e}", lane=lane)

    def _post(self, path: str, body: Dict[str, Any]) -> Any:
        """POST JSON and return the parsed answer within `timeout_s` in total."""
        outcome: List[Any] = []

        def call() -> None:
            try:
                outcome.append((True, self._request(path, body)))
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                outcome.append((False, e))

        worker = threading.Thread(target=call, name="frugal-client", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        if not outcome:
            raise ServiceTimeout(f"no answer within {self.timeout_s:g} s")
        ok, value = outcome[0]
        if ok:
            return value
        raise value

    def _request(self, path: str, body: Dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            detail = _detail(e)
            if e.code >= 500:
                raise ServiceError(f"HTTP {e.code}: {detail}") from e
            raise RequestRejected(f"HTTP {e.code}: {detail}") from e
        except urllib.error.URLError as e:
            if isinstance(e.reason, (socket.timeout, TimeoutError)):
                raise ServiceTimeout(f"no answer within {self.timeout_s:g} s") from e
            raise ServiceUnreachable(str(e.reason)) from e
        except (socket.timeout, TimeoutError) as e:
            raise ServiceTimeout(f"no answer within {self.timeout_s:g} s") from e
        except (ConnectionError, OSError) as e:
            raise ServiceUnreachable(str(e)) from e
        except Exception as e:  # http.client.HTTPException and friends: a broken answer
            raise BadAnswer(f"{type(e).__name__}: {e}") from e
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise BadAnswer(f"not JSON: {raw[:80]!r}") from e


def _artifact_id(value: Union[int, str]) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"inputs must be MLMD artifact ids (integers), got {value!r}") from None


def _detail(error: urllib.error.HTTPError) -> str:
    """The service's `{"detail": msg}` when it sent one, else the start of the body."""
    try:
        raw = error.read()
    except Exception:  # noqa: BLE001 - the status alone is enough
        return error.reason or ""
    try:
        body = json.loads(raw.decode("utf-8"))
        if isinstance(body, dict) and "detail" in body:
            return str(body["detail"])
    except (UnicodeDecodeError, ValueError):
        pass
    return raw[:200].decode("utf-8", "replace")
