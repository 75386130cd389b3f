"""A decision of the frugal service, and how one is read from its JSON answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple

from .errors import BadAnswer

__all__ = ["Decision", "parse_decision", "fail_open_decision"]

ACTIONS = ("run", "prune")


@dataclass(frozen=True)
class Decision:
    """Whether a pipeline run should train (`action` "run") or skip training ("prune").

    `fallback` is None for a decision the service made; otherwise the client decided `run`
    by itself because no usable answer came back, and `fallback` names why
    ("unreachable", "timeout", "server-error", "rejected", "bad-answer").
    """

    action: str
    decision_id: Optional[str] = None
    probability: Optional[float] = None
    threshold: Optional[float] = None
    reasons: Tuple[str, ...] = field(default_factory=tuple)
    fallback: Optional[str] = None
    policy_version: Optional[str] = None
    pipeline: Optional[str] = None
    source: Optional[str] = None
    lane: Optional[str] = None

    @property
    def run(self) -> bool:
        """True when the guarded training should run."""
        return self.action == "run"


def _optional_float(body: Mapping[str, Any], key: str) -> Optional[float]:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadAnswer(f"{key!r} is {value!r}, not a number or null")
    return float(value)


def _optional_str(body: Mapping[str, Any], key: str) -> Optional[str]:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadAnswer(f"{key!r} is {value!r}, not a string or null")
    return value


def parse_decision(body: Any) -> Decision:
    """Read the service's answer to POST /api/v1/decisions; raise `BadAnswer` if it is not one."""
    if not isinstance(body, dict):
        raise BadAnswer(f"the answer is a {type(body).__name__}, not a JSON object")
    action = body.get("action")
    if action not in ACTIONS:
        raise BadAnswer(f"'action' is {action!r}, expected one of {ACTIONS}")
    decision_id = _optional_str(body, "decision_id")
    if not decision_id:
        raise BadAnswer("the answer has no 'decision_id'")
    reasons = body.get("reasons") or []
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise BadAnswer(f"'reasons' is {reasons!r}, not a list of strings")
    return Decision(
        action=action,
        decision_id=decision_id,
        probability=_optional_float(body, "probability"),
        threshold=_optional_float(body, "threshold"),
        reasons=tuple(reasons),
        fallback=_optional_str(body, "fallback"),
        policy_version=_optional_str(body, "policy_version"),
        pipeline=_optional_str(body, "pipeline"),
        source=_optional_str(body, "source"),
        lane=_optional_str(body, "lane"),
    )


def fail_open_decision(pipeline: str, cause: str, detail: str, lane: Optional[str] = None) -> Decision:
    """The decision a hook takes when the service gave no usable answer: run."""
    return Decision(
        action="run",
        reasons=(f"fail-open: {detail}",),
        fallback=cause,
        pipeline=pipeline,
        lane=lane,
    )
