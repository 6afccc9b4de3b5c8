"""Embedding versions: a collection's vectors may come in several versions (model, size, metric, storage, index
settings), one of them active for search.

- memora.embedding_version: one row per version of a collection, numbered from 1; the collection's own model columns
  stay, as the active version's. A version is 'building' while chunks lack its vectors (the worker fills them, one
  worker at a time: leased_by, lease_until; backfill_after is how far it got), 'ready' once none does, 'failed' when
  its model refused for good (error); a version with an adapter is 'training' first (the worker trains it).
- memora.collection.active_version: the version searches use (foreign key to its row, checked at commit, since the
  row of a new collection's first version is made by a trigger after the collection's).
- Where a version's vectors come from (source): the worker embeds them, or the client imports them
  (POST .../embeddings/{n}/vectors). A version may carry an adapter: a linear map applied to each query vector before
  it searches the version (memora.embedding_adapter holds its rows; adapter the report of its training).
- activate_when_ready: the version becomes the active one as soon as it is ready (a PATCH of the collection's model
  makes such a version).
- memora.collection.feedback_dataset_id: the dataset that search feedback on the collection goes to.
- memora.embedding.version, in the primary key (collection_id, chunk_id, version): chunk_id before version, so the
  delete that cascades from a chunk finds its vectors by the key in every version.
- Two levels of partitions: memora.embedding by collection (embedding_c<id>, as before), each of those by version
  (embedding_c<id>_v<n>, a table with its own CHECKs and HNSW index). Each collection's partition becomes its
  version 1: detached, renamed with its constraints and index, given the column, attached again under a new
  partition of its collection. No vector is rewritten; the new key is built once per partition.

The idempotent layer (sql/idempotent/014-embedding-versions.sql) keeps the partitions, CHECKs, indexes and nearest
functions of each version from here on; 001-partitions-by-collection.sql did it for a partition per collection.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import VECTOR
from sqlalchemy.dialects import postgresql

from memora_migrations.ops import qualified, schema

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STORAGE_COLUMNS = "embedding_provider, embedding_model, dimensions, metric, storage, hnsw_m, hnsw_ef_construction"


def upgrade() -> None:
    s = schema()
    op.create_table(
        "embedding_version",
        sa.Column("collection_id", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("embedding_provider", sa.Text(), nullable=False),
        sa.Column("embedding_model", sa.Text(), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("storage", sa.Text(), nullable=False),
        sa.Column("hnsw_m", sa.Integer(), nullable=False),
        sa.Column("hnsw_ef_construction", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), server_default="building", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), server_default="worker", nullable=False),
        sa.Column("adapter", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("activate_when_ready", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("backfill_after", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("leased_by", sa.Text(), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("number >= 1", name=op.f("ck_embedding_version_number")),
        sa.CheckConstraint(
            "status IN ('training', 'building', 'ready', 'failed')", name=op.f("ck_embedding_version_status")
        ),
        sa.CheckConstraint("source IN ('worker', 'import')", name=op.f("ck_embedding_version_source")),
        sa.CheckConstraint(
            "embedding_provider IN ('local', 'openai', 'hashing')",
            name=op.f("ck_embedding_version_embedding_provider"),
        ),
        sa.CheckConstraint("metric IN ('cosine', 'l2', 'inner_product')", name=op.f("ck_embedding_version_metric")),
        sa.CheckConstraint("storage IN ('vector', 'halfvec')", name=op.f("ck_embedding_version_storage")),
        sa.CheckConstraint(
            "dimensions >= 1 AND dimensions <= CASE storage WHEN 'halfvec' THEN 4000 ELSE 2000 END",
            name=op.f("ck_embedding_version_dimensions"),
        ),
        sa.CheckConstraint("hnsw_m BETWEEN 2 AND 100", name=op.f("ck_embedding_version_hnsw_m")),
        sa.CheckConstraint(
            "hnsw_ef_construction BETWEEN 2 * hnsw_m AND 1000", name=op.f("ck_embedding_version_hnsw_ef_construction")
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            [f"{s}.collection.id"],
            name=op.f("fk_embedding_version_collection_id_collection"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "number", name=op.f("pk_embedding_version")),
        schema=s,
    )
    op.create_table(
        "embedding_adapter",
        sa.Column("collection_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("weights", VECTOR(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id", "version"],
            [f"{s}.embedding_version.collection_id", f"{s}.embedding_version.number"],
            name=op.f("fk_embedding_adapter_collection_id_embedding_version"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "version", "row", name=op.f("pk_embedding_adapter")),
        schema=s,
    )
    op.add_column("collection", sa.Column("feedback_dataset_id", sa.BigInteger(), nullable=True), schema=s)
    op.create_foreign_key(
        op.f("fk_collection_feedback_dataset_id_dataset"),
        "collection",
        "dataset",
        ["feedback_dataset_id"],
        ["id"],
        source_schema=s,
        referent_schema=s,
        ondelete="SET NULL",
    )
    op.execute(
        f"INSERT INTO {qualified('embedding_version')} (collection_id, number, status, {STORAGE_COLUMNS}) "
        f"SELECT id, 1, 'ready', {STORAGE_COLUMNS} FROM {qualified('collection')}"
    )
    op.add_column("collection", sa.Column("active_version", sa.Integer(), server_default="1", nullable=False), schema=s)
    op.create_foreign_key(
        op.f("fk_collection_id_active_version_embedding_version"),
        "collection",
        "embedding_version",
        ["id", "active_version"],
        ["collection_id", "number"],
        source_schema=s,
        referent_schema=s,
        deferrable=True,
        initially="DEFERRED",
    )
    op.execute(_RESTRUCTURE.replace("{schema}", s))


# Every collection's partition becomes its version 1. The new partitions of the collections are owned and granted as
# memora.embedding is (as the idempotent layer makes them).
_RESTRUCTURE = """
DO $$
DECLARE
    c bigint;
    item text;
    parent record;
    grant_ record;
    collections bigint[] := ARRAY(SELECT id FROM "{schema}".collection ORDER BY id);
