"""The table of evaluation runs: what `memora eval` measured on a collection, kept for the console and the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Identity
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.models.base import Base, created_at_column
from app.db.models.collections import Collection


class EvalRun(Base):
    """One completed `memora eval`: how it was run (params) and what it measured (summary: what `--json` prints,
    with each mode's recall curve and the latency sweep's points). Rows are written once and never changed."""

    __tablename__ = "eval_run"
    __table_args__ = (
        CheckConstraint("jsonb_typeof(params) = 'object'", name="params_object"),
        CheckConstraint("jsonb_typeof(summary) = 'object'", name="summary_object"),
    )

    # The key leads with the collection: a collection's runs, newest first, are a backward scan of it.
    collection_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey(Collection.id, ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    created_at: Mapped[datetime] = created_at_column()
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
