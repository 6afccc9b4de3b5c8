"""BM25 postings: memora.posting, one row per lexeme and chunk with the lexeme's tf in the chunk and the chunk's
length, so that BM25 reads a query's postings from a B-tree (index-only) and never a tsvector.

tf is the number of positions of the lexeme in the chunk's tsvector (1 for a lexeme stored without positions) and
len the chunk's number of distinct lexemes, length(tsv): what BM25 has always used here. The statement-level
triggers of sql/idempotent/005-search-bm25.sql keep the table as the chunks change, beside those that keep the
statistics (003); this revision fills it for the chunks already stored, then builds its key (a B-tree built once over
sorted rows is packed; grown by inserts it is about half full).

No foreign key: an RI check per posting would cost more than the posting. Deleting a collection deletes its chunks,
whose delete trigger removes their postings.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from memora_migrations.ops import qualified, schema

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    s = schema()
    op.create_table(
        "posting",
        sa.Column("collection_id", sa.BigInteger(), nullable=False),
        sa.Column("lexeme", sa.Text(), nullable=False),
        sa.Column("chunk_id", sa.BigInteger(), nullable=False),
        sa.Column("tf", sa.SmallInteger(), nullable=False),
        sa.Column("len", sa.Integer(), nullable=False),
        schema=s,
    )
    op.execute(
        f"""
        INSERT INTO {qualified("posting")} (collection_id, lexeme, chunk_id, tf, len)
        SELECT c.collection_id, u.lexeme, c.id, coalesce(cardinality(u.positions), 1), length(c.tsv)
        FROM {qualified("chunk")} c, unnest(c.tsv) u
        """
    )
    op.execute(
        f"ALTER TABLE {qualified('posting')} ADD CONSTRAINT pk_posting "
        "PRIMARY KEY (collection_id, lexeme, chunk_id) INCLUDE (tf, len)"
    )
    # Scoring reads postings by index-only scans, which visit the heap for pages VACUUM has not marked all-visible
    # yet: autovacuum comes after 5% new rows rather than PostgreSQL's 20% (vacuuming an insert-only table's new
    # pages is cheap).
    op.execute(f"ALTER TABLE {qualified('posting')} SET (autovacuum_vacuum_insert_scale_factor = 0.05)")


def downgrade() -> None:
    op.drop_table("posting", schema=schema())
