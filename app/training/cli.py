"""`memora dataset ...`, `memora export` and `memora finetune ...`: training data from the command line.

The commands live beside their features (cli_quality.py, cli_snapshots.py, cli_export.py, cli_finetune.py) and
attach themselves to the Typer apps defined here; app/cli.py calls register().
"""

from __future__ import annotations

from typing import Any

import typer

dataset_cli = typer.Typer(help="Datasets of labeled training examples.", no_args_is_help=True)
finetune_cli = typer.Typer(help="Fine-tuning jobs on an OpenAI-compatible service.", no_args_is_help=True)


def option(name: str, help: str, *flags: str) -> Any:
    """A typer option also read from MEMORA_<NAME>, showing its default (as every option of `memora` does)."""
    return typer.Option(*flags, envvar=f"MEMORA_{name}", show_envvar=True, show_default=True, help=help)


def register(cli: typer.Typer) -> None:
    from app.training import cli_datasets, cli_export, cli_finetune, cli_quality, cli_snapshots  # noqa: F401

    cli.add_typer(dataset_cli, name="dataset")
    cli.add_typer(finetune_cli, name="finetune")
    if hasattr(cli_export, "export"):
        cli.command("export")(cli_export.export)
