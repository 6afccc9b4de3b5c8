"""`memora serve`, `memora worker` and `memora version`: the processes Memora runs."""

from __future__ import annotations

from typing import Annotated

import typer

from app import __version__
from app.cli.options import DEFAULTS, option, setting, settings

cli = typer.Typer()


@cli.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, setting("host", "--host")] = DEFAULTS["host"],
    port: Annotated[int, setting("port", "--port")] = DEFAULTS["port"],
    migrate_on_start: Annotated[bool, setting("migrate_on_start", "--migrate/--no-migrate")]
    = DEFAULTS["migrate_on_start"],
    worker_in_serve: Annotated[bool, setting("worker_in_serve", "--worker/--no-worker")] = DEFAULTS["worker_in_serve"],
) -> None:  # fmt: skip
    """Serve the REST API (OpenAPI docs at /docs) with an ingestion worker, migrating the database first; the
    embedded PostgreSQL is started again if it stops while the API runs."""
    from app.api.main import create_app
    from app.api.serving import listen, run
    from app.auth.startup import check_serve
    from app.db import migrate
    from app.db.supervisor import supervised

    update = {"host": host, "port": port, "migrate_on_start": migrate_on_start, "worker_in_serve": worker_in_serve}
    config = settings(ctx).model_copy(update=update)
    sockets = listen(host, port)  # a port in use is one line naming --port, before anything starts
    if config.migrate_on_start:
        migrate.upgrade(config)
    check_serve(config)  # no admin key where keys are required: one line saying how to make one
    typer.echo(f"Memora {__version__} on http://{host}:{port} (API docs: http://{host}:{port}/docs)", err=True)
    app = create_app(config, worker=config.worker_in_serve)
    with supervised(config):  # the embedded server, restarted if it crashes while the API runs
        run(app, sockets, config.log_level, json_logs=config.log_format == "json")


@cli.command()
def worker(
    ctx: typer.Context,
    until_empty: Annotated[
        bool, option("WORKER_UNTIL_EMPTY", "Exit when the queue is empty instead of waiting for more work.",
                     "--until-empty")
    ] = False,
    metrics_port: Annotated[int, setting("worker_metrics_port", "--metrics-port")] = DEFAULTS["worker_metrics_port"],
) -> None:  # fmt: skip
    """Chunk and embed queued documents until SIGTERM (which lets the current batch finish)."""
    import signal
    import threading

    from app.db.engine import make_engine
    from app.ingest.worker import Worker
    from app.observe import collector

    config = settings(ctx).model_copy(update={"worker_metrics_port": metrics_port})
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    engine = make_engine(config, "worker")
    try:
        with collector.served(config, engine):
            worker = Worker(config, engine)
            stats = worker.run(stop, until_empty=until_empty)
    finally:
        engine.dispose()
    backfilled = f", {worker.backfill.vectors} vectors of new embedding versions" if worker.backfill.vectors else ""
    typer.echo(
        f"processed {stats.documents} documents ({stats.failed} failed, {stats.superseded} superseded), "
        f"embedded {stats.texts_embedded} texts{backfilled}"
    )


@cli.command()
def version() -> None:
    """Print Memora's version."""
    typer.echo(__version__)
