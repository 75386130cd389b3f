"""frugal-client: ask the frugal service whether a pipeline run should train; fail open.

`frugal_client` itself imports nothing outside the standard library; the orchestrator gates
live in submodules that import their orchestrator only when used: `frugal_client.tfx`
(TFX component), `frugal_client.kfp` (Kubeflow Pipelines component), `frugal_client.airflow`
(a ShortCircuitOperator callable).
"""

from __future__ import annotations

from .client import Client
from .decision import Decision
from .errors import (
    BadAnswer,
    FrugalClientError,
    RequestRejected,
    ServiceError,
    ServiceTimeout,
    ServiceUnreachable,
)

__all__ = [
    "Client",
    "Decision",
    "FrugalClientError",
    "ServiceUnreachable",
    "ServiceTimeout",
    "ServiceError",
    "RequestRejected",
    "BadAnswer",
]

__version__ = "0.1.0"
