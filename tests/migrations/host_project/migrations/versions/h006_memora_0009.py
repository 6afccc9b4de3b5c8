"""Memora moved on to its revision 0009 (embedding versions); the host has nothing of its own to add.

Revision ID: h006
Revises: h005
"""

from alembic import op

import memora_migrations

revision = "h006"
down_revision = "h005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    memora_migrations.upgrade(op.get_bind(), "0009")


def downgrade() -> None:
    memora_migrations.downgrade(op.get_bind(), "0008")
