"""Why an answer from the frugal service could not be used.

`Client.decide` turns each of these into a fail-open `run` decision (its `fallback` names the
cause); `Client.decide(..., fail_open=False)` raises them, for callers that want to know.
"""

from __future__ import annotations

__all__ = [
    "FrugalClientError",
    "ServiceUnreachable",
    "ServiceTimeout",
    "ServiceError",
    "RequestRejected",
    "BadAnswer",
]


class FrugalClientError(Exception):
    """Base class: the service gave no usable decision. `fallback` is the short cause code."""

    fallback = "error"


class ServiceUnreachable(FrugalClientError):
    """No connection could be made (service stopped, wrong host or port)."""

    fallback = "unreachable"


class ServiceTimeout(FrugalClientError):
    """The service did not answer within the client's `timeout_s`."""

    fallback = "timeout"


class ServiceError(FrugalClientError):
    """The service answered with a 5xx status."""

    fallback = "server-error"


class RequestRejected(FrugalClientError):
    """The service refused the request (4xx: bad token, unknown pipeline, ambiguous source)."""

    fallback = "rejected"


class BadAnswer(FrugalClientError):
    """The service answered 200 with something that is not a decision."""

    fallback = "bad-answer"
