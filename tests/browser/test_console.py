"""The console in Chromium, with the network cut off from everything but the server."""

from __future__ import annotations

from tests.browser.conftest import Offline


def test_the_console_home_loads_offline_and_is_styled(offline: Offline) -> None:
    offline.goto("/")
    offline.page.get_by_role("link", name="The console").click()
    offline.page.wait_for_url("**/console")

    heading = offline.page.get_by_role("heading", name="Collections")
    background = offline.page.evaluate("getComputedStyle(document.querySelector('.bar')).backgroundColor")
    offline.screenshot("console-home")

    assert heading.is_visible()
    assert background == "rgb(244, 246, 248)"  # console.css was loaded and applied
    assert offline.refused == []
