"""The web console's tables.

- memora.eval_run: one row per completed `memora eval` of a collection, for the console's Evaluation pages and
  GET /v1/collections/{name}/evaluations. `params` says how it was run (judged queries, modes, depth, embedding
  version, fusion settings), `summary` what it measured (what `memora eval --json` prints, with each mode's recall
  curve and the latency sweep's points). The key leads with collection_id, as every per-collection table's does: a
  collection's runs newest first are a backward scan of it, and the delete that cascades from a collection finds
  them by it. A new, empty table: nothing is rewritten or locked but the catalog.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from memora_migrations.ops import schema

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    s = schema()
    op.create_table(
        "eval_run",
        sa.Column("collection_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("summary", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.CheckConstraint("jsonb_typeof(params) = 'object'", name=op.f("ck_eval_run_params_object")),
        sa.CheckConstraint("jsonb_typeof(summary) = 'object'", name=op.f("ck_eval_run_summary_object")),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            [f"{s}.collection.id"],
            name=op.f("fk_eval_run_collection_id_collection"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "id", name=op.f("pk_eval_run")),
        schema=s,
    )


def downgrade() -> None:
    op.drop_table("eval_run", schema=schema())
