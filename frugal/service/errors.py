"""Errors of `frugal serve`: each carries the HTTP status it is answered with.

The server turns a ``ServiceError`` into ``{"detail": message}`` with ``status``; the message
says what is wrong and how to fix it. Every part of the service raises these (no other module
of the package is imported here, so any of them may).
"""

from __future__ import annotations

__all__ = ["ServiceError", "NotFound", "Conflict", "NotReady", "BadRequest"]


class ServiceError(Exception):
    """An error answered to the caller with ``status`` and this message."""

    status = 500


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class NotReady(ServiceError):
    status = 503


class BadRequest(ServiceError):
    status = 422
