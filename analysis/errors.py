"""Errors of `analysis`: each message says what is wrong and how to fix it."""

from __future__ import annotations

__all__ = ["AnalysisError"]


class AnalysisError(Exception):
    """Base class of every error `analysis` raises for bad input or configuration.

    The command line prints the message (no traceback) and exits with status 2.
    """
