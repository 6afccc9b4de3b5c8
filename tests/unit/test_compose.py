"""docker-compose.yml, checked without a Docker engine: it parses, and its commands are real memora commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from sqlalchemy.engine import make_url

from app.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def _memora_command_paths() -> set[tuple[str, ...]]:
    def walk(command: Any, prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        paths = {prefix}
        for name, child in getattr(command, "commands", {}).items():
            paths |= walk(child, (*prefix, name))
        return paths

    return walk(typer.main.get_command(cli), ())


def _words_before_options(command: list[str]) -> tuple[str, ...]:
    words: list[str] = []
    for word in command[1:]:
        if word.startswith("-"):
            break
        words.append(word)
    return tuple(words)


def test_compose_file_parses_with_the_services_we_promise() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

    services = compose["services"]
    assert {"db", "api", "worker"} <= set(services)
    assert services["db"]["image"].startswith("pgvector/pgvector:pg")
    assert "healthcheck" in services["db"]
    assert any(volume.startswith("pgdata:") for volume in services["db"]["volumes"])


def test_compose_commands_are_memora_subcommands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    known = _memora_command_paths()

    commands = [service["command"] for service in compose["services"].values() if "command" in service]
    commands = [line for command in commands for line in _memora_lines(compose, command)]

    assert commands
    for command in commands:
        assert command[0] == "memora"
        assert _words_before_options(command) in known, command
        _parse(command)  # raises on an option the command does not have


def _memora_lines(compose: dict[str, Any], command: list[str]) -> list[list[str]]:
    """COMMAND itself, or for `sh SCRIPT` the memora command lines of the script a service mounts there."""
    if command[0] != "sh":
        return [command]
    mounts = [v.split(":") for service in compose["services"].values() for v in service.get("volumes", [])]
    source = next(host for host, inside, *_ in mounts if inside == command[1])
    lines = (ROOT / source).read_text().splitlines()
    return [line.split() for line in lines if line.startswith("memora ")]


def _parse(command: list[str]) -> None:
    """Parse a command line down to its leaf command, as click would when it runs it."""
    group: Any = typer.main.get_command(cli)
    args = list(command[1:])
    ctx = group.make_context("memora", list(args))
    while getattr(group, "commands", None) and (rest := [*ctx._protected_args, *ctx.args]):
        name, args = rest[0], rest[1:]
        group = group.commands[name]
        ctx = group.make_context(name, list(args), parent=ctx)


def test_a_bad_option_in_compose_would_be_caught() -> None:
    with pytest.raises(Exception, match="No such option"):
        _parse(["memora", "serve", "--no-such-flag"])


def test_app_services_build_from_the_dockerfile_and_use_the_database_service() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    dockerfile = (ROOT / "Dockerfile").read_text()

    for name, service in compose["services"].items():
        if name == "db" or "profiles" in service:  # the citus profile's services: below
            continue
        assert service["build"] == "."
        assert "@db:5432/" in service["environment"]["MEMORA_DATABASE_URL"]
        assert set(service["depends_on"]) & {"db", "api", "migrate"}
    for needed in ("COPY migrations", "COPY sql", "alembic.ini", 'CMD ["memora", "serve"]'):
        assert needed in dockerfile


def test_no_memora_service_is_the_superuser_and_only_the_migration_may_create_roles() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    roles_sql = (ROOT / "docker" / "roles.sql").read_text()

    def user(name: str) -> str:
        return str(make_url(services[name]["environment"]["MEMORA_DATABASE_URL"]).username)

    superuser = services["db"]["environment"]["POSTGRES_USER"]
    assert {user(name) for name in ("migrate", "api", "worker")}.isdisjoint({superuser})
    assert user("api") == user("worker") != user("migrate")
    assert services["migrate"]["command"][-2:] == ["--service-role", user("api")]
    assert f"CREATE ROLE {user('migrate')} LOGIN CREATEROLE " in roles_sql
    assert f"CREATE ROLE {user('api')} LOGIN PASSWORD " in roles_sql
    assert services["api"]["environment"]["MEMORA_MIGRATE_ON_START"] == "false"
    mounted = {volume.split(":")[1] for volume in services["db"]["volumes"]}
    assert {"/docker-entrypoint-initdb.d/10-memora-roles.sh", "/memora/roles.sql"} <= mounted


def test_the_citus_profile_is_a_coordinator_and_two_workers_with_pgvector_and_one_port_on_loopback() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    citus = {name: service for name, service in compose["services"].items() if "citus" in service.get("profiles", [])}
    dockerfile = (ROOT / "docker" / "citus" / "Dockerfile").read_text()

    assert set(citus) == {"citus-coordinator", "citus-worker-1", "citus-worker-2", "citus-setup"}
    nodes = [name for name in citus if name != "citus-setup"]
    assert all(citus[name]["build"] == "docker/citus" for name in nodes)
    assert "FROM citusdata/citus" in dockerfile
    assert "pgvector" in dockerfile
    assert [port for name in nodes for port in citus[name].get("ports", [])] == ["127.0.0.1:5433:5432"]
    assert citus["citus-setup"]["build"] == "."
    assert set(citus["citus-setup"]["depends_on"]) == set(nodes)
    script = [line for command in [citus["citus-setup"]["command"]] for line in _memora_lines(compose, command)]
    assert script == [["memora", "db", "upgrade"], ["memora", "db", "distribute"]]
