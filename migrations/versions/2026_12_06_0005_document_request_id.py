"""Observability: memora.document.request_id, the X-Request-ID of the request that created or last changed a
document, so the worker's log lines about the document carry the id the client got back.

Nullable and without a default: adding it rewrites nothing, rows from before it (and rows a psql user inserts)
simply have none.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from memora_migrations.ops import schema

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("document", sa.Column("request_id", sa.Text(), nullable=True), schema=schema())


def downgrade() -> None:
    op.drop_column("document", "request_id", schema=schema())
