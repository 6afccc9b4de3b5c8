"""The distribution column in the keys of the last two growing tables, so Citus can shard them (docs/scaling.md).

- memora.document_count: primary key (collection_id, id), was (id). Its rows grow with a collection's writes and are
  read and folded one collection at a time; Citus enforces a primary key only when it includes the distribution
  column. The key now leads with collection_id, so the index on collection_id alone goes.
- memora.snapshot_example: primary key (dataset_id, snapshot_id, seq), was (snapshot_id, seq), for the same reason
  (it is sharded by dataset with memora.example, whose rows it points at). An index on (snapshot_id, seq) keeps the
  old path for reading a snapshot in order.

Both stay valid on plain PostgreSQL: the rows are the same, only the keys change.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

from memora_migrations.ops import schema

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    s = schema()
    op.drop_constraint("pk_document_count", "document_count", type_="primary", schema=s)
    op.create_primary_key("pk_document_count", "document_count", ["collection_id", "id"], schema=s)
    op.drop_index("ix_document_count_collection_id", table_name="document_count", schema=s)
    op.drop_constraint("pk_snapshot_example", "snapshot_example", type_="primary", schema=s)
    op.create_primary_key("pk_snapshot_example", "snapshot_example", ["dataset_id", "snapshot_id", "seq"], schema=s)
    op.create_index("ix_snapshot_example_snapshot_id_seq", "snapshot_example", ["snapshot_id", "seq"], schema=s)


def downgrade() -> None:
    s = schema()
    op.drop_index("ix_snapshot_example_snapshot_id_seq", table_name="snapshot_example", schema=s)
    op.drop_constraint("pk_snapshot_example", "snapshot_example", type_="primary", schema=s)
    op.create_primary_key("pk_snapshot_example", "snapshot_example", ["snapshot_id", "seq"], schema=s)
    op.create_index(op.f("ix_document_count_collection_id"), "document_count", ["collection_id"], schema=s)
    op.drop_constraint("pk_document_count", "document_count", type_="primary", schema=s)
    op.create_primary_key("pk_document_count", "document_count", ["id"], schema=s)
