"""Memora moved on to its revision 0008 (BM25 postings); the host has nothing of its own to add.

Revision ID: h005
Revises: h004
"""

from alembic import op

import memora_migrations

revision = "h005"
down_revision = "h004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    memora_migrations.upgrade(op.get_bind(), "0008")


def downgrade() -> None:
    memora_migrations.downgrade(op.get_bind(), "0007")
