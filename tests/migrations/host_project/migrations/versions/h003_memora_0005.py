"""Memora moved on to its revision 0005 (document.request_id), as a host revision does it.

Revision ID: h003
Revises: h002
"""

from alembic import op

import memora_migrations

revision = "h003"
down_revision = "h002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    memora_migrations.upgrade(op.get_bind(), "0005")


def downgrade() -> None:
    memora_migrations.downgrade(op.get_bind(), "0004")
