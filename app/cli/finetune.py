"""`memora finetune start | status | list`: fine-tuning jobs on an OpenAI-compatible service, with their lineage
(routes: finetune.py)."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.options import json_flag, option, session, settings
from app.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:  # the openai client takes ~0.5 s to import: only the commands that talk to a service load it
    from app.db.models import FinetuneJob
    from app.training.finetune import client

JsonOption = Annotated[bool, json_flag("FINETUNE_JSON")]

cli = typer.Typer(help="Fine-tuning jobs on an OpenAI-compatible service.", no_args_is_help=True)


@contextmanager
def _refusals() -> Iterator[None]:
    """Input Memora refuses (unknown names, unusable snapshots, no API key) exits with 2; service failures with 1."""
    try:
        yield
    except (NotFoundError, InvalidInputError) as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None


@cli.command("start")
def start(
    ctx: typer.Context,
    dataset: Annotated[str, option("FINETUNE_DATASET", "Dataset name.", "--dataset", "-d")],
    snapshot: Annotated[str, option("FINETUNE_SNAPSHOT", "Snapshot to train on.", "--snapshot", "-s")],
    model: Annotated[str, option("FINETUNE_MODEL", "Base model to fine-tune.", "--model", "-m")],
    suffix: Annotated[
        str | None, option("FINETUNE_SUFFIX", "Added to the fine-tuned model's name.", "--suffix")
    ] = None,
    base_url: Annotated[
        str | None,
        option("OPENAI_BASE_URL", "OpenAI-compatible API base URL; unset: api.openai.com.", "--base-url"),
    ] = None,
    epochs: Annotated[
        int | None, option("FINETUNE_EPOCHS", "Training epochs; unset: the service chooses.", "--epochs")
    ] = None,
    validation: Annotated[
        bool,
        option("FINETUNE_VALIDATION", "Upload the validation split as the validation file (when it has examples).",
               "--validation/--no-validation"),
    ] = True,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Upload a snapshot's chat export, start a fine-tuning job and record which snapshot trains which model."""
    from app.training.finetune import client, schemas
    from app.training.finetune import service as finetune

    config = settings(ctx)
    spool = tempfile.TemporaryDirectory(prefix="memora-finetune-")
    with _refusals(), session(ctx, expire_on_commit=False) as db, spool as directory:
        service = client.Service(config, base_url)
        job = finetune.start(
            db, config, service, Path(directory), dataset_name=dataset, snapshot_name=snapshot, model=model,
            suffix=suffix, epochs=epochs, validation=validation,
        )  # fmt: skip
    if as_json:
        typer.echo(schemas.FinetuneJobOut.of(job).model_dump_json())
        return
    files = job.training_file_id + (f" + validation {job.validation_file_id}" if job.validation_file_id else "")
    typer.echo(f"started {job.provider_job_id} at {job.base_url}: {model} on {dataset}/{snapshot} ({files})")
    typer.echo(f"status: {job.status}; follow it with: memora finetune status {job.provider_job_id} --wait")


@cli.command("status")
def status(
    ctx: typer.Context,
    jobs: Annotated[
        list[str] | None,
        typer.Argument(help="Memora job ids or the service's job ids; none: every job not finished yet."),
    ] = None,
    wait: Annotated[
        bool, option("FINETUNE_WAIT", "Poll until every job has succeeded, failed or stopped.", "--wait")
    ] = False,
    interval: Annotated[
        float, option("FINETUNE_POLL_SECONDS", "Seconds between polls with --wait.", "--interval")
    ] = 30.0,
    as_json: JsonOption = False,
) -> None:
    """Ask the service how jobs are doing and record it (exit 1: a service could not be asked, or a job failed)."""
    from app.training.finetune import client, repository
    from app.training.finetune import service as finetune

    config = settings(ctx)
    services: dict[str, client.Service] = {}

    def service_of(url: str) -> client.Service:
        if url not in services:
            services[url] = client.Service(config, url)
        return services[url]

    with _refusals(), session(ctx, expire_on_commit=False) as db:
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


@cli.command("list")
def list_jobs(
    ctx: typer.Context,
    dataset: Annotated[str | None, option("FINETUNE_DATASET", "Only this dataset.", "--dataset", "-d")] = None,
    as_json: JsonOption = False,
) -> None:
    """The recorded jobs (no network): which snapshot of which dataset trained which model, and how it went."""
    from app.training.finetune import repository

    with session(ctx, expire_on_commit=False) as db:
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
