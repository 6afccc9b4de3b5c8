"""Who a console visitor is, and proof that a form came from the console: two cookies, both HttpOnly and scoped to
/console, so the JSON API under /v1 never sees them.

- `memora_key`: the API key a person signed in with (POST /console/sign-in). app/auth/access.py reads it for /console
  paths only, and a key sent in a header wins. It lives until sign-out, the key's expiry, or
  MEMORA_CONSOLE_SESSION_HOURS, whichever comes first. On an open loopback server nobody needs to sign in.
- `memora_csrf`: a random value set on the first console page. Every form carries `csrf_token`, and every script
  request `X-CSRF-Token`, equal to HMAC(secret, value) (a signed double submit). A page of another site can neither
  read the cookie nor compute the token, and the key cookie's SameSite=Strict keeps the browser from sending the key
  with its requests at all. The CSRF cookie is SameSite=Lax: a console page reached by a link from elsewhere then
  keeps it, and the forms of other open tabs stay valid.
  The secret is MEMORA_API_KEY_SECRET, or random per process when it is unset (several processes behind one address
  then need the secret set).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from fastapi import Request, Response
from starlette.datastructures import FormData

from app.config import Settings
from app.errors import AppError, InvalidInputError

KEY_COOKIE = "memora_key"
CSRF_COOKIE = "memora_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
PATH = "/console"


class CsrfError(AppError):
    status = 403
    code = "csrf_failed"


def secret_of(settings: Settings) -> bytes:
    """The secret console tokens are signed with, drawn once per process when MEMORA_API_KEY_SECRET is unset."""
    if settings.api_key_secret is not None:
        return hashlib.sha256(b"console|" + settings.api_key_secret.get_secret_value().encode()).digest()
    return _PROCESS_SECRET


_PROCESS_SECRET = secrets.token_bytes(32)


def token_for(settings: Settings, cookie: str) -> str:
    digest = hmac.new(secret_of(settings), b"csrf|" + cookie.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def csrf_cookie(request: Request) -> tuple[str, bool]:
    """The request's CSRF cookie value, and whether it is new (to be set on the response)."""
    value = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(value) <= 100:
        return value, False
    return secrets.token_urlsafe(32), True


def set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None = None, samesite: str = "strict"
) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path=PATH, httponly=True, samesite=samesite,  # type: ignore[arg-type]
        secure=request.url.scheme == "https",
    )  # fmt: skip


def sign_in(request: Request, response: Response, key: str, expires_at: datetime | None) -> None:
    """Keep KEY in the visitor's cookie until the earlier of its expiry and the console session's length."""
    settings: Settings = request.app.state.settings
    max_age = int(settings.console_session_hours * 3600)
    if expires_at is not None:
        max_age = min(max_age, max(0, int((expires_at - datetime.now(UTC)).total_seconds())))
    set_cookie(request, response, KEY_COOKIE, key, max_age)


def sign_out(request: Request, response: Response) -> None:
    response.delete_cookie(KEY_COOKIE, path=PATH, httponly=True, samesite="strict")


async def check_form(request: Request) -> None:
    """What every console POST passes before its route runs: a 403 `csrf_failed` unless the request carries the
    token of its CSRF cookie, in X-CSRF-Token (scripts) or in the form's csrf_token field; and a 422 naming the field
    for text PostgreSQL cannot store (a NUL character). A form is read here with the upload limits (the body's size
    is bounded before, by MEMORA_MAX_UPLOAD_BYTES), and Starlette keeps it for the route."""
    settings: Settings = request.app.state.settings
    cookie = request.cookies.get(CSRF_COOKIE)
    sent = request.headers.get(CSRF_HEADER)
    form: FormData | None = None
    if _is_form(request):
        form = await request.form(max_files=10_000, max_part_size=settings.max_upload_bytes)
        field = form.get(CSRF_FIELD)
        sent = sent if sent is not None else field if isinstance(field, str) else None
    problem = _unstorable(form) if form is not None else None
    if (
        problem
        or not cookie
        or not sent
        or not hmac.compare_digest(sent.encode(), token_for(settings, cookie).encode())
    ):
        if form is not None:
            await form.close()  # its uploaded files, which no route will read now
        if problem:
            raise InvalidInputError.for_field(problem, "contains a NUL character, which text cannot hold")
        raise CsrfError(
            "the form's CSRF token is missing or does not match this browser's: reload the page and try again",
            details=[{"field": CSRF_FIELD, "reason": "missing or not matching the memora_csrf cookie"}],
        )


def _unstorable(form: FormData) -> str | None:
    """The first field of FORM (or file, by its name) whose text holds a NUL character, or None."""
    for key, value in form.multi_items():
        text = value if isinstance(value, str) else (value.filename or "")
        if "\x00" in text or "\x00" in key:
            return key.replace("\x00", "\\0")
    return None


def _is_form(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind in ("application/x-www-form-urlencoded", "multipart/form-data")
