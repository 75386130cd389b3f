"""`/login`: a form that trades the token for an HttpOnly cookie, so people can open the pages."""

from __future__ import annotations

import hmac
import html
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from frugal.service.middleware import COOKIE

router = APIRouter(tags=["pages"], include_in_schema=False)

_FORM = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>frugal: sign in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:5rem auto;color:#222}}
input{{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box;margin:.4rem 0}}
button{{font-size:1rem;padding:.4rem 1rem}} .err{{color:#a00}}</style></head>
<body><h1>frugal</h1><p>This service needs its token (the first line of its <code>--token-file</code>).</p>
{error}<form method="post" action="/login"><input type="hidden" name="next" value="{next}">
<label>Token <input type="password" name="token" autocomplete="current-password" autofocus></label>
<button type="submit">Sign in</button></form></body></html>"""


def _safe_next(value: str | None) -> str:
    """Only a path on this service (no scheme, no host, no protocol-relative //)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


@router.get("/login", response_class=HTMLResponse)
def form(next: str = "/") -> HTMLResponse:
    return HTMLResponse(_FORM.format(error="", next=html.escape(_safe_next(next), quote=True)))


@router.post("/login")
async def login(request: Request):
    token = request.app.state.token
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    given = (fields.get("token") or [""])[0]
    target = _safe_next((fields.get("next") or ["/"])[0])
    if token is None:
        return RedirectResponse(target, status_code=303)
    if not hmac.compare_digest(given.encode(), token.encode()):
        return HTMLResponse(_FORM.format(error='<p class="err">That token is not right.</p>',
                                         next=html.escape(target, quote=True)), status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
    return response
