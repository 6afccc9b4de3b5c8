"""Login roles for the people who use Memora's schema from SQL, members of the group roles of migration 0007.

`memora db role create alice --reader` makes a LOGIN role in the `<base>_reader` group; the names of the groups are
read from meta, where the migration wrote them. Passwords reach the server as SCRAM-SHA-256 verifiers (what psql's
\\password sends), never as text a statement log could keep. psycopg is imported by the callers' connections;
this module imports nothing heavy at the top (`memora --help` imports the CLI modules).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from app.errors import ConflictError, DatabaseUnavailableError, InvalidInputError, NotFoundError

if TYPE_CHECKING:
    import psycopg

Kind = Literal["reader", "writer"]
KINDS: tuple[Kind, ...] = ("reader", "writer")
# A plain lower-case identifier, as psql users type it unquoted; pg_ names are PostgreSQL's own.
_NAME = re.compile(r"^(?!pg_)[a-z_][a-z0-9_]{0,62}$")
_SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)


@dataclass(frozen=True)
class GroupRoles:
    owner: str
    writer: str
    reader: str

    def of(self, kind: Kind) -> str:
        return self.writer if kind == "writer" else self.reader


@dataclass(frozen=True)
class Login:
    name: str
    kind: Kind
    valid_until: str | None


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for PASSWORD (RFC 5802, RFC 7677), e.g. for CREATE ROLE."""
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _SCRAM_ITERATIONS)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${_SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def group_roles(conn: psycopg.Connection, schema: str) -> GroupRoles | None:
    """The group roles SCHEMA's migration 0007 recorded, or None (not migrated that far, or no CREATEROLE then)."""
    from psycopg import sql

    if conn.execute("SELECT to_regclass(%s)", (f'"{schema}".meta',)).fetchone() == (None,):
        return None
    rows = conn.execute(
        sql.SQL(
            "SELECT key, value FROM {}.meta WHERE key IN ('sql_role_owner', 'sql_role_writer', 'sql_role_reader')"
        ).format(sql.Identifier(schema))
    ).fetchall()
    names = {key.removeprefix("sql_role_"): value for key, value in rows}
    if len(names) != 3:
        return None
    return GroupRoles(owner=names["owner"], writer=names["writer"], reader=names["reader"])


def required_group_roles(conn: psycopg.Connection, schema: str) -> GroupRoles:
    roles = group_roles(conn, schema)
    if roles is None:
        raise DatabaseUnavailableError(
            f"schema {schema} has no SQL roles: run `memora db upgrade` (migration 0007 makes them) as a role "
            "that may create roles (CREATEROLE); see docs/security.md, PostgreSQL roles"
        )
    return roles


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInputError.for_field(
            "name", "must be a lower-case SQL identifier (letters, digits, underscore; not starting with pg_)"
        )
    return name


def create_login(conn: psycopg.Connection, schema: str, name: str, kind: Kind, password: str) -> GroupRoles:
    """A LOGIN role NAME, member of SCHEMA's KIND group, with PASSWORD."""
    from psycopg import errors, sql

    check_name(name)
    roles = required_group_roles(conn, schema)
    if not password:
        raise InvalidInputError.for_field("password", "must not be empty")
    statement = sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {} IN ROLE {}").format(
        sql.Identifier(name), sql.Literal(scram_verifier(password)), sql.Identifier(roles.of(kind))
    )
    try:
        conn.execute(statement)
    except errors.DuplicateObject:
        raise ConflictError(f"role {name} exists already; pick another name, or drop it first") from None
    except errors.InsufficientPrivilege as exc:
        raise _no_createrole(conn, exc) from None
    return roles


def logins(conn: psycopg.Connection, schema: str) -> list[Login]:
    """The login roles that are direct members of SCHEMA's reader or writer group."""
    roles = required_group_roles(conn, schema)
    rows = conn.execute(
        "SELECT r.rolname, g.rolname, r.rolvaliduntil::text FROM pg_auth_members m"
        " JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid"
        # Not those who hold ADMIN on the group: the role that ran the migrations (CREATEROLE, PostgreSQL 16+).
        " WHERE g.rolname = ANY(%s) AND r.rolcanlogin AND NOT m.admin_option ORDER BY r.rolname",
        ([roles.reader, roles.writer],),
    ).fetchall()
    return [Login(name, "writer" if group == roles.writer else "reader", until) for name, group, until in rows]


def drop_login(conn: psycopg.Connection, schema: str, name: str) -> None:
    """Drop NAME, if it is a login of SCHEMA's reader or writer group (never any other role)."""
    from psycopg import errors, sql

    if name not in {login.name for login in logins(conn, schema)}:
        raise NotFoundError(f"no login role {name} in the reader or writer group of schema {schema}")
    try:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
    except errors.DependentObjectsStillExist as exc:
        detail = (exc.diag.message_detail or "").replace("\n", "; ")
        raise ConflictError(
            f"role {name} owns objects or holds grants of its own ({detail}): run REASSIGN OWNED BY {name} TO ...; "
            f"DROP OWNED BY {name} in each database it has them in, then drop it again"
        ) from None
    except errors.InsufficientPrivilege as exc:
        raise _no_createrole(conn, exc) from None


def _no_createrole(conn: psycopg.Connection, exc: Exception) -> InvalidInputError:
    import psycopg

    user = conn.execute("SELECT current_user").fetchone()
    reason = exc.diag.message_primary if isinstance(exc, psycopg.Error) else str(exc)
    return InvalidInputError(
        f"{user[0] if user else 'this role'} may not manage roles ({reason}): run this as a role with "
        "CREATEROLE and ADMIN on Memora's group roles (the role that ran the migrations)"
    )


def grant_service(conn: psycopg.Connection, schema: str, name: str) -> GroupRoles:
    """Make the login role NAME the service's: a member of SCHEMA's owner role (app/db/service_role.py says why)."""
    from psycopg import errors, sql

    roles = required_group_roles(conn, schema)
    found = conn.execute("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    if found is None:
        raise NotFoundError(f"no role {name}: create it first (CREATE ROLE {name} LOGIN PASSWORD ...)")
    if found[1]:
        raise InvalidInputError.for_field("service_role", f"{name} is a superuser: give the service a plain login")
    try:
        if conn.execute("SELECT pg_has_role(%s, %s, 'USAGE')", (name, roles.owner)).fetchone() != (True,):
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(roles.owner), sql.Identifier(name)))
    except errors.InsufficientPrivilege as exc:
        raise _no_createrole(conn, exc) from None
    return roles
