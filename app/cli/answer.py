"""`memora ask`: a streamed answer from a collection's chunks, citing them, then its sources (routes: answer.py)."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer
from pydantic import ValidationError

from app.cli.options import engine, option, settings
from app.config import Settings
from app.errors import InvalidInputError, problems_of
from app.rag.schemas import DEFAULT_K, DEFAULT_MAX_CONTEXT_TOKENS, AnswerRequest, AnswerResponse, Source

if TYPE_CHECKING:
    from sqlalchemy import Engine

cli = typer.Typer()


@cli.command("ask")
def ask_command(
    ctx: typer.Context,
    collection: Annotated[str, typer.Argument(help="Collection to answer from.")],
    question: Annotated[str, typer.Argument(help="The question.")],
    k: Annotated[int, option("ASK_K", "Chunks to retrieve.", "--k", "-k", min=1)] = DEFAULT_K,
    mode: Annotated[str, option("ASK_MODE", "Search that retrieves: hybrid, text or vector.", "--mode")] = "hybrid",
    model: Annotated[
        str | None, option("CHAT_MODEL", "Chat model; default gpt-4o-mini.", "--model", "-m")
    ] = None,
    temperature: Annotated[
        float | None, option("ASK_TEMPERATURE", "Sampling temperature; default: the model's.", "--temperature")
    ] = None,
    max_context_tokens: Annotated[
        int, option("ASK_MAX_CONTEXT_TOKENS", "Token budget of the sources in the prompt.", "--max-context-tokens")
    ] = DEFAULT_MAX_CONTEXT_TOKENS,
    min_score: Annotated[
        float | None,
        option("ASK_MIN_SCORE", "Floor on vector similarity; default 0.25 on cosine collections, -1 for none.",
                "--min-score"),
    ] = None,
    system_prompt: Annotated[
        str | None, option("ASK_SYSTEM_PROMPT", "Instructions replacing the default ones.", "--system-prompt")
    ] = None,
    filter_json: Annotated[
        str | None, option("ASK_FILTER", 'Metadata filter as JSON, e.g. {"team": "hr"}.', "--filter")
    ] = None,
    rerank_model: Annotated[
        str | None, option("ASK_RERANK_MODEL", "Rerank the retrieved chunks with this model on the server's "
                            "/v1/rerank first (docs/rerank.md).", "--rerank-model")
    ] = None,
    rerank_top_n: Annotated[
        int, option("ASK_RERANK_TOP_N", "With --rerank-model: chunks the reranker re-scores.", "--rerank-top-n", min=1)
    ] = 50,
) -> None:  # fmt: skip
    """Answer QUESTION from COLLECTION with a chat model (MEMORA_OPENAI_BASE_URL), citing its sources as \\[n]."""
    with engine(ctx) as made:
        ask(
            settings(ctx), made, collection, question, k=k, mode=mode, model=model,
            temperature=temperature, max_context_tokens=max_context_tokens, min_score=min_score,
            system_prompt=system_prompt, filter_json=filter_json, rerank_model=rerank_model,
            rerank_top_n=rerank_top_n,
        )  # fmt: skip


def ask(
    settings: Settings,
    engine: Engine,
    collection: str,
    question: str,
    *,
    k: int = DEFAULT_K,
    mode: str = "hybrid",
    model: str | None = None,
    temperature: float | None = None,
    max_context_tokens: int = DEFAULT_MAX_CONTEXT_TOKENS,
    min_score: float | None = None,
    system_prompt: str | None = None,
    filter_json: str | None = None,
    rerank_model: str | None = None,
    rerank_top_n: int = 50,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> AnswerResponse:
    """Stream the answer to OUT, then the sources it was given, cited ones marked *; usage to ERR.

    MIN_SCORE None means the default floor (docs/answers.md). A failure mid-answer raises after the text so far.
    """
    out, err = out or sys.stdout, err or sys.stderr
    fields: dict[str, Any] = {"question": question, "k": k, "mode": mode, "max_context_tokens": max_context_tokens}
    optional = {"model": model, "temperature": temperature, "min_score": min_score, "system_prompt": system_prompt}
    fields |= {key: value for key, value in optional.items() if value is not None}
    if filter_json is not None:
        fields["filter"] = _json_option("--filter", filter_json)
    if rerank_model is not None:
        fields["rerank"] = {"model": rerank_model, "top_n": rerank_top_n}
    request = _request(fields | {"stream": True})

    # Here, not at the top: every `memora` command imports this module, and only `memora ask` needs these (the
    # openai client alone takes ~0.5 s to import).
    from sqlalchemy.orm import Session

    from app.rag import service
    from app.search.service import check_query_length

    check_query_length(settings, question, "QUESTION")
    with Session(engine) as db:
        prepared = service.prepare(db, settings, collection, request)
    done: dict[str, Any] = {}
    written = ""
    with contextlib.closing(service.events(prepared, service.open_stream(settings, prepared))) as events:
        try:
            for event, data in events:
                if event == "delta":
                    written += data["text"]
                    out.write(data["text"])
                    out.flush()
                elif event == "done":
                    done = data
        finally:
            if written and not written.endswith("\n"):
                out.write("\n")
    response = AnswerResponse.model_validate(
        done | {"sources": [s.model_copy(update={"cited": s.n in done["citations"]}) for s in prepared.sources]}
    )
    if response.answer is None:
        why = "search found nothing"
        if response.retrieved:
            why = f"none of the {response.retrieved} chunks found reached min_score {response.min_score}"
        out.write(f"No relevant sources in {collection}: {why}; the model was not asked.\n")
        return response
    out.write("\nSources:\n")
    for source in response.sources:
        out.write(_source_line(source))
    usage = response.usage
    err.write(
        f"{response.model}: {usage.context_tokens} context tokens; prompt {usage.prompt_tokens}, completion "
        f"{usage.completion_tokens} tokens; {response.took_ms:.0f} ms\n"
    )
    return response


def _source_line(source: Source) -> str:
    mark = "*" if source.cited else " "
    where = f"chunk {source.chunk_id}, chars {source.char_start}-{source.char_end}"
    return f"[{source.n}]{mark} {source.external_id}  {where}  {source.title}".rstrip() + "\n"


def _request(fields: dict[str, Any]) -> AnswerRequest:
    """The request, its errors naming the command's options."""
    try:
        return AnswerRequest.model_validate(fields)
    except ValidationError as exc:
        problems = problems_of(exc, lambda loc: _flag(str(loc[0]) if loc else ""))
        raise InvalidInputError.for_problems(problems, "invalid options") from None


def _flag(field: str) -> str:
    return "QUESTION" if field == "question" else "--" + field.replace("_", "-")


def _json_option(flag: str, value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise InvalidInputError.for_field(flag, f"not JSON ({exc})") from None
    except RecursionError:
        raise InvalidInputError.for_field(flag, "JSON nested too deeply to parse") from None
