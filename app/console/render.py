"""Rendering console pages: one Jinja2 environment (autoescaped), and the headers every page carries.

The Content-Security-Policy lets a page load only what the app serves itself: no outside script, style, font, image
or connection, no inline script, and no framing. A console page that reached for the network would be refused by the
browser before any test notices.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from app.auth.access import console_key
from app.auth.mode import keys_required
from app.auth.principal import ANONYMOUS, Principal, Role
from app.config import Settings
from app.console.session import CSRF_COOKIE, csrf_cookie, set_cookie, token_for

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
CITATION = re.compile(r"\[(\d+)\]")
STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def cite(text: str, sources: int) -> Markup:
    """An answer's TEXT, escaped, each citation [n] of one of its SOURCES a link to that source."""

    def link(found: re.Match[str]) -> str:
        n = int(found.group(1))
        return f'<a href="#source-{n}">[{n}]</a>' if 1 <= n <= sources else found.group(0)

    return Markup(CITATION.sub(link, str(escape(text))))


TEMPLATES.env.filters["cite"] = cite


def fragment(request: Request, template: str, **context: Any) -> HTMLResponse:
    """Part of a page (a table's rows), which a script swaps in for the part it shows."""
    return page(request, template, **context)


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """TEMPLATE rendered for REQUEST's caller: what it may do (can_write, can_admin) decides which controls show."""
    principal: Principal = getattr(request.state, "principal", None) or ANONYMOUS
    settings: Settings = request.app.state.settings
    cookie, new = csrf_cookie(request)
    context |= {
        "can_write": principal.may(Role.write),
        "can_admin": principal.may(Role.admin),
        "signed_in": console_key(request) is not None and principal is not ANONYMOUS,
        "keys_required": keys_required(settings),
        "csrf_token": token_for(settings, cookie),
    }
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status_code, headers=HEADERS)
    if new:
        # Lax, not Strict: a console page reached by a link from another site (where a Strict cookie is withheld)
        # keeps the cookie other tabs' forms were signed for; the token still has to match it.
        set_cookie(request, response, CSRF_COOKIE, cookie, samesite="lax")
    return response
