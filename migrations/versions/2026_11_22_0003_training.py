"""Training data: split rules on datasets, example seq/format/hashes/tombstones, snapshots, fine-tuning jobs.

The rules examples and snapshots follow, and the shuffled batches' permutation, are sql/idempotent/009-training.sql
and 010-batches.sql, which every migration run applies once the database is at this revision or past it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from memora_migrations.ops import qualified, schema

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FORMATS = "'chat', 'completion', 'classification', 'pairs', 'triplets', 'qa', 'custom'"

# memora.text_hash(format, input, output, label, labels) as it was when this revision was written, over an example's
# columns: the backfill below must hash as this revision's code did, whatever the function becomes.
TEXT_HASH = r"""
    sha256(convert_to(
        replace(replace(
            array_to_string(array_remove(string_to_array(
                replace(replace(replace(
                    lower((CASE WHEN format = 'chat'
                        THEN jsonb_path_query_array(input, 'lax $.messages[*] ? (@.role != "system").content')
                        ELSE jsonb_path_query_array(jsonb_build_array(input, output), 'strict $.** ? (@.type() == "string")')
                    END)::text COLLATE "C"),
                    '\n', ' '), '\t', ' '), '\r', ' '),
                ' '), ''), ' '),
            '" ', '"'), ' "', '"')
        || E'\x1f' || coalesce(label, '') || E'\x1f' || coalesce(array_to_string(labels, E'\x1e'), ''),
        'UTF8'
    ))
