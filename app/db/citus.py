"""Memora's layout on a Citus cluster, as data, and the statements that apply it (`memora db distribute`).

Every table that grows with a collection is sharded by collection_id, in one colocation group (a collection's
documents, chunks, postings and statistics sit on one node, so a search is one shard's query); the tables that grow
with a dataset are sharded by dataset_id, in a group of their own; small tables every node reads are reference
tables (a copy on every node); the rest stay on the coordinator. docs/scaling.md ("Citus") says why each one is
where it is and what Citus made change. A table or trigger added later without a place here makes `plan` fail: a
new object needs a decision, not a default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import sql

from app.errors import DatabaseUnavailableError

Kind = Literal["collection", "dataset", "reference", "local"]

TABLES: dict[str, Kind] = {
    # One colocation group, by collection_id: what a collection's writes and searches touch.
    "document": "collection",
    "chunk": "collection",
    "posting": "collection",
    "term_stats": "collection",
    "text_stats": "collection",
    "document_count": "collection",
    "embedding_adapter": "collection",
    "eval_run": "collection",
    # Another, by dataset_id.
    "example": "dataset",
    "snapshot_example": "dataset",
    # A copy on every node: few rows, read by the queries of every shard, written rarely.
    "collection": "reference",
    "dataset": "reference",
    "embedding_version": "reference",
    "snapshot": "reference",
    "finetune_job": "reference",
    # The coordinator only. embedding is partitioned by collection and again by version, and Citus distributes one
    # level of partitions (citusdata/citus#4911); its partitions are made by triggers that run DDL, which only the
    # coordinator may. The rest are the service's own bookkeeping, read by id or key, never joined with the data.
    "embedding": "local",
    "api_key": "local",
    "audit_event": "local",
    "meta": "local",
    "alembic_version": "local",
}

GROUPS: dict[Kind, tuple[str, str]] = {
    "collection": ("collection_id", "document"),
    "dataset": ("dataset_id", "example"),
}
"""A distributed kind's distribution column and the table that anchors its colocation group."""

Where = Literal["shards", "placements", "coordinator", "drop"]

TRIGGERS: dict[str, Where] = {
    # On the shards of distributed tables: each touches its own row, or writes tables colocated with it for the same
    # collection (so the write stays on the node that fired it). Citus allows these with citus.enable_unsafe_triggers.
    "document_before_write": "shards",
    "document_count_insert": "shards",
    "document_count_update": "shards",
    "document_count_delete": "shards",
    "document_count_truncate": "shards",
    "chunk_postings_insert": "shards",
    "chunk_postings_update": "shards",
    "chunk_postings_delete": "shards",
    "chunk_text_stats_insert": "shards",
    "chunk_text_stats_update": "shards",
    "chunk_text_stats_delete": "shards",
    "chunk_versions": "shards",
    "example_before_insert": "shards",
    "example_immutable": "shards",
    "snapshot_example_no_delete": "shards",
    "snapshot_example_no_update": "shards",
    # On every copy of a reference table: they change or check only the row being written.
    "collection_touch_updated_at": "placements",
    "collection_active_version": "placements",
    "dataset_touch_updated_at": "placements",
    "embedding_version_key": "placements",
    # On the coordinator's copy only (WHEN citus_is_coordinator()): they run DDL (partitions, HNSW indexes, search
    # functions) or delete from a distributed table, which must happen once, from the coordinator.
    "collection_storage_insert": "coordinator",
    "collection_storage_update": "coordinator",
    "collection_storage_delete": "coordinator",
    "collection_counts_gone": "coordinator",
    "embedding_version_insert": "coordinator",
    "embedding_version_update": "coordinator",
    "embedding_version_delete": "coordinator",
    "dataset_index_delete": "coordinator",
    # Dropped: a NOTIFY sent on a worker reaches no listener (ingestion workers listen on the coordinator, and poll).
    "document_notify": "drop",
}

