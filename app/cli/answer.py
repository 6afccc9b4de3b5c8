"""`memora ask`: a streamed answer from a collection's chunks, citing them, then its sources (routes: answer.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.options import engine, option, settings
from app.rag.schemas import DEFAULT_K, DEFAULT_MAX_CONTEXT_TOKENS

cli = typer.Typer()


@cli.command("ask")
def ask(
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
    from app.rag.commands import ask as answer

    with engine(ctx) as made:
        answer(
            settings(ctx), made, collection, question, k=k, mode=mode, model=model,
            temperature=temperature, max_context_tokens=max_context_tokens, min_score=min_score,
            system_prompt=system_prompt, filter_json=filter_json, rerank_model=rerank_model,
            rerank_top_n=rerank_top_n,
        )  # fmt: skip
