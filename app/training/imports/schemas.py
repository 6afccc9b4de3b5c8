"""The report of an import: counts, every problem with its line and field, what the good records add up to."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ImportMode = Literal["strict", "skip"]


class Problem(BaseModel):
    line: int | None
    field: str
    reason: str


class TokenStats(BaseModel):
    min: int
    mean: float
    p95: int
    max: int


class ImportReport(BaseModel):
    """What an import did: every bad line with its reason, and what the good ones add up to."""

    mode: ImportMode
    received: int = Field(description="Records read (lines of JSONL, rows of CSV, questions of a SQuAD file).")
    stored: int = Field(description="New examples stored.")
    duplicates: int = Field(description="Records already in the dataset, or repeated within this import.")
    invalid: int = Field(description="Records with problems (stored: none of them).")
    problems: list[Problem] = Field(description="Every problem, up to a limit; problems_total counts them all.")
    problems_total: int
    formats: dict[str, int] = Field(description="Valid records by format.")
    label_counts: dict[str, int] = Field(description="Valid records by label.")
    tokens: TokenStats | None = Field(description="Tokens per valid example (the target model's tokenizer).")
    estimated_epoch_tokens: int = Field(description="Tokens one epoch over the valid records trains on.")
    token_counts_exact: bool = Field(description="False when counts are estimates (no tokenizer for the model).")
