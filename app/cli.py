"""The `memora` command. Every option reads a MEMORA_* environment variable and shows its default."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from app import __version__
from app.config import Settings
from app.db import migrate
from app.db.embedded import EmbeddedPostgres, bin_dir
from app.db.engine import database_url, libpq_url
from app.errors import AppError
from app.rag import commands as rag_commands
from app.training import cli as training_cli

cli = typer.Typer(
    help="Memora: documents, embeddings and training data in PostgreSQL + pgvector.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_cli = typer.Typer(help="The database: migrations and the embedded PostgreSQL.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
collection_cli = typer.Typer(help="Collections of documents.", no_args_is_help=True)
cli.add_typer(collection_cli, name="collection")
training_cli.register(cli)
rag_commands.register(cli)

log = logging.getLogger("memora")


def _option(field: str, *flags: str) -> Any:
    """A typer.Option for Settings.FIELD: same default, same MEMORA_* variable, same description."""
    info = Settings.model_fields[field]
    return typer.Option(
        *flags,
        envvar=f"MEMORA_{field.upper()}",
        help=info.description,
        show_default=True,
        show_envvar=True,
    )


def _settings(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


@cli.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[str | None, _option("database_url", "--database-url")] = None,
    data_dir: Annotated[Path, _option("data_dir", "--data-dir")] = Settings.model_fields["data_dir"].default,
    pg_port: Annotated[int, _option("pg_port", "--pg-port")] = Settings.model_fields["pg_port"].default,
    db_schema: Annotated[str, _option("db_schema", "--db-schema")] = Settings.model_fields["db_schema"].default,
    log_level: Annotated[str, _option("log_level", "--log-level")] = Settings.model_fields["log_level"].default,
) -> None:
    """Memora's command line."""
    ctx.obj = Settings(
        database_url=database_url,
        data_dir=data_dir,
        pg_port=pg_port,
        db_schema=db_schema,
        log_level=log_level,
    )
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")


@cli.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, _option("host", "--host")] = Settings.model_fields["host"].default,
    port: Annotated[int, _option("port", "--port")] = Settings.model_fields["port"].default,
    migrate_on_start: Annotated[bool, _option("migrate_on_start", "--migrate/--no-migrate")] = Settings.model_fields[
        "migrate_on_start"
    ].default,
    worker_in_serve: Annotated[bool, _option("worker_in_serve", "--worker/--no-worker")] = Settings.model_fields[
        "worker_in_serve"
    ].default,
) -> None:
    """Serve the REST API (OpenAPI docs at /docs) with an ingestion worker, migrating the database first."""
    from app.api.main import create_app
    from app.api.serving import listen, run

    update = {"host": host, "port": port, "migrate_on_start": migrate_on_start, "worker_in_serve": worker_in_serve}
    settings = _settings(ctx).model_copy(update=update)
    sockets = listen(host, port)
    if settings.migrate_on_start:
        migrate.upgrade(settings)
    typer.echo(f"Memora {__version__} on http://{host}:{port} (API docs: http://{host}:{port}/docs)", err=True)
    app = create_app(settings, worker=settings.worker_in_serve)
    run(app, sockets, settings.log_level)


@cli.command()
def worker(
    ctx: typer.Context,
    until_empty: Annotated[
        bool,
        typer.Option(
            "--until-empty", envvar="MEMORA_WORKER_UNTIL_EMPTY", show_envvar=True, show_default=True,
            help="Exit when the queue is empty instead of waiting for more work.",
        ),
    ] = False,
) -> None:  # fmt: skip
    """Chunk and embed queued documents until SIGTERM (which lets the current batch finish)."""
    from app.db.engine import make_engine
    from app.ingest.commands import run_worker

    settings = _settings(ctx)
    stats = run_worker(settings, make_engine(settings, "worker"), until_empty=until_empty)
    typer.echo(
        f"processed {stats.documents} documents ({stats.failed} failed, {stats.superseded} superseded), "
        f"embedded {stats.texts_embedded} texts"
    )