FUNCTIONS: dict[str, str | None] = {
    # Delegated to the node that holds the collection's shards: a top-level call runs there, whole.
    "bm25_candidates": "p_collection_id",
    "refresh_text_stats": "p_collection_id",
    "refresh_postings": "p_collection_id",
    "document_counts": "p_collection_id",
    "compact_document_count": "p_collection_id",
    "search_hit_row": "$1",
    # Copied to every node, not delegated: the shards' triggers and the delegated functions call them.
    "touch_updated_at": None,
    "content_hash": None,
    "document_before_write": None,
    "document_count_changes": None,
    "chunk_postings": None,
    "chunk_text_stats": None,
    "apply_text_stats": None,
    "chunk_versions_trigger": None,
    "collection_active_version_trigger": None,
    "embedding_version_key_trigger": None,
    "example_before_insert": None,
    "example_immutable": None,
    "snapshot_frozen": None,
    "example_text": None,
    "text_hash": None,
    "example_hash": None,
    "split_of": None,
    "search_terms": None,
    "lexeme_tsquery": None,
    "search_tsquery": None,
    "compile_filter": None,
    "filter_sql": None,
    "filter_field": None,
    "filter_eq": None,
    "filter_in": None,
    "filter_error": None,
}
"""Functions to create_distributed_function, with their distribution argument (None: copied, not delegated). The
search API (search_text, search_vector, search_hybrid) takes a collection's name, not the id the shards are keyed
by: it runs on the coordinator, and each query it runs filters on collection_id = the id, which routes to one shard."""

GUARD = "citus_is_coordinator()"


class DistributeError(DatabaseUnavailableError):
    """The database cannot take the Citus layout (no Citus, or an object without a place in it)."""


@dataclass(frozen=True)
class Step:
    """One statement of the plan and why it is there."""

    why: str
    statement: str


@dataclass(frozen=True)
class ForeignKey:
    name: str
    table: str
    target: str
    deferrable: bool
    definition: str


def plan(conn: Any, schema: str) -> list[Step]:
    """The statements that put SCHEMA's objects where TABLES, TRIGGERS and FUNCTIONS say, in the order Citus takes
    them, less what is in place already (so a second run plans nothing)."""
    tables = _tables(conn, schema)
    unclassified = sorted(set(tables) - set(TABLES))
    if unclassified:
        raise DistributeError(
            f"tables without a place in the Citus layout (app/db/citus.py TABLES): {', '.join(unclassified)}"
        )
    done = _distributed(conn, schema)
    steps = [
        *_foreign_key_steps(conn, schema),
        *_trigger_steps(conn, schema),
        *_function_steps(conn, schema, before_tables=True),
    ]
    # A deferrable key closes a cycle (collection's active version -> embedding_version -> collection): Citus makes
    # one table at a time a Citus table, and a key may only point at one already, so it goes and comes back after.
    cycles = [
        fk for fk in foreign_keys(conn, schema) if fk.deferrable and allowed(fk) and not {fk.table, fk.target} <= done
    ]
    for fk in cycles:
        steps.append(
            Step(f"{fk.name} closes a cycle: set aside while its tables become Citus tables", _drop(conn, schema, fk))
        )
    for name in _order(conn, schema, [t for t in tables if TABLES[t] == "reference"]):
        if name not in done:
            statement = sql.SQL("SELECT create_reference_table({})").format(sql.Literal(f"{schema}.{name}"))
            steps.append(Step("a copy on every node", statement.as_string(conn)))
    for kind, (column, anchor) in GROUPS.items():
        members = _order(conn, schema, [t for t in tables if TABLES[t] == kind])
        for name in [anchor, *(m for m in members if m != anchor)]:
            if name in done:
                continue
            colocate = "none" if name == anchor else f"{schema}.{anchor}"
            statement = sql.SQL("SELECT create_distributed_table({}, {}, colocate_with := {})").format(
                sql.Literal(f"{schema}.{name}"), sql.Literal(column), sql.Literal(colocate)
            )
            why = f"sharded by {column}" + ("" if name == anchor else f", colocated with {anchor}")
            steps.append(Step(why, statement.as_string(conn)))
    for fk in cycles:
        statement = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            sql.Identifier(schema, fk.table), sql.Identifier(fk.name), sql.SQL(fk.definition)
        )
        steps.append(Step(f"{fk.name} back", statement.as_string(conn)))
    steps.extend(_function_steps(conn, schema, before_tables=False))
    return [*_prelude(conn), *steps] if steps else []


def _prelude(conn: Any) -> list[Step]:
    """citus.enable_unsafe_triggers: Citus refuses user triggers on its tables without it (those TRIGGERS keeps)."""
    database = sql.Identifier(conn.execute("SELECT current_database()").fetchone()[0])
    return [
        Step("the triggers Memora keeps on Citus tables, in this session", "SET citus.enable_unsafe_triggers TO on"),
        Step(
            "and in later ones (an upgrade re-creates triggers)",
            sql.SQL("ALTER DATABASE {} SET citus.enable_unsafe_triggers TO on").format(database).as_string(conn),
        ),
    ]


