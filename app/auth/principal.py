"""Who a request acts as: a role, and the collections and datasets it may see (glob patterns).

A request made with an API key acts as that key; a request with no key, where the server is open (loopback, see
docs/security.md), acts as OPEN: an admin that sees everything. Every request the API answers has its principal in
`request.state.principal`, set by the access check before any route runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from fnmatch import fnmatchcase

from starlette.requests import HTTPConnection

EVERYTHING = ("*",)


class Role(IntEnum):
    """What a key may do; each role may do everything the ones below it may."""

    read = 1  # search, answers, list and get, export, batches, eval
    write = 2  # read + documents, examples, imports, splits, dedup, snapshots
    admin = 3  # write + create and delete collections and datasets, keys, settings, fine-tuning jobs


@dataclass(frozen=True)
class Principal:
    """The identity a request acts as. NAME and KEY_ID are None for OPEN (no key, open server)."""

    role: Role
    collections: tuple[str, ...] = EVERYTHING
    datasets: tuple[str, ...] = EVERYTHING
    name: str | None = None
    key_id: int | None = None
    rate_limit: int | None = None  # requests per minute; None: the server's default

    def may(self, role: Role) -> bool:
        return self.role >= role

    def sees_collection(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.collections)

    def sees_dataset(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.datasets)

    @property
    def unrestricted(self) -> bool:
        """True for a principal granted every collection and every dataset (keys and the audit need one)."""
        return "*" in self.collections and "*" in self.datasets


OPEN = Principal(role=Role.admin)
# A request with no key, where keys are required, on a route open to all (/healthz, the docs): it is granted no
# collection and no dataset, and only such routes ever see it (/healthz then shows its status alone).
ANONYMOUS = Principal(role=Role.read, collections=(), datasets=())


def current(connection: HTTPConnection) -> Principal:
    """The principal of a request the access check has passed."""
    principal: Principal = connection.state.principal
    return principal
