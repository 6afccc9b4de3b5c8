"""keys.parse_duration: the --expires of `memora key create` (and of POST /v1/keys)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.auth.keys import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("90d", timedelta(days=90)),
        ("2w", timedelta(weeks=2)),
        ("1m", timedelta(minutes=1)),
        ("36500d", timedelta(days=36_500)),
        ("5214w", timedelta(weeks=5214)),
    ],
)
def test_a_whole_number_and_a_unit_is_a_lifetime(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "d",
        "90",
        "0d",
        "-1d",
        "+1d",
        "1.5d",
        "90 d",
        " 90d",
        "90D",
        "90s",
        "90y",
        "1d2h",
        "90dd",
        "1e3d",
        "٣d",
        "²d",
    ],
)
def test_anything_else_is_refused_with_the_form_it_takes(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration: a positive whole number then m, h, d or w \(90d\)"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["36501d", "5215w", "876001h", "52560001m", "9" * 40 + "d"])
def test_more_than_a_hundred_years_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is more than 100 years"):
        parse_duration(text)