@cli.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files or directories (.txt .md .html .pdf .jsonl).")],
    collection: Annotated[
        str, typer.Option("--collection", "-c", envvar="MEMORA_COLLECTION", show_envvar=True, help="Target collection.")
    ],
    glob: Annotated[
        str | None,
        typer.Option("--glob", envvar="MEMORA_INGEST_GLOB", show_envvar=True, show_default=True,
                     help="Only files matching this pattern inside directories."),
    ] = None,
    create: Annotated[
        bool, typer.Option("--create", envvar="MEMORA_INGEST_CREATE", show_envvar=True, show_default=True,
                           help="Create the collection with default settings if it does not exist."),
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", envvar="MEMORA_INGEST_WAIT", show_envvar=True, show_default=True,
                           help="Follow the worker until every document is embedded (runs one here if none is)."),
    ] = False,
) -> None:  # fmt: skip
    """Add files to a collection; unchanged files are left alone, so running it again does no new work."""
    from app.db.engine import make_engine
    from app.ingest.commands import ingest as run_ingest
    from app.ingest.commands import wait_for_worker

    settings = _settings(ctx)
    engine = make_engine(settings, "cli")
    changed, failed = run_ingest(settings, engine, paths, collection, pattern=glob, create=create)
    for line in failed:
        typer.echo(f"skipped {line}", err=True)
    typer.echo(f"{changed} documents new or changed, {len(failed)} files skipped")
    if wait:
        counts = wait_for_worker(settings, engine, collection)
        typer.echo(f"ready: {counts.get('ready', 0)}, failed: {counts.get('failed', 0)}")
    if failed:
        raise typer.Exit(1)


@cli.command("eval")
def eval_command(
    ctx: typer.Context,
    collection: Annotated[
        str, typer.Option("--collection", "-c", envvar="MEMORA_COLLECTION", show_envvar=True,
                          help="Collection to search.")
    ],
    queries: Annotated[
        Path | None, typer.Option("--queries", envvar="MEMORA_EVAL_QUERIES", show_envvar=True, show_default=True,
                                  help='BEIR queries.jsonl: {"_id": ..., "text": ...} per line (or --dataset).')
    ] = None,
    qrels: Annotated[
        Path | None, typer.Option("--qrels", envvar="MEMORA_EVAL_QRELS", show_envvar=True, show_default=True,
                                  help="Judgments: BEIR qrels TSV (query-id, corpus-id, score) or TREC qrels.")
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", envvar="MEMORA_EVAL_MODES", show_envvar=True, show_default=True,
                          help="Comma-separated search modes: text, vector, hybrid.")
    ] = "text,vector,hybrid",
    as_json: Annotated[
        bool, typer.Option("--json", envvar="MEMORA_EVAL_JSON", show_envvar=True, show_default=True,
                           help="Print one JSON object instead of a table.")
    ] = False,
    k_depth: Annotated[
        int, typer.Option("--k-depth", envvar="MEMORA_EVAL_K_DEPTH", show_envvar=True, show_default=True, min=1,
                          max=1000, help="Chunks asked for per query (doubled while they hold < 100 documents).")
    ] = 200,
    fusion: Annotated[
        str, typer.Option("--fusion", envvar="MEMORA_EVAL_FUSION", show_envvar=True, show_default=True,
                          help="Hybrid: convex (weighted sum of min-max normalised scores) or rrf (Reciprocal Rank "
                          "Fusion).")
    ] = "convex",
    rrf_k: Annotated[
        int, typer.Option("--rrf-k", envvar="MEMORA_EVAL_RRF_K", show_envvar=True, show_default=True, min=0,
                          help="Hybrid, rrf: the k of Reciprocal Rank Fusion.")
    ] = 60,
    text_weight: Annotated[
        float, typer.Option("--text-weight", envvar="MEMORA_EVAL_TEXT_WEIGHT", show_envvar=True, show_default=True,
                            min=0, help="Hybrid: weight of the BM25 ranking.")
    ] = 1.0,
    vector_weight: Annotated[
        float, typer.Option("--vector-weight", envvar="MEMORA_EVAL_VECTOR_WEIGHT", show_envvar=True,
                            show_default=True, min=0, help="Hybrid: weight of the vector ranking.")
    ] = 1.0,
    candidates: Annotated[
        int | None, typer.Option("--candidates", envvar="MEMORA_EVAL_CANDIDATES", show_envvar=True, show_default=True,
                                 help="Hybrid: candidates per side (at least the chunks asked for); default 4 x k.")
    ] = None,
    ef_search: Annotated[
        int | None, typer.Option("--ef-search", envvar="MEMORA_EVAL_EF_SEARCH", show_envvar=True, show_default=True,
                                 help="Vector and hybrid: HNSW ef_search (raised to the chunks asked for).")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", envvar="MEMORA_EVAL_DATASET", show_envvar=True, show_default=True,
                                 help="Judged queries from this dataset's pairs examples, instead of --queries and "
                                 "--qrels.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", envvar="MEMORA_EVAL_REPORT", show_envvar=True, show_default=True,
                                  file_okay=False, help="Write report.md and PNG charts into this directory.")
    ] = None,
    tune: Annotated[
        bool, typer.Option("--tune", envvar="MEMORA_EVAL_TUNE", show_envvar=True, show_default=True,
                           help="Choose hybrid's fusion settings on a dev split of the queries; compare them with "
                           "the defaults on the rest.")
    ] = False,
    save: Annotated[
        bool, typer.Option("--save", envvar="MEMORA_EVAL_SAVE", show_envvar=True, show_default=True,
                           help="With --tune: store the chosen settings as the collection's search defaults.")
    ] = False,
    dev_fraction: Annotated[
        float, typer.Option("--dev-fraction", envvar="MEMORA_EVAL_DEV_FRACTION", show_envvar=True,
                            show_default=True, min=0, max=1, help="With --tune: share of the queries tuned on.")
    ] = 0.5,
    seed: Annotated[
        int, typer.Option("--seed", envvar="MEMORA_EVAL_SEED", show_envvar=True, show_default=True,
                          help="With --tune: seed of the dev/holdout split.")
    ] = 0,
) -> None:  # fmt: skip
    """Measure search quality on judged queries: nDCG@10, recall@10/100, MRR@10 and latency per mode."""
    from app.db.engine import make_engine
    from app.eval.commands import run_eval
    from app.eval.repository import FusionParams
    from app.eval.service import parse_fusion, parse_modes

    settings = _settings(ctx)
    params = FusionParams(parse_fusion(fusion), rrf_k, text_weight, vector_weight, candidates, ef_search)
    run_eval(
        settings, make_engine(settings, "cli"), collection, queries, qrels,
        modes=parse_modes(mode), depth=k_depth, params=params, as_json=as_json, dataset=dataset,
        report_dir=report, tune=tune, save=save, dev_fraction=dev_fraction, seed=seed,
    )  # fmt: skip


