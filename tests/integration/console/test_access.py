"""Signing in to the console, its cookies, and the CSRF check on every form: over HTTP, with keys required."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.api.main import create_app
from app.auth import keys
from app.auth.principal import Role
from app.config import Settings
from app.console import session
from app.db.engine import make_engine
from app.db.models import ApiKey

HTML = {"Accept": "text/html"}


class Console:
    """A browser-like client of an app that requires keys, with a key of each role (and one that expires soon)."""

    def __init__(self, client: TestClient, secrets: dict[str, str], settings: Settings) -> None:
        self.client = client
        self.secrets = secrets
        self.settings = settings

    def token(self) -> str:
        """The CSRF token of the sign-in page's form (which also sets the CSRF cookie)."""
        page = self.client.get("/console/sign-in", headers=HTML)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert found is not None
        return found.group(1)

    def sign_in(self, who: str, next: str = "/console") -> object:
        form = {"key": self.secrets.get(who, who), "next": next, "csrf_token": self.token()}
        return self.client.post("/console/sign-in", data=form, headers=HTML, follow_redirects=False)


@pytest.fixture
def console(fresh_db_url: str) -> Iterator[Console]:
    settings = Settings(database_url=fresh_db_url, auth="required", console_session_hours=2)
    engine = make_engine(settings, "test")
    with Session(engine) as db:
        secrets = {role.name: keys.create(db, settings, f"{role.name}-key", role).secret for role in Role}
        secrets["brief"] = keys.create(db, settings, "brief", Role.read, expires_in=timedelta(minutes=10)).secret
        db.commit()
    with TestClient(create_app(settings, engine=engine), base_url="http://127.0.0.1") as client:
        admin = {"Authorization": f"Bearer {secrets['admin']}"}
        body = {"name": "handbook", "embedding_provider": "hashing", "dimensions": 8}
        assert client.post("/v1/collections", json=body, headers=admin).status_code == 201
        yield Console(client, secrets, settings)
    engine.dispose()


def cookie_of(response: object, name: str) -> SimpleCookie:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    found = SimpleCookie()
    for header in headers:
        if header.startswith(name + "="):
            found.load(header)
    assert name in found, headers
    return found


def test_a_page_without_a_key_sends_a_browser_to_sign_in_and_a_script_gets_a_401(console: Console) -> None:
    browser = console.client.get("/console/collections/handbook?status=ready", headers=HTML, follow_redirects=False)
    script = console.client.get("/console/collections/handbook")

    assert browser.status_code == 303
    assert browser.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fcollections%2Fhandbook%3Fstatus%3Dready"
    assert script.status_code == 401
    assert script.json()["error"]["code"] == "unauthorized"


