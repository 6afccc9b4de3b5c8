"""Request and response bodies of answers, and the defaults that should become settings."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.db.storable import StorableObject, StorableText
from app.rerank.schemas import RerankOptions
from app.search.schemas import Consistency, Mode

# Defaults meant to become settings (MEMORA_CHAT_MODEL, MEMORA_ANSWER_*); see docs/answers.md.
DEFAULT_K = 8
DEFAULT_MAX_CONTEXT_TOKENS = 4000
MAX_CONTEXT_TOKENS = 200_000
# A cosine similarity: unrelated texts score about 0 to 0.2 under MiniLM and text-embedding-3 (not ada-002).
DEFAULT_MIN_SCORE = 0.25
MAX_QUESTION_CHARS = 8000
MAX_SYSTEM_PROMPT_CHARS = 20_000

NO_RELEVANT_SOURCES = "no_relevant_sources"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or blank")
    return value


# Text PostgreSQL and the model can take, with a word in it.
Text = Annotated[StorableText, AfterValidator(_not_blank)]


class AnswerRequest(BaseModel):
    """A question about a collection, answered by a chat model from the chunks search finds."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"question": "How long is parental leave?", "k": 8, "filter": {"team": "hr"}},
                {"question": "How long is parental leave?", "model": "gpt-4o", "stream": True},
            ]
        },
    )

    question: Text = Field(
        min_length=1, max_length=MAX_QUESTION_CHARS, description="What to answer; it is also the search query."
    )
    k: int = Field(
        default=DEFAULT_K, ge=1, description="Chunks to retrieve, at most MEMORA_SEARCH_MAX_K (default 100)."
    )
    filter: StorableObject | None = Field(
        default=None, description="Conditions on metadata and document fields, as search takes them (docs/rest.md)."
    )
    mode: Mode = Field(default="hybrid", description="The search that retrieves: hybrid, text or vector.")
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Chat model on the OpenAI-compatible server (MEMORA_OPENAI_BASE_URL); "
        "default MEMORA_CHAT_MODEL (gpt-4o-mini).",
    )
    temperature: float | None = Field(
        default=None, ge=0, le=2, allow_inf_nan=False, description="Sampling temperature; unset: the model's own."
    )
    max_context_tokens: int = Field(
        default=DEFAULT_MAX_CONTEXT_TOKENS,
        ge=1,
        le=MAX_CONTEXT_TOKENS,
        description="Token budget of the numbered sources in the prompt, counted with the model's tokenizer.",
    )
    min_score: float | None = Field(
        default=DEFAULT_MIN_SCORE,
        allow_inf_nan=False,
        description="Floor on a chunk's vector similarity; a chunk that matches the question's words passes "
        "anyway. Unset: 0.25 on cosine collections, no floor on l2 and inner_product ones; null: no floor.",
    )
    system_prompt: Text | None = Field(
        default=None,
        max_length=MAX_SYSTEM_PROMPT_CHARS,
        description="Replaces the default instructions (answer only from the sources, cite them as [n]).",
    )
    stream: bool = Field(default=False, description="Answer as server-sent events: sources, deltas, done.")
    rerank: RerankOptions | None = Field(
        default=None, description="Rerank the retrieved chunks before packing them (docs/rerank.md). Off by default."
    )
    consistency: Consistency | None = Field(
        default=None, description="Read-your-writes on read replicas; unset: whatever a fit replica holds."
    )


class Source(BaseModel):
    """A chunk given to the model as source [n]."""

    n: int = Field(description="The number the prompt gives the chunk, cited in the answer as [n].")
    cited: bool = Field(description="Whether the answer cites it (always false in the stream's sources event).")
    chunk_id: int
    document_id: int
    external_id: str
    ordinal: int = Field(description="Position of the chunk in its document, from 0.")
    char_start: int = Field(description="The chunk is the document's content[char_start:char_end].")
    char_end: int
    title: str
    score: float = Field(description="The search score results are ordered by (fused, in hybrid mode).")
    similarity: float | None = Field(default=None, description="Vector similarity, which min_score is compared to.")
    text: str
    tokens: int = Field(description="Tokens the source takes in the prompt, with its [n] heading.")


class Usage(BaseModel):
    prompt_tokens: int | None = Field(default=None, description="As the chat server reports them.")
    completion_tokens: int | None = None
    total_tokens: int | None = None
    context_tokens: int = Field(description="Tokens of the numbered sources, counted here with the model's tokenizer.")


class AnswerResponse(BaseModel):
    answer: str | None = Field(description="The model's answer; null when no source was relevant.")
    reason: Literal["no_relevant_sources"] | None = Field(
        default=None, description="Why there is no answer: no chunk passed min_score, and no model was asked."
    )
    model: str = Field(description="The chat model, as the server names it.")
    sources: list[Source] = Field(description="The sources in the prompt, in search order.")
    citations: list[int] = Field(description="The source numbers the answer cites, in order of first citation.")
    finish_reason: str | None = Field(default=None, description="Why the model stopped: stop, length...")
    usage: Usage
    retrieved: int = Field(description="Chunks search returned, before min_score and the token budget.")
    min_score: float | None = Field(description="The floor that was applied.")
    took_ms: float
