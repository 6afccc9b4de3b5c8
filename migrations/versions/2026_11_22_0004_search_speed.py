"""Search speed: BM25's second pass asks the GIN index for the chunks that can still enter the top k
(memora.bm25_bound_query), and vector search defaults to ef_search 64. Applies sql/functions/005-search.sql again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from app.db.migration_ops import apply_sql_file

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    apply_sql_file("005-search.sql")


def downgrade() -> None:
    # The functions stay as they are: they return what the ones they replaced returned, on the same schema, and
    # revision 0002's downgrade drops them all, memora.bm25_bound_query included.
    pass