BEGIN
    SELECT t.relowner::regrole AS owner, t.relacl INTO parent
    FROM pg_class t WHERE t.oid = '"{schema}".embedding'::regclass;
    FOREACH c IN ARRAY collections LOOP
        EXECUTE format('ALTER TABLE "{schema}".embedding DETACH PARTITION "{schema}".%I', 'embedding_c' || c);
        EXECUTE format('ALTER TABLE "{schema}".%I RENAME TO %I', 'embedding_c' || c, 'embedding_c' || c || '_v1');
        -- What the partition should have, renamed where it is there (an index dropped for a bulk load may not be).
        FOREACH item IN ARRAY ARRAY['_model', '_dimensions'] LOOP
            IF EXISTS (SELECT FROM pg_constraint
                       WHERE conrelid = format('"{schema}".%I', 'embedding_c' || c || '_v1')::regclass
                         AND conname = 'embedding_c' || c || item) THEN
                EXECUTE format('ALTER TABLE "{schema}".%I RENAME CONSTRAINT %I TO %I', 'embedding_c' || c || '_v1',
                               'embedding_c' || c || item, 'embedding_c' || c || '_v1' || item);
            END IF;
        END LOOP;
        EXECUTE format('ALTER INDEX IF EXISTS "{schema}".%I RENAME TO %I', 'embedding_c' || c || '_hnsw',
                       'embedding_c' || c || '_v1_hnsw');
    END LOOP;
    ALTER TABLE "{schema}".embedding ADD COLUMN version integer NOT NULL DEFAULT 1;
    ALTER TABLE "{schema}".embedding DROP CONSTRAINT pk_embedding;
    ALTER TABLE "{schema}".embedding ADD CONSTRAINT pk_embedding PRIMARY KEY (collection_id, chunk_id, version);
    FOREACH c IN ARRAY collections LOOP
        -- Its NOT NULL named as a version's table made by PARTITION OF has it (from memora.embedding).
        EXECUTE format('ALTER TABLE "{schema}".%I ADD COLUMN version integer '
                       'CONSTRAINT embedding_version_not_null NOT NULL DEFAULT 1', 'embedding_c' || c || '_v1');
        -- The detached table kept the old key's index as its own; the new key replaces it.
        EXECUTE format('ALTER TABLE "{schema}".%I DROP CONSTRAINT IF EXISTS %I', 'embedding_c' || c || '_v1',
                       'embedding_c' || c || '_pkey');
        EXECUTE format('CREATE TABLE "{schema}".%I PARTITION OF "{schema}".embedding FOR VALUES IN (%s) '
                       'PARTITION BY LIST (version)', 'embedding_c' || c, c);
        EXECUTE format('ALTER TABLE "{schema}".%I OWNER TO %s', 'embedding_c' || c, parent.owner);
        FOR grant_ IN
            SELECT a.grantee::regrole AS grantee, a.privilege_type
            FROM aclexplode(parent.relacl) a
            WHERE a.grantee <> 0 AND a.grantee <> parent.owner::oid
        LOOP
            EXECUTE format('GRANT %s ON "{schema}".%I TO %s', grant_.privilege_type, 'embedding_c' || c,
                           grant_.grantee);
        END LOOP;
        EXECUTE format('ALTER TABLE "{schema}".%I ATTACH PARTITION "{schema}".%I FOR VALUES IN (1)',
                       'embedding_c' || c, 'embedding_c' || c || '_v1');
    END LOOP;
