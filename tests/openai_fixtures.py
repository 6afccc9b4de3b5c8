"""Fixtures for tests that talk to an OpenAI-compatible server; import them into a test module or conftest.

Registered under name=, so importing the function does not clash (ruff F811) with the test parameter it serves.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.openai_server import OpenAIServer


@pytest.fixture(name="openai_server")
def openai_server_fixture() -> Iterator[OpenAIServer]:
    """A fresh OpenAI-compatible server on 127.0.0.1, stopped after the test."""
    with OpenAIServer() as server:
        yield server
