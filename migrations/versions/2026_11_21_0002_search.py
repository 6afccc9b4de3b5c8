"""Search: BM25 statistics kept by triggers, the filter language, search_text/search_vector/search_hybrid.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.migration_ops import apply_sql_file, qualified, schema

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Everything 003-005 create, dropped in reverse by downgrade (signatures as pg_proc spells them).
FUNCTIONS = (
    "search_hybrid(text, text, vector, integer, jsonb, text, integer, double precision, double precision, integer, "
    "integer)",
    "search_vector(text, vector, integer, jsonb, integer, boolean)",
    "search_text(text, text, integer, jsonb)",
    "search_vector_v1(text, vector, integer, jsonb, integer, boolean)",
    "search_text_v1(text, text, integer, jsonb)",
    "search_hybrid_v1(text, text, vector, integer, jsonb, text, integer, double precision, double precision, "
    "integer, integer, boolean)",
    "check_search_arguments(memora.collection, integer, integer, vector)",
    "min_max(double precision, double precision, double precision)",
    "vector_similarity(text, double precision)",
    "vector_candidates(bigint, vector, integer, jsonb, integer, boolean)",
    "hnsw_ef_search(integer, integer)",
    "bm25_candidates(bigint, text, integer, jsonb)",
    "bm25_bound_query(text[], double precision[], double precision, integer)",
    "search_tsquery(regconfig, text)",
    "lexeme_tsquery(text[])",
    "search_terms(regconfig, text)",
    "search_collection(text)",
    "argument_error(text, text)",
    "compile_filter(jsonb, integer, integer)",
    "filter_in(jsonb, jsonb)",
    "filter_eq(jsonb, jsonb)",
    "filter_field(text, jsonb, text, integer, integer, text[], jsonb[])",
    "filter_sql(jsonb, text, integer, integer, text[], jsonb[])",
    "filter_error(text, text)",
    "refresh_text_stats(bigint)",
    "chunk_text_stats()",
    "apply_text_stats(memora.text_stats[], memora.term_stats[])",
)


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
    apply_sql_file("003-text-stats.sql")
    apply_sql_file("004-filter.sql")
    apply_sql_file("005-search.sql")
    # Statistics of the chunks already stored; the triggers keep them from here on.
    op.execute(f"SELECT {qualified('refresh_text_stats')}(id) FROM {qualified('collection')} ORDER BY id")


def downgrade() -> None:
    s = schema()
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER chunk_text_stats_{event} ON {qualified('chunk')}")
    for signature in FUNCTIONS:
        name, _, arguments = signature.partition("(")
        arguments = arguments.replace("memora.", f"{s}.") if s != "memora" else arguments
        op.execute(f"DROP FUNCTION {qualified(name)}({arguments}")
    op.execute(f"DROP TYPE {qualified('search_hit')}")
    op.drop_table("term_stats", schema=s)
    op.drop_table("text_stats", schema=s)
    op.drop_constraint(op.f("ck_collection_bm25_b"), "collection", schema=s, type_="check")
    op.drop_constraint(op.f("ck_collection_bm25_k1"), "collection", schema=s, type_="check")
    op.drop_column("collection", "bm25_b", schema=s)
    op.drop_column("collection", "bm25_k1", schema=s)
