"""MemoraClient sends its API key (explicit, else MEMORA_API_KEY) as a Bearer token, on every request."""

from __future__ import annotations

import json

import httpx
import pytest

from app.client import MemoraAPIError, MemoraClient

KEY = "mk_" + "A" * 43


def recording_client(seen: list[str | None], status: int = 200) -> httpx.Client:
    """An httpx client whose transport answers every request here, noting the Authorization header it carried."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        if status == 401:
            return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "an API key is needed"}})
        return httpx.Response(200, json={"items": [], "next_cursor": None, "epoch": {}})

    return httpx.Client(base_url="http://memora.test", transport=httpx.MockTransport(answer))


@pytest.mark.parametrize(
    ("explicit", "variable", "sent"),
    [
        (KEY, None, f"Bearer {KEY}"),
        (None, KEY, f"Bearer {KEY}"),
        (None, f"{KEY}\n", f"Bearer {KEY}"),  # read from a file
        ("mk_other", KEY, "Bearer mk_other"),  # the explicit key wins
        ("", KEY, None),  # "" says: no key, whatever the environment holds
        (None, "", None),
        (None, None, None),
    ],
)
def test_the_key_comes_from_the_argument_else_the_environment(
    monkeypatch: pytest.MonkeyPatch, explicit: str | None, variable: str | None, sent: str | None
) -> None:
    if variable is None:
        monkeypatch.delenv("MEMORA_API_KEY", raising=False)
    else:
        monkeypatch.setenv("MEMORA_API_KEY", variable)
    seen: list[str | None] = []

    with MemoraClient("unused", api_key=explicit, http_client=recording_client(seen)) as client:
        client.batch("reviews")
        client.create_dataset("reviews", "classification")

    assert seen == [sent, sent]


def test_a_401_without_a_key_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMORA_API_KEY", raising=False)

    with (
        MemoraClient("unused", http_client=recording_client([], status=401)) as client,
        pytest.raises(MemoraAPIError) as refused,
    ):
        client.batch("reviews")

    assert refused.value.status == 401
    assert refused.value.message == "an API key is needed (no API key was sent: pass api_key= or set MEMORA_API_KEY)"


def test_a_401_with_a_key_is_the_server_s_word(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMORA_API_KEY", KEY)

    with (
        MemoraClient("unused", http_client=recording_client([], status=401)) as client,
        pytest.raises(MemoraAPIError) as refused,
    ):
        client.batch("reviews")

    assert refused.value.message == "an API key is needed"
    assert KEY not in str(refused.value)
    assert KEY not in json.dumps(refused.value.details)
