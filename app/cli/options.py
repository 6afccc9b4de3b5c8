"""What every command module of `memora` shares: options read from MEMORA_* variables, the settings and database
of the command, input checked with the API's models, and progress bars on stderr.

Only light modules are imported here: `memora --help` imports every command module, so each one loads what a
command needs inside that command.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from app.config import Settings

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from app.training.quality.index import ProgressFn

Model = TypeVar("Model", bound="BaseModel")


def option(env: str, help: str, *flags: str, **extra: Any) -> Any:
    """A typer.Option also read from MEMORA_<ENV>, showing its variable and default in --help."""
    return typer.Option(*flags, envvar=f"MEMORA_{env}", show_envvar=True, show_default=True, help=help, **extra)


def setting(field: str, *flags: str) -> Any:
    """A typer.Option for Settings.FIELD: the same MEMORA_* variable and description as the setting."""
    return option(field.upper(), Settings.model_fields[field].description or "", *flags)


# The defaults of the settings, for the options that override them.
DEFAULTS: dict[str, Any] = {name: field.default for name, field in Settings.model_fields.items()}


def json_flag(env: str) -> Any:
    """The --json flag of a feature's commands, read from MEMORA_<ENV>."""
    return option(env, "Print JSON instead of text.", "--json")


def settings(ctx: typer.Context) -> Settings:
    """The settings the root command made from its options and the environment."""
    found: Settings = ctx.find_root().obj
    return found


@contextmanager
def engine(ctx: typer.Context) -> Iterator[Engine]:
    """An engine of the command's own (memora-cli in pg_stat_activity), disposed at the end."""
    from app.db.engine import make_engine

    made = make_engine(settings(ctx), "cli")
    try:
        yield made
    finally:
        made.dispose()


@contextmanager
def session(ctx: typer.Context, **options: Any) -> Iterator[Session]:
    """A session on the command's own engine."""
    from sqlalchemy.orm import Session

    with engine(ctx) as made, Session(made, **options) as db:
        yield db


def validated(model: type[Model], data: dict[str, Any], flags: dict[str, str] | None = None) -> Model:
    """DATA as MODEL; a bad option is one line naming its flag (FLAGS maps a field to it; default --field), not a
    traceback."""
    from pydantic import ValidationError

    from app.errors import InvalidInputError, problems_of

    def flag(loc: Any) -> str:
        field = str(loc[-1]) if loc else ""
        return (flags or {}).get(field) or "--" + field.replace("_", "-")

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError.for_problems(problems_of(exc, flag), "invalid options") from None


@contextmanager
def step_bars(console: Console, *, disable: bool = False) -> Iterator[ProgressFn]:
    """A progress callback (step, done, total) that draws one bar per step on CONSOLE."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=disable) as progress:
        tasks: dict[str, Any] = {}

        def update(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(step, total=total)
            progress.update(tasks[step], completed=done, total=total)

        yield update


def stderr() -> Console:
    """A console on standard error, where progress and reports go while results go to standard output."""
    from rich.console import Console

    return Console(stderr=True)
