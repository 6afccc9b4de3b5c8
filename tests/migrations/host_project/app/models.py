"""The host's models: its customers, and which of Memora's collections each may search."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customer"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)


# Memora's table, declared to join with; Memora's migrations make it (memora_migrations.include_object keeps the
# host's autogenerate off it).
memora_collection = Table(
    "collection",
    Base.metadata,
    Column("id", BigInteger, primary_key=True),
    Column("name", Text, nullable=False),
    schema="memora",
)


class CustomerCollection(Base):
    __tablename__ = "customer_collection"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("memora.collection.id", ondelete="CASCADE"), primary_key=True
    )


class CustomerNote(Base):
    __tablename__ = "customer_note"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
