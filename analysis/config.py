"""Settings of an analysis run, passed explicitly (library code reads no environment)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AnalysisConfig"]


@dataclass(frozen=True)
class AnalysisConfig:
    """Knobs of :func:`analysis.analyze`.

    ``fingerprint_properties``: artifact properties holding a content fingerprint; two input
    artifacts with the same fingerprint count as the same input when looking for redundant
    runs. ``volatile_properties``: execution properties that differ on every run (run ids,
    bookkeeping) and are ignored when comparing runs. ``baseline_keys``: event path keys under
    which an execution reads a model as its baseline (no lineage edge). ``max_steps``: bound on the iterated
    joins that walk lineage (a fixpoint is normally reached in fewer steps than the longest
    pipeline path).
    """

    fingerprint_properties: tuple[str, ...] = (
        "fingerprint", "content_fingerprint", "input_fingerprint", "checksum_md5",
    )
    volatile_properties: tuple[str, ...] = (
        "run_id", "pipeline_run_id", "state", "__external_execution_index__",
        "execution_result", "checksum_md5", "stateful_working_dir",
    )
    baseline_keys: tuple[str, ...] = ("baseline_model",)
    max_steps: int = 200
