"""`memora dataset split | dedup | leakage`: splits, duplicates and train/test leakage (routes: dataset_quality.py)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from app.cli.options import json_flag, option, session, settings, stderr, step_bars, validated

JsonOption = Annotated[bool, json_flag("QUALITY_JSON")]

cli = typer.Typer()
EMPTY = "the rule is stored and applies to the examples you import (memora dataset import)"

ProviderOption = Annotated[str, option("DEDUP_PROVIDER", "Embedding provider: local | openai | hashing.")]
ModelOption = Annotated[str | None, option("DEDUP_MODEL", "Embedding model; default: the provider's.")]
DimensionsOption = Annotated[int | None, option("DEDUP_DIMENSIONS", "Vector dimensions; default: the model's.")]
KOption = Annotated[int, option("DEDUP_K", "Neighbours each example asks the HNSW index for.")]


@cli.command("split")
def split(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    train: Annotated[float, option("SPLIT_TRAIN", "Share of the train split.")] = 0.8,
    validation: Annotated[float, option("SPLIT_VALIDATION", "Share of the validation split.")] = 0.1,
    test: Annotated[float, option("SPLIT_TEST", "Share of the test split.")] = 0.1,
    seed: Annotated[int, option("SPLIT_SEED", "Seed of the split; another seed gives another split.")] = 0,
    stratified: Annotated[bool, option("SPLIT_STRATIFIED", "Give every label its share of each split.", "--stratified")]
    = False,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Reassign every example's split by a hash of its text (the same rule gives the same split)."""
    from app.training.datasets.schemas import SplitRule
    from app.training.quality import splits

    rule = validated(
        SplitRule,
        {"ratios": {"train": train, "validation": validation, "test": test}, "seed": seed, "stratified": stratified},
        {"ratios": "--train/--validation/--test"},
    )
    with session(ctx) as db, db.begin():
        report = splits.split(db, name, rule)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    counts = ", ".join(f"{s} {n}" for s, n in report.counts.items())
    typer.echo(f"{name}: {report.examples} examples ({counts}); {report.changed} changed split")
    if report.examples == 0:
        typer.echo(f"warning: dataset {name!r} has no examples yet; {EMPTY}", err=True)
    for row in report.by_label or []:
        label = row.label if row.label is not None else "(no label)"
        typer.echo(f"  {label}\ttrain {row.train}\tvalidation {row.validation}\ttest {row.test}")


@cli.command("dedup")
def dedup(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    near: Annotated[float | None, option("DEDUP_NEAR", "Also find near duplicates at this cosine similarity (0.95).")]
    = None,
    k: KOption = 10,
    exact: Annotated[bool, option("DEDUP_EXACT", "Report exact duplicates (same text hash).", "--exact/--no-exact")]
    = True,
    drop: Annotated[bool, option("DEDUP_DROP", "Keep the first example of every cluster, remove the rest.", "--drop")]
    = False,
    provider: ProviderOption = "local",
    model: ModelOption = None,
    dimensions: DimensionsOption = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """Report clusters of exact and near duplicates; with --drop, remove all but one of each."""
    from app.training.quality import dedup as service
    from app.training.quality.schemas import DedupRequest

    request = validated(
        DedupRequest, {"exact": exact, "near": None if near is None else {"threshold": near, "k": k}, "drop": drop,
         "provider": provider, "model": model, "dimensions": dimensions, "limit": 100_000}
    )  # fmt: skip
    console = stderr()
    with session(ctx) as db, db.begin(), step_bars(console, disable=as_json) as progress:
        report = service.dedup(db, name, request, settings(ctx), progress=progress)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    for cluster in report.clusters[:50]:
        similarity = (
            "" if cluster.kind == "exact" else f" similarity {cluster.min_similarity:.3f}-{cluster.max_similarity:.3f}"
        )
        typer.echo(
            f"{cluster.kind}\tkeep {cluster.keep}\t{len(cluster.members)} examples{similarity}: {cluster.members}"
        )
    if len(report.clusters) > 50:
        typer.echo(f"... {len(report.clusters) - 50} more clusters (--json lists them all)")
    c = report.counts
    summary = f"{c['exact_clusters']} exact and {c['near_clusters']} near clusters, {c['duplicates']} duplicates"
    if drop:
        summary += f"; dropped {c['dropped']} ({c['tombstoned']} kept as tombstones for snapshots)"
    typer.echo(summary)


@cli.command("leakage")
def leakage(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    threshold: Annotated[float, option("LEAKAGE_THRESHOLD", "Least cosine similarity of a near duplicate.")] = 0.95,
    k: KOption = 10,
    provider: ProviderOption = "local",
    model: ModelOption = None,
    dimensions: DimensionsOption = None,
    as_json: JsonOption = False,
) -> None:  # fmt: skip
    """List train examples that are exact or near duplicates of validation or test examples."""
    from app.training.quality import leakage as service
    from app.training.quality.schemas import EmbeddingChoice, NearRule

    validated(NearRule, {"threshold": threshold, "k": k})
    choice = validated(EmbeddingChoice, {"provider": provider, "model": model, "dimensions": dimensions})
    console = stderr()
    with session(ctx) as db, db.begin(), step_bars(console, disable=as_json) as progress:
        report = service.leakage(
            db, name, settings(ctx), threshold=threshold, k=k, choice=choice, limit=100_000, progress=progress
        )
    if as_json:
        typer.echo(json.dumps(report.model_dump(), indent=2))
        return
    for pair in report.pairs[:50]:
        kind = "exact" if pair.exact else f"{pair.similarity:.3f}"
        typer.echo(f"train {pair.train_id}\t{pair.other_split} {pair.other_id}\t{kind}")
    if len(report.pairs) > 50:
        typer.echo(f"... {len(report.pairs) - 50} more pairs (--json lists them all)")
    c = report.counts
    typer.echo(
        f"{c['pairs']} pairs cross the train boundary ({c['exact']} exact, {c['near']} near; "
        f"{c['train_validation']} train-validation, {c['train_test']} train-test) among {report.checked} "
        "validation and test examples"
    )
