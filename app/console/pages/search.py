"""The search playground: one query, searched with one setting or two side by side, each result with its highlight
and each ranking's rank and score, the second column's rank changes marked, and the SQL call that reproduces each
column, for psql.

A GET form, so the URL holds the whole state (a search can be bookmarked or sent). The query is embedded once and
both columns search with that vector, so a comparison costs two searches, not two embeddings as well. Fields left
empty take the collection's saved search defaults, as the API does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.api.deps import SessionDep, SettingsDep
from app.auth.principal import Role
from app.auth.rules import needs
from app.collections import service as collections
from app.config import Settings
from app.console.compare import Mark, dropped, marks
from app.console.render import page
from app.errors import InvalidInputError, location
from app.search import query_embedding
from app.search import service as search
from app.search.schemas import SearchRequest, SearchResponse

router = APIRouter(include_in_schema=False)
SHARED = ("query", "k", "filter")
SETTINGS = ("mode", "fusion", "weights.text", "weights.vector", "candidates", "ef_search")
SECOND = "b."  # the prefix of the second column's fields
INCLUDE = ["text", "metadata", "scores", "highlights", "sql"]


@dataclass
class Column:
    """One column of the playground: its form values, and once searched its response (and marks, for the second)."""

    prefix: str
    values: dict[str, str]
    response: SearchResponse | None = None
    marks: list[Mark] = field(default_factory=list)
    dropped: list[Any] = field(default_factory=list)


@router.get(
    "/console/collections/{name}/search", name="console_search", dependencies=[needs(Role.read, collection="name")]
)
def playground(request: Request, name: str, db: SessionDep, settings: SettingsDep) -> HTMLResponse:
    """The form, and with a query the results of one column or (with `compare`) two."""
    collection = collections.get(db, name)
    params = request.query_params
    shared = {key: params.get(key, "").strip() for key in SHARED}
    first = Column("", {key: params.get(key, "").strip() for key in SETTINGS})
    # The second column starts as a copy of the first, so changing one setting compares exactly that setting.
    second = Column(SECOND, {key: params.get(SECOND + key, first.values[key]).strip() for key in SETTINGS})
    comparing = params.get("compare") == "1"
    problems: dict[str, str] = {}
    if shared["query"]:
        columns = [first, second] if comparing else [first]
        problems = _run(db, settings, name, shared, columns)
        if comparing and first.response and second.response:
            ids = [hit.chunk_id for hit in first.response.results], [hit.chunk_id for hit in second.response.results]
            second.marks = marks(*ids)
            gone = set(dropped(*ids))
            second.dropped = [hit for hit in first.response.results if hit.chunk_id in gone]
    return page(
        request,
        "search.html",
        status_code=422 if problems else 200,
        collection=collection,
        shared=shared,
        columns=[first, second],
        comparing=comparing,
        problems=problems,
        filter_problems={key: reason for key, reason in problems.items() if key.split(".")[0] == "filter"},
    )


def _run(db: Session, settings: Settings, name: str, shared: dict[str, str], columns: list[Column]) -> dict[str, str]:
    """Search each column; the problems of the form by field name, if any (then no column has a response)."""
    problems: dict[str, str] = {}
    requests: list[SearchRequest] = []
    filter_ = None
    if shared["filter"]:
        try:
            filter_ = json.loads(shared["filter"])
        except json.JSONDecodeError as exc:
            problems["filter"] = f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    for column in columns:
        body = _body(shared, column.values)
        if filter_ is not None:
            body["filter"] = filter_
        try:
            requests.append(SearchRequest.model_validate(body))
        except ValidationError as exc:
            for error in exc.errors():
                problems.setdefault(_field(column, location(error["loc"])), error["msg"])
    if problems:
        return problems
    embedding = None
    if any(request.mode != "text" for request in requests):
        collection = collections.get(db, name)
        embedding = query_embedding.finish(db, settings, collection, shared["query"], None).tolist()
    for column, request in zip(columns, requests, strict=True):
        if request.mode != "text":
            request = request.model_copy(update={"embedding": embedding})
        try:
            column.response = search.search(db, settings, name, request)
        except InvalidInputError as exc:
            for problem in exc.problems:
                problems.setdefault(_field(column, problem["field"].removeprefix("body.")), problem["reason"])
    if problems:
        for column in columns:
            column.response = None
    return problems


def _body(shared: dict[str, str], values: dict[str, str]) -> dict[str, Any]:
    """A search request from the form's text fields: empty ones are left out (the defaults apply)."""
    body: dict[str, Any] = {"query": shared["query"], "include": INCLUDE}
    if shared["k"]:
        body["k"] = shared["k"]
    for key, value in values.items():
        if not value:
            continue
        outer, _, inner = key.partition(".")
        if inner:
            body.setdefault(outer, {})[inner] = value
        else:
            body[key] = value
    return body


def _field(column: Column, name: str) -> str:
    """The form field a request field's problem belongs to: the column's own settings carry its prefix."""
    shared = name.split(".")[0] in SHARED
    return name if shared else column.prefix + name
