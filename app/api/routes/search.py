"""/v1/collections/{name}/search: text, vector and hybrid search over a collection's chunks."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import SettingsDep
from app.api.reads import ReadsDep
from app.api.schemas import ErrorResponse
from app.api.timeouts import statement_kind
from app.auth.principal import Role
from app.auth.rules import needs
from app.observe.timing import route_returned
from app.search import service
from app.search.schemas import SearchRequest, SearchResponse

router = APIRouter(
    prefix="/v1/collections/{name}",
    tags=["search"],
    dependencies=[needs(Role.read, collection="name"), statement_kind("search")],
)


@router.post(
    "/search",
    response_model=SearchResponse,
    response_model_exclude_unset=True,
    responses={
        404: {"model": ErrorResponse, "description": "No such collection."},
        413: {"model": ErrorResponse, "description": "The body is over MEMORA_MAX_JSON_BODY_BYTES."},
        502: {"model": ErrorResponse, "description": "The embedding provider failed to embed the query."},
        504: {"model": ErrorResponse, "description": "A statement ran past MEMORA_SEARCH_STATEMENT_TIMEOUT_MS."},
    },
)
def search(name: str, body: SearchRequest, reads: ReadsDep, settings: SettingsDep) -> SearchResponse:
    """The k chunks that best match a query: BM25 (text), nearest neighbours (vector), or both fused (hybrid).

    Calls the SQL API's search_text_v1, search_vector_v1 and search_hybrid_v1. Without an embedding, vector and
    hybrid search embed the query with the collection's model. Fields a result does not `include` are left out;
    with `include: ["sql"]` the response's `sql` is the statement the search ran, for psql (not with `rerank`).
    """
    db = reads.session(after=body.consistency.after if body.consistency else None)
    response = service.search(db, settings, name, body)
    route_returned()
    return response
