"""Memora moved on to its revision 0010 (the console's tables); the host has nothing of its own to add.

Revision ID: h007
Revises: h006
"""

from alembic import op

import memora_migrations

revision = "h007"
down_revision = "h006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    memora_migrations.upgrade(op.get_bind(), "0010")


def downgrade() -> None:
    memora_migrations.downgrade(op.get_bind(), "0009")
