"""Memora moved on to its revision 0007 (SQL roles), and the host adds a table of its own in the same revision.

Memora's migrations create its objects as its owner role (SET LOCAL ROLE); the host's table, made after them in
the same transaction, must still be the host's.

Revision ID: h004
Revises: h003
"""

import sqlalchemy as sa
from alembic import op

import memora_migrations

revision = "h004"
down_revision = "h003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    memora_migrations.upgrade(op.get_bind(), "0007")
    op.create_table("customer_note", sa.Column("id", sa.Integer(), nullable=False), sa.PrimaryKeyConstraint("id"))


def downgrade() -> None:
    op.drop_table("customer_note")
    memora_migrations.downgrade(op.get_bind(), "0005")
