"""Search: BM25 statistics (text_stats, term_stats) and parameters (collection.bm25_k1, bm25_b), and the type
search functions return (sql/incremental/0002-search-hit.sql).

The triggers that keep the statistics and the search functions are sql/idempotent/003-008, which every migration
run applies once the database is at this revision or past it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from memora_migrations.ops import apply_incremental, qualified, schema

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    s = schema()
    op.add_column("collection", sa.Column("bm25_k1", sa.REAL(), server_default="0.9", nullable=False), schema=s)
    op.add_column("collection", sa.Column("bm25_b", sa.REAL(), server_default="0.4", nullable=False), schema=s)
    op.create_check_constraint("bm25_k1", "collection", "bm25_k1 >= 0 AND bm25_k1 <= 10", schema=s)
    op.create_check_constraint("bm25_b", "collection", "bm25_b >= 0 AND bm25_b <= 1", schema=s)
    op.create_table(
        "text_stats",
        sa.Column("collection_id", sa.BigInteger(), nullable=False),
        sa.Column("chunks", sa.BigInteger(), nullable=False),
        sa.Column("total_length", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            [f"{s}.collection.id"],
            name=op.f("fk_text_stats_collection_id_collection"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", name=op.f("pk_text_stats")),
        schema=s,
    )
    op.create_table(
        "term_stats",
        sa.Column("collection_id", sa.BigInteger(), nullable=False),
        sa.Column("lexeme", sa.Text(), nullable=False),
        sa.Column("df", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            [f"{s}.collection.id"],
            name=op.f("fk_term_stats_collection_id_collection"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "lexeme", name=op.f("pk_term_stats")),
        schema=s,
    )
    apply_incremental("0002-search-hit.sql")
    # Statistics of the chunks already stored (what memora.refresh_text_stats counted when this revision was
    # written); the triggers keep them from here on.
    op.execute(
        f"""
        INSERT INTO {qualified("text_stats")} (collection_id, chunks, total_length)
        SELECT c.id, count(ch.id), coalesce(sum(length(ch.tsv)), 0)
        FROM {qualified("collection")} c LEFT JOIN {qualified("chunk")} ch ON ch.collection_id = c.id
        GROUP BY c.id
        """
    )
    op.execute(
        f"""
        INSERT INTO {qualified("term_stats")} (collection_id, lexeme, df)
        SELECT ch.collection_id, u.lexeme, count(*)
        FROM {qualified("chunk")} ch, unnest(ch.tsv) u
        GROUP BY ch.collection_id, u.lexeme
        """
    )


def downgrade() -> None:
    s = schema()
    op.execute(f"DROP TYPE {qualified('search_hit')}")
    op.drop_table("term_stats", schema=s)
    op.drop_table("text_stats", schema=s)
    op.drop_constraint(op.f("ck_collection_bm25_b"), "collection", schema=s, type_="check")
    op.drop_constraint(op.f("ck_collection_bm25_k1"), "collection", schema=s, type_="check")
    op.drop_column("collection", "bm25_b", schema=s)
    op.drop_column("collection", "bm25_k1", schema=s)