def apply(conn: Any, schema: str) -> list[Step]:
    """Run the plan on a Citus coordinator (CONN in autocommit: Citus creates shards outside a transaction block);
    return the steps run."""
    row = conn.execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'citus'").fetchone()
    if row is None:
        raise DistributeError(
            "memora db distribute needs a Citus coordinator: the citus extension is not installed in this database "
            "(CREATE EXTENSION citus on the coordinator and every worker, then SELECT citus_add_node(host, port) "
            "for each worker; or `memora db distribute --dry-run` to see the plan)"
        )
    if not conn.execute("SELECT citus_is_coordinator()").fetchone()[0]:
        raise DistributeError(
            "memora db distribute needs a Citus coordinator: this server is a worker, or the coordinator is not in "
            "the cluster's metadata (SELECT citus_set_coordinator_host(host, port) on it)"
        )
    if not conn.execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_node WHERE groupid = 0)").fetchone()[0]:
        raise DistributeError(
            "memora db distribute needs the coordinator in the cluster's metadata, so that reference tables have a "
            "copy on it, where their DDL triggers run: SELECT citus_set_coordinator_host(host, port) on it first"
        )
    steps = plan(conn, schema)
    for step in steps:
        conn.execute(step.statement)
    return steps


def _tables(conn: Any, schema: str) -> list[str]:
    """SCHEMA's tables, less partitions (they go with their parent)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_catalog.pg_class c WHERE c.relnamespace = %s::regnamespace "
        "AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1",
        (schema,),
    ).fetchall()
    return [r[0] for r in rows]


def _distributed(conn: Any, schema: str) -> set[str]:
    """SCHEMA's tables Citus knows already (none without Citus)."""
    if not conn.execute("SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL").fetchone()[0]:
        return set()
    rows = conn.execute(
        "SELECT c.relname FROM pg_catalog.pg_dist_partition p JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid "
        "WHERE c.relnamespace = %s::regnamespace",
        (schema,),
    ).fetchall()
    return {r[0] for r in rows}


def foreign_keys(conn: Any, schema: str) -> list[ForeignKey]:
    """SCHEMA's foreign keys between its tables (on partitioned tables, the parent's only)."""
    rows = conn.execute(
        "SELECT k.conname, t.relname, r.relname, k.condeferrable, pg_catalog.pg_get_constraintdef(k.oid) "
        "FROM pg_catalog.pg_constraint k "
        "JOIN pg_catalog.pg_class t ON t.oid = k.conrelid JOIN pg_catalog.pg_class r ON r.oid = k.confrelid "
        "WHERE k.contype = 'f' AND k.connamespace = %s::regnamespace AND k.conparentid = 0 "
        "AND NOT t.relispartition ORDER BY 1",
        (schema,),
    ).fetchall()
    return [ForeignKey(*r) for r in rows]


def allowed(fk: ForeignKey) -> bool:
    """Whether Citus keeps FK: between two tables of one colocation group (its columns include the distribution
    column, checked by the tests), from a distributed or reference table to a reference table, or between two
    tables that stay on the coordinator."""
    source, target = TABLES.get(fk.table), TABLES.get(fk.target)
    if source in GROUPS:
        return target == source or target == "reference"
    return source == target and source in ("reference", "local")


def _foreign_key_steps(conn: Any, schema: str) -> list[Step]:
    steps = []
    for fk in foreign_keys(conn, schema):
        if not allowed(fk):
            why = (
                f"Citus refuses a foreign key from {fk.table} ({TABLES.get(fk.table)}) to {fk.target} "
                f"({TABLES.get(fk.target)}): neither colocated nor to a reference table"
            )
            steps.append(Step(why, _drop(conn, schema, fk)))
    return steps


def _drop(conn: Any, schema: str, fk: ForeignKey) -> str:
    return (
        sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}")
        .format(sql.Identifier(schema, fk.table), sql.Identifier(fk.name))
        .as_string(conn)
    )


