"""What a `memora` command costs before it does anything: the wall time of `memora --help` and other commands that
do no work, and what each import of the app.cli package adds, in order, with the libraries it brings in.

Each import is timed in a fresh interpreter after the ones before it, so a library is charged to the first import
that needs it. An import of an app module that adds more than --expand ms is broken down the same way into its own
imports (those that cost something), down to --depth levels. Figures are medians of --runs runs; other work on the
machine moves them (see the load average).

    .venv/bin/python benchmarks/cli_startup.py [--runs 9] [--expand 20] [--depth 3] [--json PATH]
        [--baseline DIR]   # another checkout with its own .venv (e.g. `git worktree add DIR bf8bf67 && make -C DIR
                           # install`): each command is timed there too, the two taking turns run by run
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import REPO_ROOT, code_version, console, machine, print_facts, print_table, write_json

COMMANDS = [["--help"], ["version"], ["db", "--help"], ["collection", "--help"]]

# Runs in a fresh interpreter: execute PREFIX untimed, then time each of STATEMENTS; print seconds and new packages.
_CHILD = """
import json, sys, time
prefix, statements = json.loads(sys.argv[1])
for statement in prefix:
    exec(statement, {})
out = []
for statement in statements:
    before = set(sys.modules)
    start = time.perf_counter()
    exec(statement, {})
    seconds = time.perf_counter() - start
    out.append([seconds, sorted({name.split(".")[0] for name in set(sys.modules) - before})])
print(json.dumps(out))
"""


def imports_of(module: str) -> list[str]:
    """MODULE's top-level import statements as source, in order (a package's are those of its __init__.py)."""
    path = REPO_ROOT / module.replace(".", "/")
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text())
    nodes = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    statements = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, ast.ImportFrom) and any(_is_app_module(f"{node.module}.{n.name}") for n in node.names):
            # One statement per module: `from app.cli import datasets, exports` loads two.
            statements += [ast.unparse(ast.ImportFrom(node.module, [name], node.level)) for name in node.names]
        else:
            statements.append(ast.unparse(node))
    return [*statements, f"import {module}"]


def time_statements(prefix: list[str], statements: list[str], runs: int) -> list[tuple[str, float, list[str]]]:
    """Median seconds of each statement after PREFIX, and the top-level packages it imported (in the first run)."""
    samples: list[list[float]] = [[] for _ in statements]
    packages: list[list[str]] = []
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, json.dumps([prefix, statements])],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        measured = json.loads(result.stdout)
        for i, (seconds, _) in enumerate(measured):
            samples[i].append(seconds)
        packages = packages or [new for _, new in measured]
    return [(s, statistics.median(t), p) for s, t, p in zip(statements, samples, packages, strict=True)]


def time_commands(variants: list[tuple[list[str], Path]], runs: int) -> list[list[float]]:
    """Wall seconds of each (argv, cwd) variant, RUNS times, the variants taking turns so that load hits all alike."""
    times: list[list[float]] = [[] for _ in variants]
    for _ in range(runs):
        for i, (argv, cwd) in enumerate(variants):
            start = time.perf_counter()
            subprocess.run(argv, cwd=cwd, capture_output=True, check=True)
            times[i].append(time.perf_counter() - start)
    return times


def _packages(new: list[str]) -> str:
    shown = [name for name in new if not name.startswith("_") and name not in sys.stdlib_module_names]
    return ", ".join(shown[:8]) + (" ..." if len(shown) > 8 else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--expand", type=float, default=20.0, help="Break down app imports over this many ms.")
    parser.add_argument("--depth", type=int, default=3, help="Break down app imports this many levels down.")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--baseline", type=Path, help="Another checkout with its own .venv, timed in turns.")
    args = parser.parse_args()
    facts = machine() | code_version()
    if args.baseline is not None:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=args.baseline, capture_output=True, text=True
        )
        facts["baseline"] = {"path": str(args.baseline), "commit": commit.stdout.strip()}
    print_facts("cli_startup", facts)

    checkouts = [("this", REPO_ROOT, Path(sys.executable).parent)]
    if args.baseline is not None:
        checkouts.append(("baseline", args.baseline, args.baseline / ".venv" / "bin"))
    command_rows = []
    for argv in [["python", "-c", "pass"]] + [["memora", *argv] for argv in COMMANDS]:
        variants = [([str(bin_dir / argv[0]), *argv[1:]], root) for _, root, bin_dir in checkouts]
        times = time_commands(variants, args.runs)
        row: list[Any] = [" ".join(argv if argv[0] == "memora" else ["python -c pass"])]
        for samples in times:
            row += [statistics.median(samples) * 1000, min(samples) * 1000]
        if len(times) == 2:
            row.append(statistics.median(times[1]) / statistics.median(times[0]))
        command_rows.append(row)
    columns = ["command", "median", "min"]
    if args.baseline is not None:
        columns += ["baseline median", "baseline min", "baseline / this"]
    print_table("Wall time (ms)", columns, command_rows)

    import_rows: list[list[Any]] = []

    def breakdown(prefix: list[str], module: str, depth: int) -> None:
        steps = imports_of(module)
        for i, (statement, seconds, new) in enumerate(time_statements(prefix, steps, args.runs)):
            if depth and seconds * 1000 < 0.5:
                continue  # inside a module, only the imports that cost something
            import_rows.append(["  " * depth + statement, seconds * 1000, _packages(new)])
            inner = _app_module(statement)
            if inner and inner != module and depth < args.depth and seconds * 1000 > args.expand:
                breakdown(prefix + steps[:i], inner, depth + 1)

    breakdown([], "app.cli", 0)
    print_table("Imports of app.cli in order (ms after the ones above)", ["import", "ms", "brings in"], import_rows)
    write_json(args.json, {"machine": facts, "columns": columns, "commands": command_rows, "imports": import_rows})


def _is_app_module(name: str) -> bool:
    path = REPO_ROOT / name.replace(".", "/")
    return name.startswith("app.") and (path.with_suffix(".py").exists() or (path / "__init__.py").exists())


def _app_module(statement: str) -> str | None:
    """The app module an import statement loads, if it names one (`from app.x import y` may name module app.x.y)."""
    node = ast.parse(statement).body[0]
    if isinstance(node, ast.Import):
        name = node.names[0].name
    elif isinstance(node, ast.ImportFrom) and node.module:
        name = node.module
        if _is_app_module(f"{name}.{node.names[0].name}"):
            name = f"{name}.{node.names[0].name}"
    else:
        return None
    return name if _is_app_module(name) else None


if __name__ == "__main__":
    main()
    console.print("done")
