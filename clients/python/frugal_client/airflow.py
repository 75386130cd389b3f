"""`should_train`: the callable of an Airflow ``ShortCircuitOperator`` that asks frugal first.

A falsy return skips every task downstream of the operator (the training and what needs it)::

    from airflow.operators.python import ShortCircuitOperator
    from frugal_client.airflow import should_train

    gate = ShortCircuitOperator(
        task_id="frugal_gate",
        python_callable=should_train,
        op_kwargs={"pipeline": "penguin", "url": "http://frugal:8470"},
        ignore_downstream_trigger_rules=True,
    )
    ingest >> validate >> gate >> train >> evaluate >> push

It fails open: no service, a slow or bad answer return True (train). Importing this module
does not import Airflow; Airflow passes the task context as keyword arguments, of which
``run_id`` goes to the service.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence, Union

from .client import Client

__all__ = ["should_train"]

logger = logging.getLogger(__name__)


def should_train(pipeline: str, url: str, token: Optional[str] = None, lane: Optional[str] = None,
                 timeout_s: float = 2.0, inputs: Optional[Sequence[Union[int, str]]] = None,
                 source: Optional[str] = None, **context: Any) -> bool:
    """True when this run of ``pipeline`` should train (the service said run, or it failed open)."""
    run_id = context.get("run_id")
    try:
        decision = Client(url, token=token, timeout_s=timeout_s).decide(
            pipeline, lane=lane, run_id=str(run_id) if run_id is not None else None, source=source, inputs=inputs)
    except Exception as e:  # noqa: BLE001 - a gate never breaks the pipeline it guards
        logger.warning("frugal gate: %s: %s; failing open: train", type(e).__name__, e)
        return True
    logger.info("frugal gate for %r run %r: %s (decision %s, fallback %s; %s)", pipeline, run_id, decision.action,
                decision.decision_id, decision.fallback, "; ".join(decision.reasons))
    return decision.run
