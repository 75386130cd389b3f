"""Errors of `pipelines`: each message says what is wrong and how to fix it."""

from __future__ import annotations

__all__ = ["PipelineError"]


class PipelineError(Exception):
    """Base class of every error `pipelines` raises for bad input or configuration.

    The command line prints the message (no traceback) and exits with status 2.
    """