def _trigger_steps(conn: Any, schema: str) -> list[Step]:
    rows = conn.execute(
        "SELECT g.tgname, c.relname, pg_catalog.pg_get_triggerdef(g.oid) FROM pg_catalog.pg_trigger g "
        "JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid WHERE c.relnamespace = %s::regnamespace "
        "AND NOT g.tgisinternal AND g.tgparentid = 0 AND NOT c.relispartition ORDER BY 2, 1",
        (schema,),
    ).fetchall()
    steps = []
    for name, table, definition in rows:
        if TABLES.get(table) == "local":
            continue  # the coordinator's own tables keep their triggers as they are
        where = TRIGGERS.get(name)
        if where is None:
            raise DistributeError(
                f"trigger {name} on {schema}.{table} has no place in the Citus layout (app/db/citus.py TRIGGERS)"
            )
        if where == "drop":
            statement = sql.SQL("DROP TRIGGER {} ON {}").format(sql.Identifier(name), sql.Identifier(schema, table))
            steps.append(Step("a NOTIFY from a worker reaches no listener", statement.as_string(conn)))
        elif where == "coordinator" and GUARD not in definition:
            steps.append(Step("runs DDL or writes shards: on the coordinator's copy only", guarded(definition)))
    return steps


def guarded(definition: str) -> str:
    """A CREATE TRIGGER statement (pg_get_triggerdef's) made to fire only on the coordinator: a reference table's
    triggers fire on each node's copy, and only the coordinator may run DDL on Citus tables."""
    statement = definition.replace("CREATE TRIGGER", "CREATE OR REPLACE TRIGGER", 1)
    if " WHEN (" in statement:
        return statement.replace(" WHEN (", f" WHEN ({GUARD} AND ", 1)
    return re.sub(r" EXECUTE (FUNCTION|PROCEDURE) ", rf" WHEN ({GUARD}) EXECUTE \1 ", statement, count=1)


def _order(conn: Any, schema: str, names: list[str]) -> list[str]:
    """NAMES with every table after the tables it has foreign keys to (Citus distributes a referenced table
    first), ties by name."""
    edges = {
        (fk.table, fk.target)
        for fk in foreign_keys(conn, schema)
        if allowed(fk) and not fk.deferrable and fk.table != fk.target
    }
    ordered: list[str] = []
    pending = sorted(names)
    while pending:
        ready = [n for n in pending if not any(s == n and t in pending for s, t in edges)]
        if not ready:
            raise DistributeError(f"foreign keys in a cycle among {', '.join(pending)}")
        ordered.extend(ready)
        pending = [n for n in pending if n not in ready]
    return ordered


def _function_steps(conn: Any, schema: str, *, before_tables: bool) -> list[Step]:
    """The create_distributed_function calls: before the tables, the copies their triggers call (the shards get
    the triggers when their table is distributed); after them, the delegated functions (colocated with document)
    and those whose arguments are a table's row type (Citus copies a function after what it depends on)."""
    rows = conn.execute(
        "SELECT p.proname, p.oid::regprocedure::text, p.proargnames FROM pg_catalog.pg_proc p "
        "WHERE p.pronamespace = %s::regnamespace AND p.proname = ANY(%s) ORDER BY 1, 2",
        (schema, list(FUNCTIONS)),
    ).fetchall()
    done = _distributed_functions(conn)
    steps = []
    for name, signature, arg_names in rows:
        argument = FUNCTIONS[name]
        early = argument is None and f"{schema}." not in signature.partition("(")[2]
        if signature in done or early != before_tables:
            continue
        if argument is None:
            statement = sql.SQL("SELECT create_distributed_function({})").format(sql.Literal(signature))
            steps.append(Step("on every node, for the shards' triggers and queries", statement.as_string(conn)))
        elif argument.startswith("$") or argument in (arg_names or []):
            statement = sql.SQL(
                "SELECT create_distributed_function({}, distribution_arg_name := {}, colocate_with := {})"
            ).format(sql.Literal(signature), sql.Literal(argument), sql.Literal(f"{schema}.document"))
            steps.append(Step("a call runs on the node of its collection's shard", statement.as_string(conn)))
    return steps


def _distributed_functions(conn: Any) -> set[str]:
    """The functions Citus has distributed already."""
    if not conn.execute("SELECT to_regclass('pg_catalog.pg_dist_object') IS NOT NULL").fetchone()[0]:
        return set()
    rows = conn.execute(
        "SELECT objid::regprocedure::text FROM pg_catalog.pg_dist_object WHERE classid = 'pg_proc'::regclass"
    ).fetchall()
    return {r[0] for r in rows}
