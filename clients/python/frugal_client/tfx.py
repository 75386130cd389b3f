"""`FrugalGate`: a TFX component that asks the frugal service whether this run should train.

Put it after data ingestion and validation and guard the training with ``tfx.dsl.Cond`` on
its output; create the guarded nodes *inside* the ``with`` block (created before it, TFX runs
them regardless)::

    gate = FrugalGate(url="http://frugal:8470", examples=example_gen.outputs["examples"],
                      statistics=statistics_gen.outputs["statistics"])
    with tfx.dsl.Cond(gate.outputs["decision"].future()[0].custom_property("run") == 1):
        trainer = tfx.components.Trainer(...)
        evaluator = tfx.components.Evaluator(...)
        pusher = tfx.components.Pusher(...)

The gate sends the MLMD ids of its input artifacts (this run's examples, statistics,
anomalies) and the pipeline run id, and writes one ``FrugalDecision`` artifact whose custom
properties are ``run`` (1/0), ``probability`` (absent when unknown), ``decision_id``,
``reasons`` (JSON list), ``fallback`` and ``action``; ``decision.json`` in its folder holds the
same. It fails open: no usable answer from the service means ``run = 1``. It is never served
from TFX's cache: its ``run_key`` execution property is the pipeline run id.

Importing this module imports TFX; ``frugal_client`` itself does not.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.dsl.placeholder import placeholder as ph
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from .client import Client
from .decision import Decision, fail_open_decision

__all__ = ["FrugalGate", "FrugalGateSpec", "FrugalGateExecutor", "FrugalDecision", "INPUT_KEYS"]

logger = logging.getLogger(__name__)

INPUT_KEYS = ("examples", "statistics", "anomalies")


class FrugalDecision(types.Artifact):
    """The answer of the frugal service for one pipeline run (custom properties, decision.json)."""

    TYPE_NAME = "FrugalDecision"


class FrugalGateSpec(types.ComponentSpec):
    """Parameters, optional upstream inputs and the decision output of `FrugalGate`."""

    PARAMETERS = {
        "url": ExecutionParameter(type=str),
        "pipeline_name": ExecutionParameter(type=str, optional=True),
        "token": ExecutionParameter(type=str, optional=True),
        "token_env": ExecutionParameter(type=str, optional=True),
        "lane": ExecutionParameter(type=str, optional=True),
        "source": ExecutionParameter(type=str, optional=True),
        "timeout_s": ExecutionParameter(type=float),
        "run_key": ExecutionParameter(type=str),
    }
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples, optional=True),
        "statistics": ChannelParameter(type=standard_artifacts.ExampleStatistics, optional=True),
        "anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies, optional=True),
    }
    OUTPUTS = {"decision": ChannelParameter(type=FrugalDecision)}


def _artifact_ids(input_dict: Dict[str, List[types.Artifact]]) -> List[int]:
    """The MLMD ids of this run's upstream artifacts, in input order, without duplicates."""
    ids: List[int] = []
    for key in INPUT_KEYS:
        for artifact in input_dict.get(key, []) or []:
            if artifact.id and artifact.id not in ids:
                ids.append(int(artifact.id))
    return ids


def _write(artifact: types.Artifact, decision: Decision, run_id: Optional[str]) -> None:
    artifact.set_int_custom_property("run", 1 if decision.run else 0)
    artifact.set_string_custom_property("action", decision.action)
    artifact.set_string_custom_property("decision_id", decision.decision_id or "")
    artifact.set_string_custom_property("reasons", json.dumps(list(decision.reasons)))
    artifact.set_string_custom_property("fallback", decision.fallback or "")
    if decision.probability is not None:
        artifact.set_float_custom_property("probability", decision.probability)
    if decision.threshold is not None:
        artifact.set_float_custom_property("threshold", decision.threshold)
    record: Dict[str, Any] = {
        "action": decision.action, "decision_id": decision.decision_id,
        "probability": decision.probability, "threshold": decision.threshold,
        "reasons": list(decision.reasons), "fallback": decision.fallback,
        "policy_version": decision.policy_version, "pipeline": decision.pipeline,
        "lane": decision.lane, "run_id": run_id,
    }
    try:  # TFX's file layer: local folders, gs://, s3:// alike
        fileio.makedirs(artifact.uri)
        with fileio.open(os.path.join(artifact.uri, "decision.json"), "w") as f:
            f.write(json.dumps(record, indent=2))
    except Exception as e:  # noqa: BLE001 - the properties carry the decision; the file is a courtesy
        logger.warning("frugal gate: could not write decision.json to %s: %s", artifact.uri, e)


class FrugalGateExecutor(base_executor.BaseExecutor):
    """Ask the service, fail open, write the decision artifact."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:  # noqa: N802 - TFX's name
        pipeline = exec_properties.get("pipeline_name") or ""
        if not pipeline and self._context is not None and self._context.pipeline_info is not None:
            pipeline = self._context.pipeline_info.id
        run_id = self._context.pipeline_run_id if self._context is not None else None
        lane = exec_properties.get("lane") or None
        try:
            token = exec_properties.get("token") or None
            if exec_properties.get("token_env"):
                token = os.environ.get(exec_properties["token_env"]) or token
            client = Client(exec_properties["url"], token=token, timeout_s=float(exec_properties["timeout_s"]))
            decision = client.decide(pipeline, lane=lane, run_id=run_id,
                                     source=exec_properties.get("source") or None,
                                     inputs=_artifact_ids(input_dict))
        except Exception as e:  # noqa: BLE001 - a gate never breaks the pipeline it guards
            logger.warning("frugal gate: %s: %s; failing open: run", type(e).__name__, e)
            decision = fail_open_decision(pipeline, "error", f"error: {type(e).__name__}: {e}", lane=lane)
        logger.info("frugal gate: pipeline %r run %r: %s (decision %s, fallback %s)", pipeline, run_id,
                    decision.action, decision.decision_id, decision.fallback)
        _write(output_dict["decision"][0], decision, run_id)


class FrugalGate(base_component.BaseComponent):
    """A TFX component whose `decision` output says whether this run should train (see module doc).

    `pipeline_name` defaults to the TFX pipeline's name (the name frugal knows it by, from the
    pipeline context in MLMD). `token` is stored in MLMD as an execution property; to keep a
    secret out of MLMD, name an environment variable of the executor with `token_env`.
    """

    SPEC_CLASS = FrugalGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(FrugalGateExecutor)

    def __init__(self, url: str, pipeline_name: Optional[str] = None, token: Optional[str] = None,
                 lane: Optional[str] = None, examples: Optional[types.BaseChannel] = None,
                 statistics: Optional[types.BaseChannel] = None, anomalies: Optional[types.BaseChannel] = None,
                 timeout_s: float = 2.0, token_env: Optional[str] = None, source: Optional[str] = None) -> None:
        Client(url, timeout_s=timeout_s)  # a wrong url or timeout fails when the pipeline is defined
        spec = FrugalGateSpec(
            url=url, pipeline_name=pipeline_name, token=token, token_env=token_env, lane=lane, source=source,
            timeout_s=float(timeout_s), run_key=ph.execution_invocation().pipeline_run_id,
            examples=examples, statistics=statistics, anomalies=anomalies,
            decision=types.Channel(type=FrugalDecision),
        )
        super().__init__(spec=spec)