"""


def upgrade() -> None:
    s = schema()
    op.add_column("dataset", sa.Column("split_seed", sa.Integer(), server_default="0", nullable=False), schema=s)
    op.add_column(
        "dataset",
        sa.Column(
            "split_ratios",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("""'{"train": 0.8, "validation": 0.1, "test": 0.1}'::jsonb"""),
            nullable=False,
        ),
        schema=s,
    )
    op.add_column(
        "dataset", sa.Column("split_stratified", sa.Boolean(), server_default="false", nullable=False), schema=s
    )
    op.add_column("dataset", sa.Column("next_seq", sa.BigInteger(), server_default="0", nullable=False), schema=s)
    op.create_check_constraint("split_ratios_object", "dataset", "jsonb_typeof(split_ratios) = 'object'", schema=s)
    op.create_check_constraint("next_seq", "dataset", "next_seq >= 0", schema=s)

    # Examples stored before this revision (there were no writers of them yet) get the new columns in place.
    op.add_column("example", sa.Column("seq", sa.BigInteger(), nullable=True), schema=s)
    op.add_column("example", sa.Column("format", sa.Text(), nullable=True), schema=s)
    op.add_column("example", sa.Column("text_hash", sa.LargeBinary(), nullable=True), schema=s)
    op.add_column("example", sa.Column("token_count", sa.Integer(), nullable=True), schema=s)
    op.add_column("example", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True), schema=s)
    op.execute(
        f"""
        UPDATE {qualified("example")} e SET seq = n.seq, format = n.format
        FROM (
            SELECT x.dataset_id, x.id, row_number() OVER (PARTITION BY x.dataset_id ORDER BY x.id) - 1 AS seq,
                   CASE WHEN d.task = 'classification' OR x.label IS NOT NULL THEN 'classification' ELSE 'custom' END
                   AS format
            FROM {qualified("example")} x JOIN {qualified("dataset")} d ON d.id = x.dataset_id
        ) n
        WHERE (e.dataset_id, e.id) = (n.dataset_id, n.id)
        """
    )
    op.execute(
        f"UPDATE {qualified('dataset')} d SET next_seq = "
        f"(SELECT count(*) FROM {qualified('example')} e WHERE e.dataset_id = d.id)"
    )
    op.create_table(
        "snapshot",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("examples", sa.BigInteger(), nullable=False),
        sa.Column("split_counts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$'", name=op.f("ck_snapshot_name_format")),
        sa.ForeignKeyConstraint(
            ["dataset_id"], [f"{s}.dataset.id"], name=op.f("fk_snapshot_dataset_id_dataset"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshot")),
        sa.UniqueConstraint("dataset_id", "name", name=op.f("uq_snapshot_dataset_id_name")),
        schema=s,
    )
    op.create_table(
        "snapshot_example",
        sa.Column("snapshot_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("example_id", sa.BigInteger(), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column("split", sa.Text(), nullable=True),
        sa.CheckConstraint("split IN ('train', 'validation', 'test')", name=op.f("ck_snapshot_example_split")),
        sa.ForeignKeyConstraint(
            ["dataset_id", "example_id"],
            [f"{s}.example.dataset_id", f"{s}.example.id"],
            name=op.f("fk_snapshot_example_dataset_id_example_id_example"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            [f"{s}.snapshot.id"],
            name=op.f("fk_snapshot_example_snapshot_id_snapshot"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "seq", name=op.f("pk_snapshot_example")),
        schema=s,
    )
    op.create_index(
        "ix_snapshot_example_dataset_id_example_id", "snapshot_example", ["dataset_id", "example_id"], schema=s
    )
    op.create_index(
        "ix_snapshot_example_snapshot_id_split_seq", "snapshot_example", ["snapshot_id", "split", "seq"], schema=s
    )
    op.create_table(
        "finetune_job",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("dataset_id", sa.BigInteger(), nullable=True),
        sa.Column("snapshot_id", sa.BigInteger(), nullable=True),
        sa.Column("dataset_name", sa.Text(), nullable=False),
        sa.Column("snapshot_name", sa.Text(), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("suffix", sa.Text(), nullable=True),
        sa.Column("training_file_id", sa.Text(), nullable=False),
        sa.Column("validation_file_id", sa.Text(), nullable=True),
        sa.Column("provider_job_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("fine_tuned_model", sa.Text(), nullable=True),
        sa.Column("trained_tokens", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], [f"{s}.dataset.id"], name=op.f("fk_finetune_job_dataset_id_dataset"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            [f"{s}.snapshot.id"],
            name=op.f("fk_finetune_job_snapshot_id_snapshot"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finetune_job")),
        sa.UniqueConstraint("base_url", "provider_job_id", name=op.f("uq_finetune_job_base_url_provider_job_id")),
        schema=s,
    )
    op.execute(f"UPDATE {qualified('example')} SET text_hash = {TEXT_HASH}")
    for column in ("seq", "format", "text_hash"):
        op.alter_column("example", column, nullable=False, schema=s)
    op.create_unique_constraint(op.f("uq_example_dataset_id_seq"), "example", ["dataset_id", "seq"], schema=s)
    op.create_check_constraint("format", "example", f"format IN ({FORMATS})", schema=s)
    op.create_check_constraint("token_count", "example", "token_count >= 0", schema=s)
    op.drop_index("ix_example_dataset_id_split_id", table_name="example", schema=s)
    op.create_index("ix_example_dataset_id_split_seq", "example", ["dataset_id", "split", "seq"], schema=s)
    op.create_index("ix_example_dataset_id_text_hash", "example", ["dataset_id", "text_hash"], schema=s)


def downgrade() -> None:
    s = schema()
    op.drop_table("finetune_job", schema=s)
    op.drop_table("snapshot_example", schema=s)
    op.drop_table("snapshot", schema=s)
    op.drop_index("ix_example_dataset_id_text_hash", table_name="example", schema=s)
    op.drop_index("ix_example_dataset_id_split_seq", table_name="example", schema=s)
    op.create_index("ix_example_dataset_id_split_id", "example", ["dataset_id", "split", "id"], schema=s)
    op.drop_constraint(op.f("ck_example_token_count"), "example", schema=s, type_="check")
    op.drop_constraint(op.f("ck_example_format"), "example", schema=s, type_="check")
    op.drop_constraint(op.f("uq_example_dataset_id_seq"), "example", schema=s, type_="unique")
    for column in ("deleted_at", "token_count", "text_hash", "format", "seq"):
        op.drop_column("example", column, schema=s)
    op.drop_constraint(op.f("ck_dataset_next_seq"), "dataset", schema=s, type_="check")
    op.drop_constraint(op.f("ck_dataset_split_ratios_object"), "dataset", schema=s, type_="check")
    for column in ("next_seq", "split_stratified", "split_ratios", "split_seed"):
        op.drop_column("dataset", column, schema=s)
