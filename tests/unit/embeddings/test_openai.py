"""The openai provider: the real openai client against an OpenAI-compatible server on loopback.

Retries really wait: a fixture makes the backoff short, and the waits are read from the provider's own log line of
each retry (and, where it matters, from when the server saw the requests).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr

from app.config import Settings
from app.embeddings import openai_provider
from app.embeddings.hashing import HashingEmbedder
from app.embeddings.openai_provider import OpenAIEmbedder, estimate_tokens, retry_after_seconds
from app.embeddings.registry import get_embedder
from app.errors import EmbeddingProviderError
from tests.openai_server import OpenAIServer

KEY = "sk-test-0123456789abcdef"
TEXTS = [f"sentence number {i} about topic {i % 7}" for i in range(10)]


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries the server does not time wait about 10 ms, not half a second and more."""
    monkeypatch.setattr(openai_provider, "BACKOFF_SECONDS", 0.01)


def logged_waits(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The wait before each retry, as the provider logs it."""
    records = [r for r in caplog.records if r.name == openai_provider.__name__ and "retry" in str(r.msg)]
    return [float(r.args[-1]) for r in records]  # type: ignore[index]


def make(server: OpenAIServer, model: str = "text-embedding-3-small", dimensions: int = 64, **kwargs: Any) -> Any:
    """An embedder on the test server."""
    options: dict[str, Any] = {"api_key": SecretStr(KEY), "timeout": 5.0, "max_retries": 3}
    return OpenAIEmbedder(model, dimensions, base_url=server.base_url, **(options | kwargs))


def test_batches_keep_input_order_and_match_the_server_vectors(openai_server: OpenAIServer) -> None:
    openai_server.reverse_data = True
    embedder = make(openai_server, batch_size=4)
    vectors = embedder.embed(TEXTS)
    bodies = [r.json() for r in openai_server.requests_to("/v1/embeddings")]
    assert [body["input"] for body in bodies] == [TEXTS[0:4], TEXTS[4:8], TEXTS[8:10]]
    assert vectors.shape == (10, 64)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, HashingEmbedder(64).embed(TEXTS), atol=1e-6)


def test_request_carries_key_model_and_dimensions(openai_server: OpenAIServer) -> None:
    embedder = make(openai_server)
    embedder.embed(["hello"])
    (request,) = openai_server.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.json()["model"] == "text-embedding-3-small"
    assert request.json()["dimensions"] == 64


def test_dimensions_are_not_sent_to_other_models(openai_server: OpenAIServer) -> None:
    embedder = make(openai_server, model="nomic-embed-text", dimensions=256)
    assert embedder.embed(["hello"]).shape == (1, 256)
    assert "dimensions" not in openai_server.requests[0].json()


def test_token_budget_splits_requests(openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openai_provider, "MAX_TOKENS_PER_REQUEST", 3 * estimate_tokens(TEXTS[0]))
    embedder = make(openai_server)
    assert embedder.embed(TEXTS).shape == (10, 64)
    sizes = [len(r.json()["input"]) for r in openai_server.requests]
    assert sizes == [3, 3, 3, 1]


def test_429_waits_as_retry_after_says_then_succeeds(
    openai_server: OpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    openai_server.fail_next(1, 429, headers={"Retry-After": "1"})
    openai_server.fail_next(1, 429, headers={"retry-after-ms": "150", "Retry-After": "9"})
    embedder = make(openai_server)
    assert embedder.embed(["hello"]).shape == (1, 64)
    assert logged_waits(caplog) == [1.0, 0.15]
    first, second, third = (request.received_at for request in openai_server.requests)
    assert second - first >= 1.0
    assert third - second >= 0.15


def test_retry_after_is_capped(
    openai_server: OpenAIServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_provider, "MAX_WAIT_SECONDS", 0.2)
    openai_server.fail_next(1, 429, headers={"Retry-After": "3600"})
    make(openai_server).embed(["hello"])
    assert logged_waits(caplog) == [0.2]


def test_500_backs_off_exponentially_then_succeeds(
    openai_server: OpenAIServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_provider, "BACKOFF_SECONDS", 0.1)
    openai_server.fail_next(2, 500)
    embedder = make(openai_server)
    assert embedder.embed(["hello"]).shape == (1, 64)
    waits = logged_waits(caplog)
    assert len(waits) == 2
    assert 0.05 <= waits[0] <= 0.1
    assert 0.1 <= waits[1] <= 0.2


def test_real_sleep_between_retries(openai_server: OpenAIServer) -> None:
    openai_server.fail_next(1, 503, headers={"retry-after-ms": "100"})
    embedder = OpenAIEmbedder("m", 256, base_url=openai_server.base_url, api_key=KEY, max_retries=1)
    embedder.embed(["hello"])
    first, second = openai_server.requests
    assert second.received_at - first.received_at >= 0.1


def test_retries_exhausted(openai_server: OpenAIServer, caplog: pytest.LogCaptureFixture) -> None:
    openai_server.fail_next(4, 500)
    embedder = make(openai_server, max_retries=3)
    with pytest.raises(EmbeddingProviderError, match="after 4 attempts: HTTP 500") as caught:
        embedder.embed(["hello"])
    assert caught.value.status == 502
    assert len(logged_waits(caplog)) == 3


def test_client_errors_are_not_retried(openai_server: OpenAIServer, caplog: pytest.LogCaptureFixture) -> None:
    openai_server.fail_next(1, 400)
    embedder = make(openai_server)
    with pytest.raises(EmbeddingProviderError, match="HTTP 400: injected failure 400"):
        embedder.embed(["hello"])
    assert logged_waits(caplog) == []
    assert len(openai_server.requests) == 1


@pytest.mark.parametrize(
    ("status", "permanent", "whole_request"),
    [(400, True, False), (401, True, True), (403, True, True), (404, True, True), (422, True, False),
     (408, False, True), (409, False, True), (429, False, True), (500, False, True), (503, False, True)],
)  # fmt: skip
def test_errors_say_whether_they_are_permanent_and_whose(
    status: int, permanent: bool, whole_request: bool, openai_server: OpenAIServer
) -> None:
    """What the worker needs to know: fail at once or retry (permanent), one document or the batch (whole_request)."""
    openai_server.fail_next(1, status)
    with pytest.raises(EmbeddingProviderError) as caught:
        make(openai_server, max_retries=0).embed(["hello"])
    assert (caught.value.permanent, caught.value.whole_request) == (permanent, whole_request)


def test_timeout(openai_server: OpenAIServer, caplog: pytest.LogCaptureFixture) -> None:
    openai_server.delay_next(2, seconds=2.0)
    embedder = make(openai_server, timeout=0.2, max_retries=1)
    with pytest.raises(EmbeddingProviderError, match=r"after 2 attempts: no answer within 0\.2s") as caught:
        embedder.embed(["hello"])
    assert len(logged_waits(caplog)) == 1
    assert (caught.value.permanent, caught.value.whole_request) == (False, True)


def test_wrong_dimensions_from_the_server(openai_server: OpenAIServer) -> None:
    openai_server.wrong_dimensions = 63
    embedder = make(openai_server)
    with pytest.raises(EmbeddingProviderError, match="returned 63-dimensional vectors, expected 64") as caught:
        embedder.embed(["hello"])
    assert (caught.value.permanent, caught.value.whole_request) == (True, True)


def test_unreachable_server() -> None:
    server = OpenAIServer().start()
    base_url = server.base_url
    server.stop()
    embedder = OpenAIEmbedder("m", 256, base_url=base_url, api_key=KEY, max_retries=1)
    with pytest.raises(EmbeddingProviderError, match="connection failed") as caught:
        embedder.embed(["hello"])
    assert (caught.value.permanent, caught.value.whole_request) == (False, True)


def test_key_never_shows(openai_server: OpenAIServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    openai_server.api_key = "another-key"
    openai_server.fail_next(1, 429, headers={"retry-after-ms": "1"})
    embedder = make(openai_server)
    with pytest.raises(EmbeddingProviderError) as caught:
        embedder.embed(["hello"])
    assert "HTTP 401" in str(caught.value)
    assert "retry 1 of 3" in caplog.text
    for text in (str(caught.value), repr(caught.value), repr(embedder), str(vars(embedder)), caplog.text):
        assert KEY not in text


def test_an_echoed_key_is_masked(openai_server: OpenAIServer) -> None:
    openai_server.route("POST", "/v1/embeddings", lambda request: _echo_headers(request.headers))
    embedder = make(openai_server)
    with pytest.raises(EmbeddingProviderError) as caught:
        embedder.embed(["hello"])
    assert "Bearer ***" in str(caught.value)
    assert KEY not in str(caught.value)


def _echo_headers(headers: dict[str, str]) -> Any:
    from tests.openai_server import error

    return error(400, f"bad request with headers {headers}")


def test_key_from_environment(openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    OpenAIEmbedder("m", 256, base_url=openai_server.base_url).embed(["hello"])
    assert openai_server.requests[0].headers["authorization"] == "Bearer sk-from-env"
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(EmbeddingProviderError, match="OPENAI_API_KEY"):
        OpenAIEmbedder("m", 256, base_url=openai_server.base_url)


def test_empty_input_sends_nothing(openai_server: OpenAIServer) -> None:
    embedder = make(openai_server)
    assert embedder.embed([]).shape == (0, 64)
    assert openai_server.requests == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"retry-after-ms": "250"}, 0.25), ({"retry-after": "3"}, 3.0), ({"retry-after": "soon"}, None), ({}, None)],
)
def test_retry_after_header_parsing(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers) == expected


def test_retry_after_as_http_date() -> None:
    wait = retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert wait == 0.0


def test_registry_builds_from_settings(openai_server: OpenAIServer) -> None:
    settings = Settings(openai_base_url=openai_server.base_url, openai_api_key=KEY, embed_batch_size=3)
    embedder = get_embedder("openai", "text-embedding-3-large", 3072, settings)
    assert embedder.embed(TEXTS[:4]).shape == (4, 3072)
    assert [len(r.json()["input"]) for r in openai_server.requests] == [3, 1]
    assert openai_server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert get_embedder("openai", "text-embedding-3-large", 3072, settings) is embedder
    moved = settings.model_copy(update={"openai_base_url": "http://127.0.0.1:9/v1"})
    assert get_embedder("openai", "text-embedding-3-large", 3072, moved) is not embedder
