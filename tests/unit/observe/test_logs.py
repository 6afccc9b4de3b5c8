"""The JSON log line: one object per line, the request id from the context, the traceback when there is one."""

from __future__ import annotations

import io
import json
import logging

from app.observe.context import request_context
from app.observe.logs import handler


def lines_of(log_format: str, emit: object) -> list[str]:
    stream = io.StringIO()
    logger = logging.getLogger(f"tests.unit.observe.{log_format}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    out = handler(log_format, stream)
    logger.addHandler(out)
    try:
        assert callable(emit)
        emit(logger)
    finally:
        logger.removeHandler(out)
    return stream.getvalue().splitlines()


def test_a_json_line_has_the_request_id_and_the_traceback() -> None:
    def emit(logger: logging.Logger) -> None:
        with request_context("trace-9"):
            try:
                raise ValueError("bad\nthing")
            except ValueError:
                logger.exception("failed for «%s»", "naïve")
        logger.warning("after")

    first, second = (json.loads(line) for line in lines_of("json", emit))

    assert first["message"] == "failed for «naïve»"
    assert first["level"] == "error"
    assert first["request_id"] == "trace-9"
    assert first["exception"].startswith("Traceback (most recent call last):")
    assert first["exception"].endswith("ValueError: bad\nthing")
    assert first["time"].endswith("+00:00")
    assert second["request_id"] is None
    assert "exception" not in second


def test_the_text_format_is_the_one_of_before() -> None:
    lines = lines_of("text", lambda logger: logger.info("hello %d", 1))

    assert lines == ["INFO tests.unit.observe.text: hello 1"]
