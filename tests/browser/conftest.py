"""Tests in a real browser: Playwright driving the system's Chromium (Debian's `chromium` package; Playwright's own
browser download is not used), against the app served on loopback, with every request to anywhere else refused and
recorded, so a page that reaches for the network fails its test.

The browser: MEMORA_TEST_CHROMIUM, else Debian's binary, else `chromium` on PATH. Without one the tests are skipped
with the command that installs it, unless MEMORA_TEST_BROWSER=required (as `.ci/run` sets), which fails them.
Screenshots go to MEMORA_TEST_OUTPUT (default test-output/) under browser/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.api.main import create_app
from app.config import Settings
from tests.live_server import serving

# /usr/bin/chromium is Debian's shell wrapper (it sets flags and complains on sh); the binary itself is this.
DEBIAN_CHROMIUM = Path("/usr/lib/chromium/chromium")
INSTALL = "apt-get install chromium"
OUTPUT = Path(os.environ.get("MEMORA_TEST_OUTPUT", "test-output")) / "browser"


def chromium() -> str | None:
    for candidate in (os.environ.get("MEMORA_TEST_CHROMIUM"), str(DEBIAN_CHROMIUM), shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.browser)


# Package scope, not session: Playwright's sync API keeps an event loop running in this thread while it is open,
# and tests after these that start one of their own (asyncio.run) would find it.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = chromium()
    if executable is None:
        if os.environ.get("MEMORA_TEST_BROWSER") == "required":
            pytest.fail(f"no Chromium found (MEMORA_TEST_CHROMIUM, {DEBIAN_CHROMIUM}, PATH): {INSTALL}")
        pytest.skip(f"no Chromium: {INSTALL} (or set MEMORA_TEST_CHROMIUM)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@dataclass
class Offline:
    """A browser page that may reach only BASE: anything else is aborted, and its URL kept in `refused`."""

    base: str
    page: Any
    refused: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base + path)

    def screenshot(self, name: str) -> Path:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def settings_for(database_url: str, **overrides: Any) -> Settings:
    return Settings(database_url=database_url, allowed_hosts=["127.0.0.1"], **overrides)


@pytest.fixture
def server(fresh_db_url: str) -> Iterator[str]:
    """The API with its worker, on a database of the test's own, served on loopback: its base URL."""
    with serving(create_app(settings_for(fresh_db_url), worker=True)) as url:
        yield url


def open_offline(browser: Any, server: str, **options: Any) -> tuple[Any, Offline]:
    """A browser context (1280 x 800 unless OPTIONS say otherwise) whose pages reach SERVER and nothing else."""
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, "service_workers": "block", **options})
    view = Offline(server, context.new_page())

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url == server or url.startswith(server + "/"):
            request_route.continue_()
        else:
            view.refused.append(url)
            request_route.abort("internetdisconnected")

    context.route("**/*", route)
    return context, view


@pytest.fixture
def offline(browser: Any, server: str) -> Iterator[Offline]:
    context, view = open_offline(browser, server)
    yield view
    context.close()
