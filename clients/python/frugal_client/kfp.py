"""`frugal_gate`: a Kubeflow Pipelines (v2) component that answers "run" or "prune".

Guard the training with ``dsl.If`` on its output::

    from kfp import dsl
    from frugal_client.kfp import frugal_gate

    @dsl.pipeline(name="penguin")
    def penguin():
        data = ingest()
        gate = frugal_gate(pipeline="penguin", url="http://frugal.ml.svc:8470",
                           run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER).after(data)
        with dsl.If(gate.output == "run"):
            model = train(examples=data.outputs["examples"])

The component runs in its own container: its image must hold ``frugal-client`` (build it in,
or make a gate with ``make_frugal_gate(packages_to_install=[...])`` pointing at your index or
wheel). It fails open: a missing client, no service, a slow or bad answer all give "run".

Importing this module imports kfp; ``frugal_client`` itself does not.
"""

# No `from __future__ import annotations` here: kfp reads the gate's annotations as types.
from typing import Optional, Sequence

from kfp import dsl

__all__ = ["frugal_gate", "make_frugal_gate", "gate_function", "DEFAULT_IMAGE"]

DEFAULT_IMAGE = "python:3.11-slim"


def frugal_gate(pipeline: str, url: str, token: str = "", lane: str = "", run_id: str = "",
                timeout_s: float = 2.0) -> str:
    """Ask the frugal service whether this run of ``pipeline`` should train: "run" or "prune"."""
    import logging

    try:
        from frugal_client import Client

        decision = Client(url, token=token or None, timeout_s=timeout_s).decide(
            pipeline, lane=lane or None, run_id=run_id or None)
    except Exception as e:  # noqa: BLE001 - a gate never breaks the pipeline it guards
        logging.warning("frugal gate: %s: %s; failing open: run", type(e).__name__, e)
        return "run"
    logging.info("frugal gate: %s (decision %s, fallback %s, reasons %s)", decision.action,
                 decision.decision_id, decision.fallback, "; ".join(decision.reasons))
    return decision.action


gate_function = frugal_gate


def make_frugal_gate(base_image: str = DEFAULT_IMAGE, packages_to_install: Optional[Sequence[str]] = None,
                     pip_index_urls: Optional[Sequence[str]] = None):
    """A `frugal_gate` component on another image, or installing frugal-client from your index."""
    return dsl.component(gate_function, base_image=base_image,
                         packages_to_install=list(packages_to_install) if packages_to_install else None,
                         pip_index_urls=list(pip_index_urls) if pip_index_urls else None)


frugal_gate = make_frugal_gate()
