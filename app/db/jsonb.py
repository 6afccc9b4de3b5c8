"""Reading json and jsonb so that one row can never break a read: what psycopg parses for every query.

Memora refuses JSON nested deeper than MEMORA_MAX_JSON_DEPTH on the way in, but a row written with SQL may hold
anything jsonb takes (thousands of levels). Parsed as is, such a value fails later for every reader: pydantic
stops serializing past ~255 levels and Python's parser past ~1000, so each list, search or batch that includes
the row would answer 500. Here a value is cut at READ_JSON_DEPTH instead: what lies deeper reads as a note saying
so, and the rest of the row, and every other row, read as usual.
"""

from __future__ import annotations

import json
from typing import Any

from app.limits import READ_JSON_DEPTH

CUT = f"(nested deeper than {READ_JSON_DEPTH} levels; read it with SQL)"
"""What stands in for a value nested deeper than Memora hands out."""


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """json.loads for psycopg, cut at READ_JSON_DEPTH (and a note for JSON too deep for Python to parse)."""
    raw = bytes(data) if isinstance(data, bytearray | memoryview) else data
    try:
        value = json.loads(raw)
    except RecursionError:
        text = raw.decode() if isinstance(raw, bytes) else raw
        return json.loads(cut_text(text, READ_JSON_DEPTH))
    opening = (raw.count(b"[") + raw.count(b"{")) if isinstance(raw, bytes) else (raw.count("[") + raw.count("{"))
    return cut(value, READ_JSON_DEPTH) if opening >= READ_JSON_DEPTH else value


def cut(value: Any, depth: int) -> Any:
    """VALUE with every dict or list below DEPTH levels of nesting replaced by CUT (a loop, not recursion)."""
    if not isinstance(value, dict | list) or depth < 1:
        return value if not isinstance(value, dict | list) else CUT
    # A level at a time: only the containers of one level are held, and the last level kept is the only one written.
    level: list[Any] = [value]
    for _ in range(depth - 1):
        level = [
            child
            for container in level
            for child in (container.values() if isinstance(container, dict) else container)
            if isinstance(child, dict | list)
        ]
        if not level:
            return value
    for container in level:
        keys = container.keys() if isinstance(container, dict) else range(len(container))
        for key in keys:
            if isinstance(container[key], dict | list):
                container[key] = CUT
    return value


def cut_text(text: str, depth: int) -> str:
    """JSON TEXT with every array or object below DEPTH levels replaced by CUT, done on the text for JSON too deep
    for Python's parser (a character loop: slow, but only for such rare values)."""
    out: list[str] = []
    level, start, i, in_string = 0, 0, 0, False
    skipping = False
    while i < len(text):
        char = text[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            level += 1
            if level == depth + 1:
                out.append(text[start:i])
                skipping = True
        elif char in "]}":
            if level == depth + 1 and skipping:
                out.append(json.dumps(CUT))
                start, skipping = i + 1, False
            level -= 1
        i += 1
    out.append(text[start:])
    return "".join(out)


def register(dbapi_connection: Any) -> None:
    """Use loads() for json and jsonb on this psycopg connection."""
    from psycopg.types.json import set_json_loads

    set_json_loads(loads, dbapi_connection)
