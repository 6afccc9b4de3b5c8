"""The tables of access control: API keys (stored as keyed hashes only) and the audit trail of writes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Identity, Index, Integer, LargeBinary, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import DateTime

from app.db.models.base import Base, created_at_column, in_list

ROLES = ("read", "write", "admin")


class ApiKey(Base):
    """One API key: a name, a role, the collections and datasets it is granted (glob patterns), and the keyed hash
    of the secret (app/auth/keys.py), never the secret itself. A revoked key keeps its row, so the audit trail
    still names it; its name is free again for a new key."""

    __tablename__ = "api_key"
    __table_args__ = (
        CheckConstraint(r"name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$'", name="name_format"),
        CheckConstraint(in_list("role", ROLES), name="role"),
        CheckConstraint("octet_length(hash) = 32", name="hash_length"),
        CheckConstraint("rate_limit IS NULL OR rate_limit > 0", name="rate_limit"),
        # One live key per name; revoked ones keep theirs.
        Index("uq_api_key_name_live", "name", unique=True, postgresql_where=text("revoked_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    # The key's first characters ("mk_" and 8 more): shown in lists and used to find the row, never enough to use.
    prefix: Mapped[str] = mapped_column(Text, nullable=False, index=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    collections: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{*}'"))
    datasets: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default=text("'{*}'"))
    # Requests per minute this key may send; NULL: MEMORA_RATE_LIMIT_PER_MINUTE (0 there: no limit).
    rate_limit: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    """One write or delete the REST API answered: who (the key's name; NULL with no key, in open mode), what
    (method, route template, path, the collection or dataset it touched), when, and the status it got."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_event_at", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    # No foreign key: the trail outlives the key.
    key_id: Mapped[int | None] = mapped_column(BigInteger)
    key_name: Mapped[str | None] = mapped_column(Text)
    method: Mapped[str] = mapped_column(Text, nullable=False)
    route: Mapped[str] = mapped_column(Text, nullable=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    collection: Mapped[str | None] = mapped_column(Text)
    dataset: Mapped[str | None] = mapped_column(Text)
    status: Mapped[int] = mapped_column(Integer, nullable=False)
    request_id: Mapped[str | None] = mapped_column(Text)
