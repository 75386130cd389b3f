"""Errors of `provenance`: each message says what is wrong and how to fix it."""

from __future__ import annotations

__all__ = ["ProvenanceError"]


class ProvenanceError(Exception):
    """Base class of every error `provenance` raises for bad input or configuration.

    The command line prints the message (no traceback) and exits with status 2.
    """
