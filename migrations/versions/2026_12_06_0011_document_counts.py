"""Documents by status without counting them: memora.document_count, and an index for pages of one status.

- memora.document_count: signed changes to the number of a collection's documents in each status, appended by
  statement triggers on memora.document (sql/idempotent/015-document-counts.sql). Appended, never updated: a
  writer takes no lock on a shared counter row, so uploads and workers do not queue on it, and no lock order with
  text_stats (which chunk writers take) can deadlock. A count is the sum of its rows; workers fold the rows of a
  collection into one per status when they are many (memora.compact_document_count). No foreign key to
  memora.collection: its check would lock the collection's row (KEY SHARE) from every statement that moves a
  document, after that statement's document locks, the opposite order to collection changes that lock the
  collection and then its documents (a deadlock); a trigger on memora.collection removes a deleted one's rows.
- ix_document_status: (collection_id, status, id) for documents not ready, so a page of failed or pending
  documents reads only those, in id order, however many are ready (ready ones page by the primary key).

The counts of the documents already stored are its first rows.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from memora_migrations.ops import qualified, schema

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    s = schema()
    op.create_table(
        "document_count",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("collection_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_count")),
        schema=s,
    )
    op.create_index(op.f("ix_document_count_collection_id"), "document_count", ["collection_id"], schema=s)
    op.create_index(
        "ix_document_status",
        "document",
        ["collection_id", "status", "id"],
        schema=s,
        postgresql_where=sa.text("status <> 'ready'"),
    )
    op.execute(
        f"INSERT INTO {qualified('document_count')} (collection_id, status, n) "
        f"SELECT collection_id, status, count(*) FROM {qualified('document')} GROUP BY collection_id, status"
    )


def downgrade() -> None:
    s = schema()
    op.drop_index("ix_document_status", table_name="document", schema=s)
    op.drop_table("document_count", schema=s)
