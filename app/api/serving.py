"""Running the API under uvicorn on sockets bound first, so that a port in use is one clear error, said before
anything starts, that names the setting to change."""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
from typing import TYPE_CHECKING

from app.errors import AppError

if TYPE_CHECKING:
    from fastapi import FastAPI

_BACKLOG = 2048  # uvicorn's default
_STARTUP_FAILURE = 3  # uvicorn.run's exit status when the application does not start


def listen(host: str, port: int) -> list[socket.socket]:
    """Sockets listening on HOST:PORT, one per address HOST resolves to, bound as asyncio's create_server binds
    them (which uvicorn would otherwise call); an AppError naming the option and variable to change if none can."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise AppError(f"cannot serve on {where}: {exc.strerror}; set --host or MEMORA_HOST to an address") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRNOTAVAIL:  # e.g. ::1 where IPv6 is off; asyncio skips it too
                    continue
                raise
            sockets.append(sock)
            sock.listen(_BACKLOG)
        if not sockets:
            raise OSError(errno.EADDRNOTAVAIL, "not an address of this machine")
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise AppError(f"cannot serve on {where}: {_advice(exc)}") from None
    return sockets


def _advice(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "the port is in use; choose another with --port or MEMORA_PORT"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "not an address of this machine; set --host or MEMORA_HOST to one of its addresses (0.0.0.0: all)"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges); choose another with --port or MEMORA_PORT"
    return f"{exc.strerror or exc}; check --host (MEMORA_HOST) and --port (MEMORA_PORT)"


def run(app: FastAPI, sockets: list[socket.socket], log_level: str, *, json_logs: bool = False) -> None:
    """Serve APP on SOCKETS until Ctrl-C or SIGTERM, exiting as uvicorn.run does if the application does not start.
    With JSON_LOGS, uvicorn's loggers (its access log too) keep no handlers of their own: their lines go to the root
    logger's JSON handler, with the request id."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    config = uvicorn.Config(app, log_level=log_level, log_config=None if json_logs else LOGGING_CONFIG)
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)
    if not server.started:
        sys.exit(_STARTUP_FAILURE)