@cli.command()
def embed(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="Text to embed, e.g. a query.")],
    collection: Annotated[
        str, typer.Option("--collection", "-c", envvar="MEMORA_COLLECTION", show_envvar=True,
                          help="Collection whose model embeds the text.")
    ],
) -> None:  # fmt: skip
    """Print TEXT's vector as pgvector reads it ([0.1,...]); in psql: \\set q `memora embed 'text' -c docs`."""
    from app.db.engine import make_engine
    from app.eval.commands import vector_literal

    settings = _settings(ctx)
    typer.echo(vector_literal(settings, make_engine(settings, "cli"), collection, text))


@collection_cli.command("create")
def collection_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Collection name.")],
    provider: Annotated[str, typer.Option(envvar="MEMORA_EMBEDDING_PROVIDER", show_envvar=True, show_default=True,
                                          help="local | openai | hashing")] = "local",
    model: Annotated[str | None, typer.Option(envvar="MEMORA_EMBEDDING_MODEL", show_envvar=True, show_default=True,
                                              help="Embedding model; default: the provider's.")] = None,
    dimensions: Annotated[int | None, typer.Option(envvar="MEMORA_EMBEDDING_DIMENSIONS", show_envvar=True,
                                                   show_default=True, help="Vector dimensions.")] = None,
    metric: Annotated[str, typer.Option(envvar="MEMORA_METRIC", show_envvar=True, show_default=True,
                                        help="cosine | l2 | inner_product")] = "cosine",
    language: Annotated[str, typer.Option(envvar="MEMORA_LANGUAGE", show_envvar=True, show_default=True,
                                          help="Text search configuration.")] = "english",
) -> None:  # fmt: skip
    """Create a collection."""
    from sqlalchemy.orm import Session

    from app.collections import service as collections
    from app.collections.schemas import CollectionCreate
    from app.db.engine import make_engine

    body = CollectionCreate.model_validate(
        {"name": name, "embedding_provider": provider, "embedding_model": model, "dimensions": dimensions,
         "metric": metric, "language": language}
    )  # fmt: skip
    with Session(make_engine(_settings(ctx), "cli")) as db, db.begin():
        created = collections.create(db, body)
        typer.echo(
            f"created {created.name} ({created.embedding_provider}/{created.embedding_model}, {created.dimensions}d)"
        )


