"""Signing in to the console with an API key, and out again (the cookie itself: app/console/session.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine, select

from app.auth import keys
from app.auth.rules import PUBLIC
from app.config import Settings
from app.console import session
from app.console.errors import in_console
from app.console.render import page
from app.db.models import ApiKey

router = APIRouter(include_in_schema=False)
CSRF = Depends(session.check_form)


@router.get("/console/sign-in", name="console_sign_in", dependencies=[PUBLIC])
def sign_in_form(request: Request, next: str = "/console") -> HTMLResponse:
    """The form that takes an API key."""
    return page(request, "sign_in.html", next=_local(next))


@router.post("/console/sign-in", dependencies=[PUBLIC, CSRF])
async def sign_in(
    request: Request, key: Annotated[str, Form(max_length=200)] = "", next: Annotated[str, Form()] = "/console"
) -> Response:
    """Check KEY and keep it in the visitor's cookie, then go on to NEXT (a console page); a key that is not live is
    the form again, with a 401 and the reason."""
    key = key.strip()
    live, expires_at = await run_in_threadpool(_check, request.app.state.engine, request.app.state.settings, key)
    if not live:
        refused = keys.looks_like_key(key)
        return page(request, "sign_in.html", status_code=401, next=_local(next), refused=refused)
    response = RedirectResponse(_local(next), status_code=303)
    session.sign_in(request, response, key, expires_at)
    return response


@router.post("/console/sign-out", name="console_sign_out", dependencies=[PUBLIC, CSRF])
def sign_out(request: Request) -> Response:
    """Forget the key this browser signed in with."""
    response = RedirectResponse("/console/sign-in", status_code=303)
    session.sign_out(request, response)
    return response


def _check(engine: Engine, settings: Settings, token: str) -> tuple[bool, datetime | None]:
    """Whether TOKEN is a live key, and when it expires."""
    with engine.begin() as conn:
        principal = keys.authenticate(conn, settings, token)
        if principal is None:
            return False, None
        return True, conn.scalar(select(ApiKey.expires_at).where(ApiKey.id == principal.key_id))


def _local(target: str) -> str:
    """TARGET when it is a console page of this server, else the console's home: sign-in sends nobody elsewhere."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not in_console(parts.path) or target.startswith("//"):
        return "/console"
    return target
