"""`memora audit`: the trail of writes and deletes, newest first, read from the database (routes: audit.py)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.options import json_flag, option, session

if TYPE_CHECKING:
    from app.audit.schemas import AuditEventOut

cli = typer.Typer(help="The audit trail of writes and deletes.")


@cli.command("audit")
def audit(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        option("AUDIT_SINCE", "Only events from this time on: 30m, 12h, 1d, 2w back, or ISO 8601.", "--since"),
    ] = None,
    key: Annotated[str | None, option("AUDIT_KEY", "Only events of the key with this name.", "--key")] = None,
    collection: Annotated[
        str | None, option("AUDIT_COLLECTION", "Only events on this collection.", "--collection")
    ] = None,
    dataset: Annotated[str | None, option("AUDIT_DATASET", "Only events on this dataset.", "--dataset")] = None,
    limit: Annotated[int, option("AUDIT_LIMIT", "Most events shown.", "--limit", min=1)] = 50,
    as_json: Annotated[bool, json_flag("AUDIT_JSON")] = False,
) -> None:  # fmt: skip
    """Show the newest writes and deletes: when, which key, what, on which collection or dataset, and the status."""
    from app.audit import repository, service
    from app.audit.schemas import AuditEventOut

    filters = repository.Filters(
        key=key,
        collection=collection,
        dataset=dataset,
        since=service.parse_since(since, "--since") if since is not None else None,
    )
    with session(ctx) as db:
        events = [AuditEventOut.model_validate(row) for row in repository.page(db, filters, limit=limit)]
    if as_json:
        typer.echo(json.dumps([event.model_dump(mode="json") for event in events]))
        return
    _table(events)


def _table(events: list[AuditEventOut]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("at", "key", "method", "path", "collection", "dataset", "status", box=None, pad_edge=False)
    for event in events:
        table.add_row(
            event.at.strftime("%Y-%m-%d %H:%M:%S%z"),
            event.key_name or "(no key)",
            event.method,
            event.path,
            event.collection or "",
            event.dataset or "",
            str(event.status),
        )
    Console(width=None if sys.stdout.isatty() else 200).print(table)