@collection_cli.command("list")
def collection_list(ctx: typer.Context) -> None:
    """List collections with their documents by status."""
    from sqlalchemy.orm import Session

    from app.collections import repository
    from app.collections import service as collections
    from app.db.engine import make_engine

    with Session(make_engine(_settings(ctx), "cli")) as db:
        for out in collections.describe(db, repository.all_collections(db)):
            counts = ", ".join(f"{k} {v}" for k, v in sorted(out.documents.items())) or "empty"
            typer.echo(f"{out.name}\t{out.embedding_provider}/{out.embedding_model}\t{out.dimensions}d\t{counts}")


@collection_cli.command("delete")
def collection_delete(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Collection name.")]) -> None:
    """Delete a collection with its documents, chunks and vectors."""
    from sqlalchemy.orm import Session

    from app.collections import service as collections
    from app.db.engine import make_engine

    with Session(make_engine(_settings(ctx), "cli")) as db, db.begin():
        collections.delete(db, name)
    typer.echo(f"deleted {name}")


@cli.command()
def version() -> None:
    """Print Memora's version."""
    typer.echo(__version__)


@db_cli.command()
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION."""
    settings = _settings(ctx)
    migrate.upgrade(settings, revision)
    typer.echo(f"database at {_current(settings) or 'base'}")


@db_cli.command()
def downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision; `base` removes every Memora object.")],
) -> None:
    """Revert migrations down to REVISION."""
    settings = _settings(ctx)
    migrate.downgrade(settings, revision)
    typer.echo(f"database at {_current(settings) or 'base'}")


@db_cli.command()
def current(ctx: typer.Context) -> None:
    """Print the revision the database is at, and the newest one this Memora has."""
    settings = _settings(ctx)
    typer.echo(f"current: {_current(settings) or 'base'}")
    typer.echo(f"head: {migrate.head_revision()}")


@db_cli.command()
def url(ctx: typer.Context) -> None:
    """Print the database URL (starting the embedded server if needed), e.g. for psql "$(memora db url)"."""
    typer.echo(libpq_url(database_url(_settings(ctx))))


@db_cli.command()
def psql(
    ctx: typer.Context,
    args: Annotated[list[str] | None, typer.Argument(help="Arguments passed on to psql.")] = None,
) -> None:
    """Open psql (bundled with the embedded server) on Memora's database."""
    target = libpq_url(database_url(_settings(ctx)))
    program = str(bin_dir() / "psql")
    os.execv(program, [program, target, *(args or [])])


@db_cli.command()
def status(ctx: typer.Context) -> None:
    """Say whether the embedded server runs, and where."""
    settings = _settings(ctx)
    if not settings.embedded:
        typer.echo("MEMORA_DATABASE_URL is set: Memora uses that server, not an embedded one.")
        return
    server = EmbeddedPostgres(settings.data_dir, settings.pg_port).status()
    if server is None:
        typer.echo(f"embedded PostgreSQL in {settings.data_dir.absolute()}: stopped")
        raise typer.Exit(3)
    typer.echo(f"embedded PostgreSQL in {settings.data_dir.absolute()}: running (pid {server.pid}, port {server.port})")


@db_cli.command()
def stop(ctx: typer.Context) -> None:
    """Stop the embedded server; the next memora command starts it again."""
    settings = _settings(ctx)
    if not settings.embedded:
        typer.echo("MEMORA_DATABASE_URL is set: there is no embedded server to stop.")
        return
    stopped = EmbeddedPostgres(settings.data_dir, settings.pg_port).stop()
    typer.echo("stopped" if stopped else "not running")


@db_cli.command("sql")
def sql_script(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--from", help="Revision the database is at.")] = "base",
    end: Annotated[str, typer.Option("--to", help="Revision to migrate to.")] = "head",
    down: Annotated[bool, typer.Option("--downgrade", help="Print the downgrade from --from to --to.")] = False,
) -> None:
    """Print the migration as SQL, for databases migrated with psql rather than by Memora."""
    typer.echo(migrate.sql_script(_settings(ctx), start, end, downgrade=down), nl=False)


def _current(settings: Settings) -> str | None:
    return migrate.current_revision(database_url(settings), settings.db_schema)


def main() -> None:
    """Entry point of the `memora` console script: errors become one line on stderr, not a traceback."""
    try:
        cli()
    except AppError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    except OperationalError as exc:
        typer.echo(f"error: cannot use the database: {str(exc.orig).strip()}", err=True)
        sys.exit(1)
    except ValidationError as exc:
        for problem in exc.errors():
            field = ".".join(str(part) for part in problem["loc"])
            typer.echo(f"error: setting {field} (MEMORA_{field.upper()}): {problem['msg']}", err=True)
        sys.exit(2)
