"""JSON depth: refused past MEMORA_MAX_JSON_DEPTH on the way in (app/db/storable.py), cut at READ_JSON_DEPTH on the
way out (app/db/jsonb.py), both without recursion, so no depth is too much for them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.db import jsonb
from app.db.storable import unstorable
from app.limits import READ_JSON_DEPTH


def text(levels: int) -> str:
    return '{"a": ' * levels + '"x"' + "}" * levels


@pytest.mark.parametrize(("levels", "fits"), [(31, True), (32, True), (33, False), (100_000, False)])
def test_unstorable_counts_every_dict_and_list(levels: int, fits: bool) -> None:
    value: Any = "leaf"
    for i in range(levels):
        value = {"k": value} if i % 2 else [value]

    reason = unstorable(value, max_depth=32)

    assert (reason is None) is fits
    assert fits or reason == "is nested deeper than 32 levels (MEMORA_MAX_JSON_DEPTH)"


def test_the_default_limit_is_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.config import get_settings

    monkeypatch.setenv("MEMORA_MAX_JSON_DEPTH", "3")
    get_settings.cache_clear()
    try:
        assert unstorable({"a": {"b": {}}}) is None
        assert unstorable({"a": {"b": {"c": {}}}}) == "is nested deeper than 3 levels (MEMORA_MAX_JSON_DEPTH)"
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("levels", [READ_JSON_DEPTH, READ_JSON_DEPTH + 1, 300, 3000, 50_000])
def test_loads_cuts_below_the_read_depth(levels: int) -> None:
    value = jsonb.loads(text(levels).encode())

    kept = 0
    while isinstance(value, dict):
        value, kept = value["a"], kept + 1
    assert kept == min(levels, READ_JSON_DEPTH)
    assert value == ("x" if levels <= READ_JSON_DEPTH else jsonb.CUT)


def test_loads_leaves_shallow_json_alone_and_cuts_only_what_is_deep() -> None:
    shallow = {"a": [1, {"b": "[[[{{{"}], "c": None}
    mixed = '{"keep": [1, 2], "deep": ' + text(5000) + ', "s": "\\"]}"}'

    assert jsonb.loads(json.dumps(shallow)) == shallow
    loaded = jsonb.loads(mixed)
    assert loaded["keep"] == [1, 2]
    assert loaded["s"] == '"]}'


def test_cut_text_and_cut_agree() -> None:
    document = json.dumps({"x": 'a\\"[{', "b": [{"a": {"a": {"a": {"a": 1}}}}], "c": {"a": {"a": {"a": 1}}}})

    assert json.loads(jsonb.cut_text(document, 3)) == jsonb.cut(json.loads(document), 3)
