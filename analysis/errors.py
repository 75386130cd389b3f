"""Errors of `analysis`: each message says what is wrong and how to fix it."""

from __future__ import annotations

__all__ = ["AnalysisError", "UnknownPipelineError", "AmbiguousPipelineError", "UnknownRunError"]


class AnalysisError(Exception):
    """Base class of every error `analysis` raises for bad input or configuration.

    The command line prints the message (no traceback) and exits with status 2.
    """


class UnknownPipelineError(AnalysisError):
    """No analysed source holds a pipeline of that name (the message lists known ones)."""


class AmbiguousPipelineError(AnalysisError):
    """Several sources hold a pipeline of that name and none was chosen (the message lists them)."""


class UnknownRunError(AnalysisError):
    """The pipeline has no run of that name or trainer execution id (the message says what it has)."""
