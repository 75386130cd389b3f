"""Talk to a running `frugal serve` (which holds the warehouse file) from the command line."""

from __future__ import annotations

from pathlib import Path

__all__ = ["call", "RemoteError"]

from provenance.errors import ProvenanceError


class RemoteError(ProvenanceError):
    """The service could not be reached or refused the request; the message says why."""


def call(url: str, method: str, path: str, *, token_file: Path | None = None, json: dict | None = None,
         timeout: float = 120.0) -> dict:
    """One JSON request to the service at ``url``; RemoteError with the service's own message on failure."""
    import httpx

    headers = {}
    if token_file is not None:
        try:
            headers["Authorization"] = "Bearer " + Path(token_file).read_text(encoding="utf-8").strip().splitlines()[0]
        except (OSError, IndexError) as exc:
            raise RemoteError(f"cannot read the token file {token_file}: {exc}") from exc
    try:
        r = httpx.request(method, url.rstrip("/") + path, json=json, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise RemoteError(f"cannot reach the frugal service at {url}: {exc}. Is `frugal serve` running there?") from exc
    try:
        body = r.json()
    except ValueError as exc:
        raise RemoteError(f"{url} answered {r.status_code} without JSON: is it a frugal service?") from exc
    if r.status_code >= 400:
        raise RemoteError(f"the service answered {r.status_code}: {body.get('detail', body)}")
    return body
