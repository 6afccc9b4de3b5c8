"""Search speed: BM25's second pass asks the GIN index for the chunks that can still enter the top k
(memora.bm25_bound_query), and vector search defaults to ef_search 64.

Nothing of its own to do, either way. The revision changed functions only, and applied sql/functions/005-search.sql
again to bring them; functions are now the idempotent layer (sql/idempotent/, memora_migrations.idempotent), which
every migration run applies for the revision it ends at, so a database at 0003 gets today's search functions as
much as one at 0004 does. It stays because databases are stamped at it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
