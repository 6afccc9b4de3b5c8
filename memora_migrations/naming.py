"""The names of Memora's constraints and indexes: one MetaData(naming_convention=...) for the models and for the
revisions, so autogenerate writes stable names and a revision's op.create_check_constraint("format", "example", ...)
makes ck_example_format."""

from __future__ import annotations

from sqlalchemy import MetaData

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def revision_metadata() -> MetaData:
    """What env.py hands Alembic as target_metadata when there are no models to compare: Alembic's operations take
    the naming convention from it."""
    return MetaData(naming_convention=NAMING_CONVENTION)
