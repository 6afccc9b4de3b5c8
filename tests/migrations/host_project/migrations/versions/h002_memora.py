"""Memora's schema, in the host's history, and the host's table that refers to it.

Revision ID: h002
Revises: h001
"""

import sqlalchemy as sa
from alembic import op

import memora_migrations

revision = "h002"
down_revision = "h001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A revision names the revision of Memora's it brings, so it means the same thing whichever Memora is installed;
    # a later host revision moves Memora on.
    memora_migrations.upgrade(op.get_bind(), "0004")
    op.create_table(
        "customer_collection",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["collection_id"], ["memora.collection.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("customer_id", "collection_id"),
    )


def downgrade() -> None:
    op.drop_table("customer_collection")
    memora_migrations.downgrade(op.get_bind(), "base")
