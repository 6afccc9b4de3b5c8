"""Access control: memora.api_key (API keys, kept as keyed hashes only) and memora.audit_event (the trail of
writes and deletes through the REST API). docs/security.md explains both.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from memora_migrations.ops import schema

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    s = schema()
    op.create_table(
        "api_key",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("collections", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{*}'"), nullable=False),
        sa.Column("datasets", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{*}'"), nullable=False),
        sa.Column("rate_limit", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(r"name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$'", name=op.f("ck_api_key_name_format")),
        sa.CheckConstraint("role IN ('read', 'write', 'admin')", name=op.f("ck_api_key_role")),
        sa.CheckConstraint("octet_length(hash) = 32", name=op.f("ck_api_key_hash_length")),
        sa.CheckConstraint("rate_limit IS NULL OR rate_limit > 0", name=op.f("ck_api_key_rate_limit")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        schema=s,
    )
    op.create_index(op.f("ix_api_key_prefix"), "api_key", ["prefix"], schema=s)
    op.create_index(
        "uq_api_key_name_live",
        "api_key",
        ["name"],
        unique=True,
        schema=s,
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    op.create_table(
        "audit_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("key_id", sa.BigInteger(), nullable=True),
        sa.Column("key_name", sa.Text(), nullable=True),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("collection", sa.Text(), nullable=True),
        sa.Column("dataset", sa.Text(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
        schema=s,
    )
    op.create_index("ix_audit_event_at", "audit_event", ["at"], schema=s)


def downgrade() -> None:
    s = schema()
    op.drop_table("audit_event", schema=s)
    op.drop_table("api_key", schema=s)
