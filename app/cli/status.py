"""`memora status` (route: GET /v1/status in observe.py): the queue, failures, leases and workers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.options import engine, json_flag, option

if TYPE_CHECKING:
    from app.observe.schemas import Status

cli = typer.Typer()


@cli.command("status")
def status(
    ctx: typer.Context,
    errors: Annotated[int, option("STATUS_ERRORS", "How many of the most recent errors to list.", "--errors",
                                  min=0, max=100)] = 10,
    as_json: Annotated[bool, json_flag("STATUS_JSON")] = False,
) -> None:  # fmt: skip
    """The ingestion queue per collection, failures and their last errors, leases and workers; exit 1 if the database
    does not answer."""
    from app.observe import status as service

    with engine(ctx) as made:
        summary = service.read(made, errors)
    if as_json:
        typer.echo(summary.model_dump_json(indent=2))
    else:
        _print(summary)
    if summary.status != "ok":
        raise typer.Exit(1)


def _print(summary: Status) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text  # names and errors are data: never read as markup

    console = Console()
    if not summary.database.reachable:
        console.print(f"database: unreachable ({summary.database.error})", markup=False)
        return
    queue_total, failures, leases, workers = summary.queue, summary.failures, summary.leases, summary.workers
    assert queue_total is not None, "a reachable database gives every part"
    assert failures is not None
    assert leases is not None
    assert workers is not None
    queue = Table("collection", title="Queue")
    for column in ("pending", "processing", "ready", "failed", "oldest pending"):
        queue.add_column(column, justify="right")
    for row in [*summary.collections, queue_total]:
        name = getattr(row, "collection", None)
        queue.add_row(
            Text(name) if name is not None else Text("all", style="bold"),
            *(str(getattr(row, status)) for status in ("pending", "processing", "ready", "failed")),
            _age(row.oldest_pending_seconds),
        )
    console.print(queue)
    console.print(
        f"leases: {leases.held} held, {leases.expired} expired; "
        f"workers: {workers.connected} connected, {len(workers.holding)} holding documents"
    )
    for worker in workers.holding:
        console.print(f"  {worker.name}: {worker.documents} documents ({worker.expired} expired)", markup=False)
    console.print(f"failures: {failures.failed} failed, {failures.retrying} awaiting a retry")
    if failures.last:
        errors = Table("document", "collection", "status", "attempts", "at", "error", title="Last errors")
        for error in failures.last:
            errors.add_row(
                Text(f"{error.document_id} ({error.external_id})"), Text(error.collection), error.status,
                str(error.attempts), error.at.isoformat(timespec="seconds"), Text(error.error),
            )  # fmt: skip
        console.print(errors)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
