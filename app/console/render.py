"""Rendering console pages: one Jinja2 environment (autoescaped), and the headers every page carries.

The Content-Security-Policy lets a page load only what the app serves itself: no outside script, style, font, image
or connection, no inline script, and no framing. A console page that reached for the network would be refused by the
browser before any test notices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.auth.principal import Role, current

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """TEMPLATE rendered for REQUEST's caller: what it may do (can_write, can_admin) decides which controls show."""
    principal = current(request)
    context |= {"can_write": principal.may(Role.write), "can_admin": principal.may(Role.admin)}
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status_code, headers=HEADERS)
    return response
