"""Request and response bodies of /v1/keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.db.models import ApiKey

# A grant is a collection or dataset name, or a glob pattern over names: a name's characters and * ? [ ] !.
Grant = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.*?!\[\]-]{1,128}$", examples=["handbook", "team-a-*"])]
Grants = Annotated[list[Grant], Field(min_length=1, max_length=100)]
KEY_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$"  # the table's name_format constraint


class KeyCreate(BaseModel):
    """A new key: its name, its role, and the collections and datasets it is granted (default: all)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "ci", "role": "read", "collections": ["docs-*"], "expires": "90d"}]},
    )

    name: str = Field(pattern=KEY_NAME, description="Letters, digits, '_', '.', '@', '-'; at most 128 characters.")
    role: Literal["read", "write", "admin"]
    collections: Grants = Field(default_factory=lambda: ["*"], description="Names or glob patterns; default all.")
    datasets: Grants = Field(default_factory=lambda: ["*"], description="Names or glob patterns; default all.")
    expires: str | None = Field(
        default=None, max_length=20, description='How long the key lives: "90d", "12h", "30m", "2w"; unset: forever.'
    )
    rate_limit: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Requests per minute; unset: MEMORA_RATE_LIMIT_PER_MINUTE."
    )


class KeyOut(BaseModel):
    """A key as lists show it: never its secret or its hash, only its first characters (prefix)."""

    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart; never enough to use it.")
    role: Literal["read", "write", "admin"]
    collections: list[str]
    datasets: list[str]
    rate_limit: int | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Kept to the minute.")
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKey) -> KeyOut:
        return cls(
            name=row.name, prefix=row.prefix, role=row.role, collections=row.collections,
            datasets=row.datasets, rate_limit=row.rate_limit, created_at=row.created_at, expires_at=row.expires_at,
            last_used_at=row.last_used_at, revoked_at=row.revoked_at,
        )  # fmt: skip


class KeyCreated(KeyOut):
    """A key just made, with its secret: shown this once, stored nowhere."""

    key: str = Field(description="The key itself: send it as 'Authorization: Bearer <key>'. Shown only now.")