END
$$
"""

# Back to a partition per collection: each collection's active version becomes its partition; other versions are
# dropped with their vectors (a database at 0008 has room for one set).
_FLATTEN = """
DO $$
DECLARE
    c record;
    v integer;
    item text;
BEGIN
    FOR c IN SELECT id, active_version FROM "{schema}".collection ORDER BY id LOOP
        FOR v IN SELECT number FROM "{schema}".embedding_version WHERE collection_id = c.id AND number <> c.active_version
        LOOP
            EXECUTE format('DROP TABLE IF EXISTS "{schema}".%I', 'embedding_c' || c.id || '_v' || v);
        END LOOP;
        EXECUTE format('ALTER TABLE "{schema}".%I DETACH PARTITION "{schema}".%I', 'embedding_c' || c.id,
                       'embedding_c' || c.id || '_v' || c.active_version);
        EXECUTE format('DROP TABLE "{schema}".%I', 'embedding_c' || c.id);
        EXECUTE format('ALTER TABLE "{schema}".%I RENAME TO %I', 'embedding_c' || c.id || '_v' || c.active_version,
                       'embedding_c' || c.id);
        FOREACH item IN ARRAY ARRAY['_model', '_dimensions'] LOOP
            IF EXISTS (SELECT FROM pg_constraint
                       WHERE conrelid = format('"{schema}".%I', 'embedding_c' || c.id)::regclass
                         AND conname = 'embedding_c' || c.id || '_v' || c.active_version || item) THEN
                EXECUTE format('ALTER TABLE "{schema}".%I RENAME CONSTRAINT %I TO %I', 'embedding_c' || c.id,
                               'embedding_c' || c.id || '_v' || c.active_version || item, 'embedding_c' || c.id || item);
            END IF;
        END LOOP;
        EXECUTE format('ALTER INDEX IF EXISTS "{schema}".%I RENAME TO %I',
                       'embedding_c' || c.id || '_v' || c.active_version || '_hnsw', 'embedding_c' || c.id || '_hnsw');
        EXECUTE format('ALTER TABLE "{schema}".%I DROP CONSTRAINT IF EXISTS %I', 'embedding_c' || c.id,
                       'embedding_c' || c.id || '_v' || c.active_version || '_pkey');
        EXECUTE format('ALTER TABLE "{schema}".%I DROP COLUMN version', 'embedding_c' || c.id);
    END LOOP;
    ALTER TABLE "{schema}".embedding DROP CONSTRAINT pk_embedding;
    ALTER TABLE "{schema}".embedding DROP COLUMN version;
    ALTER TABLE "{schema}".embedding ADD CONSTRAINT pk_embedding PRIMARY KEY (collection_id, chunk_id, model);
    FOR c IN SELECT id FROM "{schema}".collection ORDER BY id LOOP
        EXECUTE format('ALTER TABLE "{schema}".embedding ATTACH PARTITION "{schema}".%I FOR VALUES IN (%s)',
                       'embedding_c' || c.id, c.id);
    END LOOP;
END
$$
"""


def downgrade() -> None:
    s = schema()
    op.execute(_FLATTEN.replace("{schema}", s))
    op.drop_constraint(op.f("fk_collection_id_active_version_embedding_version"), "collection", schema=s)
    op.drop_column("collection", "active_version", schema=s)
    op.drop_constraint(op.f("fk_collection_feedback_dataset_id_dataset"), "collection", schema=s)
    op.drop_column("collection", "feedback_dataset_id", schema=s)
    op.drop_table("embedding_adapter", schema=s)
    op.drop_table("embedding_version", schema=s)
