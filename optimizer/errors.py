"""Errors of `optimizer`: each message says what is wrong and how to fix it."""

from __future__ import annotations

__all__ = ["OptimizerError"]


class OptimizerError(Exception):
    """Base class of every error `optimizer` raises for bad input or configuration.

    The command line prints the message (no traceback) and exits with status 2.
    """
