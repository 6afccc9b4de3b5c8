"""When the API asks for keys (app/auth/mode.py): the mode, from MEMORA_AUTH and the address it listens on."""

from __future__ import annotations

import pytest

from app.auth.mode import is_loopback, keys_required, open_to_others
from app.config import Settings

LOOPBACK = ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST", "localhost.", "::ffff:127.0.0.1"]
REACHABLE = ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "::ffff:10.0.0.1", "example.com", "localhost.example.com",
             "my-laptop", "128.0.0.1", ""]  # fmt: skip


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", REACHABLE)
def test_addresses_others_can_reach(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    ("auth", "host", "required", "warned"),
    [
        ("auto", "127.0.0.1", False, False),  # the laptop default
        ("auto", "localhost", False, False),
        ("auto", "0.0.0.0", True, False),  # the Docker image
        ("auto", "my-laptop", True, False),  # a name may resolve to anything
        ("required", "127.0.0.1", True, False),
        ("required", "0.0.0.0", True, False),
        ("off", "127.0.0.1", False, False),
        ("off", "0.0.0.0", False, True),
    ],
)
def test_mode(auth: str, host: str, required: bool, warned: bool) -> None:
    settings = Settings(auth=auth, host=host)  # type: ignore[arg-type]

    assert keys_required(settings) is required
    assert open_to_others(settings) is warned


def test_the_defaults_make_an_open_laptop_server() -> None:
    defaults = {name: Settings.model_fields[name].default for name in ("auth", "host")}

    assert defaults == {"auth": "auto", "host": "127.0.0.1"}
    assert not keys_required(Settings(**defaults))
