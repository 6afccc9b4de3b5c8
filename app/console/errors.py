"""Errors as a person in a browser sees them: under /console, a request that accepts HTML gets a page, not JSON; and
one that needs a key it did not send is sent to the sign-in page. Scripts and other clients keep the JSON error body
(they send Accept: application/json, or nothing)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from app.console.session import KEY_COOKIE, PATH


def in_console(path: str) -> bool:
    return path == PATH or path.startswith(PATH + "/")


def wants_html(request: Request) -> bool:
    """True for a browser's navigation or form post to a console page."""
    accept = request.headers.get("accept", "")
    return in_console(request.url.path) and "text/html" in accept and "application/json" not in accept


def error_page(request: Request, status: int, body: dict[str, object]) -> Response:
    """The console's page for the JSON error BODY (its code, message and problems by field); a 401 is a redirect
    to the sign-in page that brings the visitor back (and forgets a key that is no longer valid)."""
    from app.console.render import page

    if status == 401:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = RedirectResponse(f"{PATH}/sign-in?next={quote(back, safe='')}", status_code=303)
        if KEY_COOKIE in request.cookies:
            response.delete_cookie(KEY_COOKIE, path=PATH, httponly=True, samesite="strict")
        return response
    error = body.get("error", {})
    return page(request, "error.html", status_code=status, error=error)
