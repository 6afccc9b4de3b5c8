"""The FastAPI application: create_app() wires settings, the database and the routes."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__
from app.api import hosts
from app.api.bodies import too_deep
from app.api.deps import check_parameters
from app.api.failures import ErrorsAsJson, database_error
from app.api.limits import BodyLimitMiddleware
from app.api.origins import CrossOriginWrites, add_cors
from app.api.reads import ReadRouting
from app.api.routes import (
    answer,
    audit,
    chunks,
    collections,
    console,
    dataset_quality,
    datasets,
    docs,
    documents,
    embeddings,
    evaluations,
    exports,
    feedback,
    finetune,
    health,
    keys,
    observe,
    search,
    snapshots,
)
from app.api.schemas import ErrorResponse
from app.audit.recorder import AuditMiddleware, AuditTrail
from app.auth.access import Identify
from app.auth.ratelimit import RateLimiter
from app.config import Settings, get_settings
from app.console.errors import error_page, wants_html
from app.db.engine import make_engine, make_session_factory
from app.db.replicas import ReadReplicas
from app.errors import AppError, InvalidInputError, invalid_json
from app.ingest.worker import Worker
from app.observe import collector
from app.observe.middleware import ObservedApp


def create_app(settings: Settings | None = None, engine: Engine | None = None, *, worker: bool = False) -> FastAPI:
    """The API; pass an engine to share one (tests), or let the app make its own at start-up. With WORKER, an
    ingestion worker runs in a thread beside it (what `memora serve` does unless MEMORA_WORKER_IN_SERVE=false)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_engine = engine is None
        hosts.explain(settings)
        app.state.engine = engine or make_engine(settings, "api")
        app.state.sessions = make_session_factory(app.state.engine)
        app.state.audit = AuditTrail(settings, app.state.sessions)
        app.state.replicas = ReadReplicas(settings, app.state.engine) if settings.read_database_urls else None
        if app.state.replicas is not None:
            app.state.replicas.start()
        stop = threading.Event()
        thread = worker_engine = None
        if worker:
            # The server the API's engine reaches: the settings' own (and the embedded one, followed), or a test's.
            url = None if own_engine else app.state.engine.url.render_as_string(False)
            worker_engine = make_engine(settings, "worker", url=url)
            app.state.worker_engine = worker_engine
            thread = threading.Thread(target=Worker(settings, worker_engine).run, args=(stop,), name="memora-worker")
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if app.state.replicas is not None:
                app.state.replicas.stop()
            if thread is not None:
                thread.join()
            if worker_engine is not None:
                worker_engine.dispose()
            if own_engine:
                app.state.engine.dispose()

    app = ObservedApp(
        count_requests=settings.metrics,
        server_timing=settings.server_timing,
        title="Memora",
        version=__version__,
        description="Documents, chunks, embeddings and labeled training examples in PostgreSQL + pgvector.",
        lifespan=lifespan,
        responses={
            401: {"model": ErrorResponse, "description": "No API key where one is required, or one not valid"},
            403: {"model": ErrorResponse, "description": "The API key's role or grants do not allow this"},
            422: {"model": ErrorResponse, "description": "Invalid input"},
        },
        docs_url=None,  # served by routes/docs.py, without a CDN
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        dependencies=[Depends(check_parameters)],
    )
    app.state.settings = settings
    app.add_middleware(ReadRouting)  # innermost: a read retried on the primary passes the others once
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.state.metrics = collector.registry(settings, app.state)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(psycopg.Error, database_error)
    app.add_middleware(Identify)  # who the request is, before its body is read (inside ErrorsAsJson)
    app.add_middleware(ErrorsAsJson)
    # Added last, run first: the Host check, then CORS, then the refusal of foreign writes, then the audit.
    app.add_middleware(AuditMiddleware)
    app.add_middleware(CrossOriginWrites, settings=settings)
    add_cors(app, settings)
    app.add_middleware(hosts.HostCheck, settings=settings)
    app.state.rate_limiter = RateLimiter()
    app.include_router(docs.router)
    app.include_router(console.router)
    app.include_router(health.router)
    app.include_router(observe.router)
    app.include_router(collections.router)
    app.include_router(embeddings.router)
    app.include_router(documents.router)
    app.include_router(chunks.router)
    app.include_router(search.router)
    app.include_router(feedback.router)
    app.include_router(answer.router)
    app.include_router(evaluations.router)
    app.include_router(datasets.router)
    app.include_router(dataset_quality.router)
    app.include_router(snapshots.router)
    app.include_router(exports.router)
    app.include_router(finetune.router)
    app.include_router(audit.router)
    app.include_router(keys.router)
    return app


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return _error(request, exc.to_dict(), exc.status, dict(exc.headers))


def _error(request: Request, body: dict[str, Any], status: int, headers: Mapping[str, str] | None = None) -> Response:
    """The error BODY: JSON, or the console's page for a browser on a console page (app/console/errors.py)."""
    if wants_html(request):
        return error_page(request, status, body)
    return JSONResponse(body, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path, wrong method) in the same error body as everything else."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):  # FastAPI's JSON parse of a body
        return await _app_error(request, too_deep())
    code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
    body = {"error": {"code": code, "message": str(exc.detail)}}
    return _error(request, body, exc.status_code, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's validation errors in Memora's error body, each naming its field and reason."""
    assert isinstance(exc, RequestValidationError)
    if unparsable := _json_error(exc):
        error = invalid_json(unparsable)
        return JSONResponse(error.to_dict(), status_code=error.status)
    problems = [{"field": ".".join(map(str, e["loc"])), "reason": e["msg"]} for e in exc.errors()]
    error = InvalidInputError.for_problems(problems)
    return _error(request, error.to_dict(), error.status)


def _json_error(exc: RequestValidationError) -> json.JSONDecodeError | None:
    """The JSON syntax error behind EXC, if the body was not JSON: FastAPI gives its position as a character offset
    in `loc` ("body", 21) and the text as `body`, from which the error recovers line and column."""
    for error in exc.errors():
        if error["type"] == "json_invalid" and isinstance(exc.body, str) and isinstance(error["loc"][-1], int):
            return json.JSONDecodeError(error.get("ctx", {}).get("error", error["msg"]), exc.body, error["loc"][-1])
    return None
