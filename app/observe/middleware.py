"""The outermost layer of the API: a request id for every request, and its count and latency in the metrics.

It wraps even Starlette's ServerErrorMiddleware (ObservedApp below), so a request that ends in an unhandled 500
is counted, its traceback's log line carries the request id, and the 500 response returns the id too.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observe import metrics, timing
from app.observe.context import HEADER, accepted_request_id, enter_request

# A method is the client's to choose: any other would be a new series, without bound.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestObserver:
    """Pure ASGI (no BaseHTTPMiddleware: streaming responses and background tasks stay untouched)."""

    def __init__(self, app: ASGIApp, *, count: bool, server_timing: bool = False) -> None:
        self.app = app
        self.count = count
        self.server_timing = server_timing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accepted_request_id(Headers(scope=scope).get(HEADER))
        # Set, not reset afterwards: the request's task ends with the request, and a 500's traceback is logged
        # by the server after this returns, in the same context, where the id still belongs.
        enter_request(request_id)
        started = time.perf_counter()
        parts = timing.begin() if self.server_timing else None
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[HEADER] = request_id
                if parts is not None:
                    headers[timing.HEADER] = parts.header(time.perf_counter())
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            status = status or 500
            raise
        finally:
            if self.count:
                self._record(scope, status, time.perf_counter() - started)

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float) -> None:
        route: Any = scope.get("route")
        template = getattr(route, "path_format", None) or getattr(route, "path", None) or metrics.UNMATCHED_ROUTE
        method = scope["method"] if scope["method"] in _METHODS else "other"
        labels = (method, template, str(status))
        metrics.REQUESTS.labels(*labels).inc()
        metrics.LATENCY.labels(*labels).observe(seconds)


class ObservedApp(FastAPI):
    """FastAPI with RequestObserver around everything, ServerErrorMiddleware included (add_middleware would put it
    inside that). COUNT_REQUESTS is MEMORA_METRICS, SERVER_TIMING is MEMORA_SERVER_TIMING."""

    def __init__(self, *args: Any, count_requests: bool = True, server_timing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.count_requests = count_requests
        self.server_timing = server_timing

    def build_middleware_stack(self) -> ASGIApp:
        return RequestObserver(
            super().build_middleware_stack(), count=self.count_requests, server_timing=self.server_timing
        )
