"""GET /metrics (Prometheus) and GET /v1/status: what an operator looks at (docs/reliability.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import EngineDep, SettingsDep
from app.auth.principal import Role, current
from app.auth.rules import needs
from app.errors import NotFoundError
from app.observe import status as status_service
from app.observe.schemas import Status

router = APIRouter(tags=["observability"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
        404: {"description": "Metrics are turned off (MEMORA_METRICS=false)."},
    },
    dependencies=[needs(Role.read)],
)
def metrics(request: Request, settings: SettingsDep) -> Response:
    """Request counts and latencies per route template, the queue, leases, embedding and provider counters, and the
    connection pools, in Prometheus' text format. Labels hold no data: no collection, dataset or document names."""
    if not settings.metrics:
        raise NotFoundError("metrics are turned off (MEMORA_METRICS=false)")
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/status",
    response_model=Status,
    responses={503: {"model": Status, "description": "The database does not answer."}},
    dependencies=[needs(Role.read)],
)
def status(
    engine: EngineDep,
    request: Request,
    errors: Annotated[
        int, Query(ge=0, le=status_service.MAX_ERRORS, description="How many of the most recent errors to list.")
    ] = status_service.DEFAULT_ERRORS,
) -> JSONResponse:
    """The queue (documents by status, overall and per collection, and the oldest pending wait), failures with the
    most recent errors, leases held and expired, the workers that hold documents, and whether the database answers.
    A key granted some collections sees the figures of those alone."""
    principal = current(request)
    sees = None if "*" in principal.collections else principal.sees_collection
    summary = status_service.read(engine, errors, sees)
    return JSONResponse(summary.model_dump(mode="json"), status_code=200 if summary.status == "ok" else 503)
