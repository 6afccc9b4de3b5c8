"""Answers in the console: ask a question of a collection, and read the model's answer as it streams, its
citations linked to the chunks they cite. The page posts to itself: a script asks for the event stream the API's
answers send (`sources`, `delta`..., `done`); a plain form gets the whole answer as a page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from app.api.deps import SessionDep, SettingsDep
from app.api.events import EventStream, frames
from app.api.timeouts import statement_kind
from app.auth.principal import Role
from app.auth.rules import needs
from app.collections import service as collections
from app.console.render import HEADERS, page
from app.console.session import check_form
from app.errors import AppError, InvalidInputError, location, problems_of
from app.rag import service
from app.rag.schemas import AnswerRequest
from app.upstream import api_key

router = APIRouter(include_in_schema=False)
READ = needs(Role.read, collection="name")


@router.get("/console/collections/{name}/answer", name="console_answer", dependencies=[READ])
def ask(request: Request, name: str, db: SessionDep, settings: SettingsDep) -> HTMLResponse:
    """The question form; it says so when no chat model can be reached (no API key is set)."""
    try:
        api_key(settings, "", AppError)
        chat = True
    except AppError:
        chat = False
    return page(request, "answer.html", collection=collections.get(db, name), form={}, problems={}, chat=chat)


@router.post("/console/collections/{name}/answer", dependencies=[READ, Depends(check_form), statement_kind("search")])
def answer(
    request: Request,
    name: str,
    db: SessionDep,
    settings: SettingsDep,
    question: Annotated[str, Form()] = "",
    mode: Annotated[str, Form()] = "hybrid",
    k: Annotated[str, Form()] = "",
) -> Response:
    """QUESTION answered from collection NAME: streamed to a script that accepts text/event-stream, else a page."""
    collection = collections.get(db, name)
    form = {"question": question, "mode": mode, "k": k}
    streaming = "text/event-stream" in request.headers.get("accept", "")
    try:
        body = AnswerRequest.model_validate({key: value for key, value in form.items() if value.strip()})
    except ValidationError as exc:
        if streaming:  # the script shows the JSON error's message
            raise InvalidInputError.for_problems(problems_of(exc)) from None
        problems = {location(error["loc"]): error["msg"] for error in exc.errors()}
        return page(request, "answer.html", status_code=422, collection=collection, form=form, problems=problems)
    if streaming:
        prepared = service.prepare(db, settings, name, body)
        stream = EventStream(frames(service.events(prepared, service.open_stream(settings, prepared))))
        stream.headers.update(HEADERS)
        return stream
    result = service.answer(db, settings, name, body)
    return page(request, "answer.html", collection=collection, form=form, problems={}, result=result)
