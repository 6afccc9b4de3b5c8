"""Memora moved on to its revision 0011 (documents by status without counting them); the host has nothing of its own
to add.

Revision ID: h008
Revises: h007
"""

from alembic import op

import memora_migrations

revision = "h008"
down_revision = "h007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    memora_migrations.upgrade(op.get_bind(), "0011")


def downgrade() -> None:
    memora_migrations.downgrade(op.get_bind(), "0010")
