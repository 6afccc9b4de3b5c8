"""`memora finetune start|status|list`: fine-tuning jobs on an OpenAI-compatible service, with their lineage."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import FinetuneJob
from app.errors import InvalidInputError, NotFoundError
from app.training.cli import finetune_cli

if TYPE_CHECKING:  # the openai client takes ~0.5 s to import: only the commands that talk to a service load it
    from app.training.finetune import client


def _option(*flags: str, env: str, help: str) -> Any:
    return typer.Option(*flags, envvar=f"MEMORA_{env}", show_envvar=True, show_default=True, help=help)


JsonOption = Annotated[bool, _option("--json", env="FINETUNE_JSON", help="Print JSON instead of a table.")]


@contextmanager
def _refusals() -> Iterator[None]:
    """Input Memora refuses (unknown names, unusable snapshots, no API key) exits with 2; service failures with 1."""
    try:
        yield
    except (NotFoundError, InvalidInputError) as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None


def _session(ctx: typer.Context) -> Session:
    from app.db.engine import make_engine

    settings: Settings = ctx.obj
    return Session(make_engine(settings, "cli"), expire_on_commit=False)


@finetune_cli.command("start")
def start(
    ctx: typer.Context,
    dataset: Annotated[str, _option("--dataset", "-d", env="FINETUNE_DATASET", help="Dataset name.")],
    snapshot: Annotated[str, _option("--snapshot", "-s", env="FINETUNE_SNAPSHOT", help="Snapshot to train on.")],
    model: Annotated[str, _option("--model", "-m", env="FINETUNE_MODEL", help="Base model to fine-tune.")],
    suffix: Annotated[
        str | None, _option("--suffix", env="FINETUNE_SUFFIX", help="Added to the fine-tuned model's name.")
    ] = None,
    base_url: Annotated[
        str | None,
        _option("--base-url", env="OPENAI_BASE_URL", help="OpenAI-compatible API base URL; unset: api.openai.com."),
    ] = None,
    epochs: Annotated[
        int | None, _option("--epochs", env="FINETUNE_EPOCHS", help="Training epochs; unset: the service chooses.")
    ] = None,
    validation: Annotated[
        bool,
        _option("--validation/--no-validation", env="FINETUNE_VALIDATION",
                help="Upload the validation split as the validation file (when it has examples)."),
    ] = True,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Upload a snapshot's chat export, start a fine-tuning job and record which snapshot trains which model."""
    from app.training.finetune import client, schemas
    from app.training.finetune import service as finetune

    settings: Settings = ctx.obj
    with _refusals(), _session(ctx) as db, tempfile.TemporaryDirectory(prefix="memora-finetune-") as directory:
        service = client.Service(settings, base_url)
        job = finetune.start(
            db, settings, service, Path(directory), dataset_name=dataset, snapshot_name=snapshot, model=model,
            suffix=suffix, epochs=epochs, validation=validation,
        )  # fmt: skip
    if as_json:
        typer.echo(schemas.FinetuneJobOut.of(job).model_dump_json())
        return
    files = job.training_file_id + (f" + validation {job.validation_file_id}" if job.validation_file_id else "")
    typer.echo(f"started {job.provider_job_id} at {job.base_url}: {model} on {dataset}/{snapshot} ({files})")
    typer.echo(f"status: {job.status}; follow it with: memora finetune status {job.provider_job_id} --wait")


@finetune_cli.command("status")
def status(
    ctx: typer.Context,
    jobs: Annotated[
        list[str] | None,
        typer.Argument(help="Memora job ids or the service's job ids; none: every job not finished yet."),
    ] = None,
    wait: Annotated[
        bool, _option("--wait", env="FINETUNE_WAIT", help="Poll until every job has succeeded, failed or stopped.")
    ] = False,
    interval: Annotated[
        float, _option("--interval", env="FINETUNE_POLL_SECONDS", help="Seconds between polls with --wait.")
    ] = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Ask the service how jobs are doing and record it (exit 1: a service could not be asked, or a job failed)."""
    from app.training.finetune import client, repository
    from app.training.finetune import service as finetune

    settings: Settings = ctx.obj
    services: dict[str, client.Service] = {}

    def service_of(url: str) -> client.Service:
        if url not in services:
            services[url] = client.Service(settings, url)
        return services[url]

    with _refusals(), _session(ctx) as db:
        found = repository.find_jobs(db, jobs or (), pending=not jobs)
        while True:
            problems = finetune.poll(db, [job for job in found if job.status not in repository.TERMINAL], service_of)
            if not wait or problems or all(job.status in repository.TERMINAL for job in found):
                break
            time.sleep(interval)
    _show(found, as_json, "no unfinished fine-tuning jobs (`memora finetune list` shows every job)")
    for job, problem in problems:
        typer.echo(f"error: job {job.provider_job_id}: {problem}", err=True)
    if problems or (wait and any(job.status in ("failed", "cancelled") for job in found)):
        raise typer.Exit(1)


@finetune_cli.command("list")
def list_jobs(
    ctx: typer.Context,
    dataset: Annotated[
        str | None, _option("--dataset", "-d", env="FINETUNE_DATASET", help="Only this dataset.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The recorded jobs (no network): which snapshot of which dataset trained which model, and how it went."""
    from app.training.finetune import repository

    with _session(ctx) as db:
        _show(repository.find_jobs(db, dataset=dataset), as_json)


def _show(jobs: Sequence[FinetuneJob], as_json: bool, empty: str = "no fine-tuning jobs") -> None:
    from app.training.finetune import schemas

    if as_json:
        typer.echo(json.dumps([schemas.FinetuneJobOut.of(job).model_dump(mode="json") for job in jobs]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "dataset", "snapshot", "model", "status", "fine-tuned model", "tokens", "service job")
    for job in jobs:
        status = job.status if job.error is None else f"{job.status}: {job.error}"
        tokens = "" if job.trained_tokens is None else f"{job.trained_tokens:,}"
        table.add_row(str(job.id), job.dataset_name, job.snapshot_name, job.model, status,
                      job.fine_tuned_model or "", tokens, job.provider_job_id)  # fmt: skip
    Console(soft_wrap=False).print(table if jobs else empty)
