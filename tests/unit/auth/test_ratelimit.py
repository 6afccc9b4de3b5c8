"""The token bucket per key (app/auth/ratelimit.py), on a clock the test moves."""

from __future__ import annotations

import pytest

from app.auth.principal import OPEN, Principal, Role
from app.auth.ratelimit import RateLimiter
from app.config import Settings
from app.errors import RateLimitedError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(key_id: int = 1, rate_limit: int | None = None) -> Principal:
    return Principal(role=Role.read, name=f"key-{key_id}", key_id=key_id, rate_limit=rate_limit)


def test_a_full_minute_at_once_then_one_per_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    assert [limiter.wait(1, 60) for _ in range(60)] == [0.0] * 60
    assert limiter.wait(1, 60) == pytest.approx(1.0)
    clock.now += 0.5
    assert limiter.wait(1, 60) == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.wait(1, 60) == 0.0
    assert limiter.wait(1, 60) > 0


def test_keys_have_buckets_of_their_own() -> None:
    limiter = RateLimiter(Clock())
    assert [limiter.wait(1, 2) for _ in range(2)] == [0.0, 0.0]
    assert limiter.wait(1, 2) > 0
    assert limiter.wait(2, 2) == 0.0


def test_a_bucket_never_holds_more_than_a_minute() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    limiter.wait(1, 3)
    clock.now += 3600
    assert [limiter.wait(1, 3) for _ in range(4)][-1] > 0


def test_a_lowered_limit_caps_the_bucket() -> None:
    limiter = RateLimiter(Clock())
    limiter.wait(1, 100)
    assert [limiter.wait(1, 2) for _ in range(3)] == [0.0, 0.0, pytest.approx(30.0)]


def test_past_the_limit_is_a_429_with_whole_seconds_to_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    settings = Settings(rate_limit_per_minute=0)
    limiter.admit(key(rate_limit=1), settings)
    clock.now += 59.2
    with pytest.raises(RateLimitedError) as refused:
        limiter.admit(key(rate_limit=1), settings)
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "1"  # 0.8 s rounds up, never to 0
    assert "1 requests per minute" in refused.value.message
    assert "'key-1'" in refused.value.message


def test_the_server_default_applies_to_keys_without_their_own() -> None:
    limiter = RateLimiter(Clock())
    settings = Settings(rate_limit_per_minute=2)
    limiter.admit(key(), settings)
    limiter.admit(key(), settings)
    with pytest.raises(RateLimitedError) as refused:
        limiter.admit(key(), settings)
    assert refused.value.headers["Retry-After"] == "30"
    limiter.admit(key(key_id=2, rate_limit=10), settings)  # its own limit, above the default


def test_off_by_default_and_never_for_requests_without_a_key() -> None:
    limiter = RateLimiter(Clock())
    for _ in range(1000):
        limiter.admit(key(), Settings())
        limiter.admit(OPEN, Settings(rate_limit_per_minute=1))