def test_signing_in_keeps_the_key_in_a_strict_http_only_cookie_for_the_console_alone(console: Console) -> None:
    response = console.sign_in("write", next="/console/collections/handbook")

    assert response.status_code == 303
    assert response.headers["location"] == "/console/collections/handbook"
    cookie = cookie_of(response, session.KEY_COOKIE)[session.KEY_COOKIE]
    assert cookie.value == console.secrets["write"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "strict"
    assert cookie["path"] == "/console"
    assert int(cookie["max-age"]) == 2 * 3600
    page = console.client.get("/console/collections/handbook", headers=HTML)
    assert page.status_code == 200
    assert "Signed in (write)" in page.text
    assert console.client.get("/v1/collections").status_code == 401  # /v1 takes keys from headers only


def test_a_key_that_expires_soon_signs_in_until_it_expires(console: Console) -> None:
    response = console.sign_in("brief")

    max_age = int(cookie_of(response, session.KEY_COOKIE)[session.KEY_COOKIE]["max-age"])
    assert 9 * 60 <= max_age <= 10 * 60


def test_a_key_that_is_not_live_is_the_form_again_with_the_reason(console: Console) -> None:
    unknown = console.sign_in("mk_" + "x" * 43)
    not_a_key = console.sign_in("hunter2")

    assert unknown.status_code == not_a_key.status_code == 401
    assert "That key is not valid: it is unknown, expired or revoked." in unknown.text
    assert "That is not an API key" in not_a_key.text
    assert session.KEY_COOKIE not in unknown.headers.get("set-cookie", "")


def test_sign_in_sends_nobody_to_another_site(console: Console) -> None:
    for target in ("https://evil.example/", "//evil.example/console", "/v1/keys", "/consolex"):
        assert console.sign_in("read", next=target).headers["location"] == "/console"


def test_a_revoked_key_in_the_cookie_is_forgotten_and_the_browser_sent_to_sign_in(console: Console) -> None:
    console.sign_in("read")
    with Session(console.client.app.state.engine) as db:  # type: ignore[attr-defined]
        db.execute(update(ApiKey).where(ApiKey.name == "read-key").values(revoked_at=ApiKey.created_at))
        db.commit()

    page = console.client.get("/console", headers=HTML, follow_redirects=False)
    sign_in = console.client.get("/console/sign-in", headers=HTML)

    assert page.status_code == 303
    assert page.headers["location"].startswith("/console/sign-in")
    assert 'memora_key=""' in page.headers["set-cookie"]
    assert sign_in.status_code == 200  # a stale cookie does not lock anyone out of the sign-in page


def test_every_form_needs_the_csrf_token_of_its_cookie(console: Console) -> None:
    console.sign_in("admin")
    token = console.token()
    files = {"files": ("a.txt", b"Some text.", "text/plain")}
    url = "/console/collections/handbook/documents"

    missing = console.client.post(url, files=files, headers=HTML)
    forged = console.client.post(url, files=files, data={"csrf_token": token[:-2] + "AA"}, headers=HTML)
    in_form = console.client.post(url, files=files, data={"csrf_token": token}, headers=HTML)
    in_header = console.client.post(url, files=files, headers={"X-CSRF-Token": token, "Accept": "application/json"})

    assert missing.status_code == forged.status_code == 403
    assert "the form&#39;s CSRF token is missing" in missing.text
    assert in_form.status_code == 200
    assert in_header.json()["documents"] == [{"external_id": "a.txt", "status": "pending", "version": 1,
                                              "action": "unchanged"}]  # fmt: skip


def test_signing_out_forgets_the_key(console: Console) -> None:
    console.sign_in("read")
    response = console.client.post(
        "/console/sign-out", data={"csrf_token": console.token()}, headers=HTML, follow_redirects=False
    )

    assert response.status_code == 303
    assert 'memora_key=""' in response.headers["set-cookie"]
    assert console.client.get("/console", headers=HTML, follow_redirects=False).status_code == 303


def test_a_read_key_sees_no_write_controls_and_its_writes_are_refused(console: Console) -> None:
    console.sign_in("read")
    token = console.token()

    page = console.client.get("/console/collections/handbook", headers=HTML)
    home = console.client.get("/console", headers=HTML)
    upload = console.client.post(
        "/console/collections/handbook/documents",
        files={"files": ("a.txt", b"Some text.", "text/plain")},
        headers={"X-CSRF-Token": token, "Accept": "application/json"},
    )

    assert page.status_code == home.status_code == 200
    assert "data-upload" not in page.text
    assert "New collection" not in home.text
    assert upload.status_code == 403
    assert upload.json()["error"]["details"] == {"needed": "write", "role": "read"}


def test_a_key_with_a_nul_or_other_stray_character_is_refused_without_a_lookup(console: Console) -> None:
    """Found in review: a key shaped like one but for a NUL reached the database's lookup, a 500."""
    for key in ("mk_\x00" + "a" * 42, "mk_" + "a" * 42 + "\u00e9"):
        response = console.sign_in(key)

        assert response.status_code in (401, 422), response.text
