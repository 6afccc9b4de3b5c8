"""Memora moved on to its revision 0012 (the distribution column in every key of a growing table); the host has
nothing of its own to add.

Revision ID: h009
Revises: h008
"""

from alembic import op

import memora_migrations

revision = "h009"
down_revision = "h008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    memora_migrations.upgrade(op.get_bind(), "0012")


def downgrade() -> None:
    memora_migrations.downgrade(op.get_bind(), "0011")
