"""GET /healthz: is the database reachable, what runs it, and is it migrated."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from app import __version__
from app.api.deps import EngineDep, SettingsDep
from app.api.schemas import DatabaseHealth, Health, ReplicaHealthOut
from app.auth.principal import ANONYMOUS, current
from app.auth.rules import PUBLIC
from app.db.migrate import current_revision_of, head_revision
from app.db.replicas import ReadReplicas
from memora_migrations.server import server_info

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Database unreachable or migrations pending."}},
    dependencies=[PUBLIC],
)
def healthz(engine: EngineDep, settings: SettingsDep, request: Request) -> JSONResponse:
    """Database reachability, PostgreSQL and pgvector versions, and the migration revision. Where API keys are
    required, a caller without one (a load balancer) gets the status alone: no versions, addresses or errors."""
    database = DatabaseHealth(reachable=False, embedded=settings.embedded, head=head_revision())
    try:
        with engine.connect() as conn:
            info = server_info(conn)
            reached = conn.connection.driver_connection.info  # type: ignore[union-attr]
            database.address = f"{reached.host}:{reached.port}"
            database.revision = current_revision_of(conn, settings.db_schema)
    except SQLAlchemyError as exc:
        database.error = str(exc.orig if hasattr(exc, "orig") and exc.orig else exc).strip()
        status = "unavailable"
    else:
        database.reachable = True
        database.server_version = info.server_version
        database.pgvector_version = info.pgvector_version
        status = "ok" if database.revision == database.head else "migrations_pending"
    code = 200 if status == "ok" else 503
    if current(request) is ANONYMOUS:
        return JSONResponse(Health(status=status).model_dump(exclude_none=True), status_code=code)
    health = Health(status=status, version=__version__, database=database, replicas=_replicas(request))
    body = health.model_dump()
    if health.replicas is None:
        del body["replicas"]
    return JSONResponse(body, status_code=code)


def _replicas(request: Request) -> list[ReplicaHealthOut] | None:
    """Each replica's state and lag; a replica's trouble is not the service's (reads go to the primary)."""
    replicas: ReadReplicas | None = request.app.state.replicas
    if replicas is None:
        return None
    return [ReplicaHealthOut.model_validate(replica, from_attributes=True) for replica in replicas.health()]
