"""Server-sent events: a blocking generator of (event, data) pairs served as a text/event-stream, read in the thread
pool (the answers of /v1/.../answer and the console's)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.errors import AppError

log = logging.getLogger(__name__)

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStream(StreamingResponse):
    """Server-sent events from a blocking generator, read in the thread pool. Whatever ends the response (the
    last event, an error, the client going away) closes the generator, and with it the request to the model."""

    def __init__(self, frames: Generator[bytes, None, None]) -> None:
        self._frames = frames
        super().__init__(_in_threads(frames), media_type="text/event-stream", headers=_SSE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Starlette cancels the body when the client disconnects; a cancelled read of the thread pool still
            # waits for its thread, so the generator is not running here and can be closed.
            self._frames.close()


def frame(event: str, data: Any) -> bytes:
    """One server-sent event; the JSON has no line breaks, so one data line holds it."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def frames(events: Generator[tuple[str, Any], None, None]) -> Generator[bytes, None, None]:
    """EVENTS as SSE frames; a failure becomes an `error` event, the last one."""
    with contextlib.closing(events):
        try:
            for event, data in events:
                yield frame(event, data)
        except AppError as exc:
            log.warning("answer stream failed: %s", exc.message)
            yield frame("error", exc.to_dict())
        except Exception:
            log.exception("answer stream failed")
            yield frame("error", AppError("internal error while answering").to_dict())


async def _in_threads(frames: Iterator[bytes]) -> AsyncIterator[bytes]:
    while (chunk := await anyio.to_thread.run_sync(next, frames, None)) is not None:
        yield chunk
