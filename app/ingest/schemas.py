"""Request and response bodies of documents: what the documents API takes (with chunks and vectors when a client
brings its own) and what it answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row

from app.db.storable import StorableText
from app.ingest.pipeline import ChunkInput
from app.ingest.service import DocumentInput


class ChunkIn(BaseModel):
    """A chunk of the document's content with a vector you computed; the collection's model id is stored with it."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="Must occur in content, after the previous chunk.")
    embedding: list[float] = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


class DocumentIn(BaseModel):
    """One document. Without external_id its key is its content hash, so sending it again changes nothing."""

    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1)
    external_id: str | None = Field(default=None, min_length=1, max_length=1024)
    title: str | None = None
    content_type: Literal["text/plain", "text/markdown", "text/html", "application/pdf"] = Field(
        default="text/plain",
        description="text/markdown keeps heading paths; application/pdf expects pages separated by form feeds.",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: str | None = None
    chunks: list[ChunkIn] | None = Field(
        default=None,
        min_length=1,
        description="Bring your own chunks and embeddings: stored at once (status ready), nothing is embedded.",
    )

    def to_input(self) -> DocumentInput:
        return DocumentInput(
            content=self.content,
            external_id=self.external_id,
            title=self.title,
            content_type=self.content_type,
            metadata=self.metadata,
            source=self.source,
            chunks=None
            if self.chunks is None
            else [ChunkInput(chunk.text, chunk.embedding, chunk.metadata) for chunk in self.chunks],
        )


class UploadResult(BaseModel):
    """A stored document (external_id, status, version, action), or a file that could not be read (file, error)."""

    external_id: str | None = None
    status: str | None = None
    version: int | None = None
    action: Literal["created", "updated", "unchanged"] | None = None
    file: str | None = None
    error: dict[str, Any] | None = None


class UploadResponse(BaseModel):
    documents: list[UploadResult]


class DocumentSummary(BaseModel):
    external_id: str
    title: str
    source: str | None
    content_type: str
    metadata: dict[str, Any]
    status: str
    error: str | None
    attempts: int
    version: int
    content_hash: str
    chunk_count: int
    created_at: datetime
    updated_at: datetime


class DocumentDetail(DocumentSummary):
    content: str


class RetryRequest(BaseModel):
    """Failed documents to try again: those named, or every failed one of the collection."""

    model_config = ConfigDict(extra="forbid")

    external_ids: list[Annotated[StorableText, Field(min_length=1, max_length=1024)]] | None = Field(
        default=None, max_length=10_000, description="Default: every failed document of the collection."
    )


class Retried(BaseModel):
    retried: list[str] = Field(description="The documents queued again.")
    not_failed: list[str] = Field(description="Documents named that exist but had not failed: left as they are.")


class DocumentPage(BaseModel):
    items: list[DocumentSummary]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page.")


class ChunkOut(BaseModel):
    """One chunk of a document: document.content[char_start:char_end] is its text."""

    chunk_id: int
    ordinal: int = Field(description="Its place in the document, from 0.")
    char_start: int
    char_end: int
    title: str = Field(description="What it is indexed under: the document title, and the heading path in Markdown.")
    headings: list[str] = Field(description="The Markdown headings it sits under, outermost first; [] elsewhere.")
    metadata: dict[str, Any] = Field(description="headings, PDF page (and page_end), or what a client sent with it.")
    token_count: int = Field(description="Tokens of the text, counted by the collection's model's tokenizer.")
    chars: int = Field(description="Characters of the whole text (char_end - char_start).")
    text: str
    truncated: bool = Field(description="True when text is cut to text_chars characters.")
    embedded: bool = Field(description="The collection's active embedding version has its vector.")

    @classmethod
    def of(cls, row: Row[Any]) -> ChunkOut:
        headings = row.metadata.get("headings")
        return cls(
            chunk_id=row.id,
            ordinal=row.ordinal,
            char_start=row.char_start,
            char_end=row.char_end,
            title=row.title,
            # A client's own chunks may carry any metadata: only a list of strings is a heading path.
            headings=headings if isinstance(headings, list) and all(isinstance(h, str) for h in headings) else [],
            metadata=row.metadata,
            token_count=row.token_count,
            chars=row.chars,
            text=row.text,
            truncated=len(row.text) < row.chars,
            embedded=row.embedded,
        )


class ChunkPage(BaseModel):
    external_id: str
    status: str = Field(description="The document's: its chunks are complete once it is ready.")
    active_version: int = Field(description="The embedding version `embedded` refers to.")
    items: list[ChunkOut]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page.")
