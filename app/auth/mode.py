"""Whether the API asks for keys: the one decision `enforce`, `/healthz` and `memora serve` all read.

Keys are required when MEMORA_AUTH=required, or when it is auto (the default) and the API listens on an address
others can reach: anything but a loopback address (127.0.0.0/8, ::1) or the name localhost. A server on loopback is
open by default, for one person on a laptop; MEMORA_AUTH=off opens any server, and `memora serve` warns about it.
"""

from __future__ import annotations

import ipaddress

from app.config import Settings


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach: 127.0.0.0/8, ::1 (an IPv4-mapped one too) or localhost."""
    host = host.strip().strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name: whatever it resolves to, others may reach it
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def keys_required(settings: Settings) -> bool:
    """True when a request needs a valid API key (routes open to all, /healthz and the docs, aside)."""
    if settings.auth == "auto":
        return not is_loopback(settings.host)
    return settings.auth == "required"


def open_to_others(settings: Settings) -> bool:
    """True for MEMORA_AUTH=off on an address others can reach: anyone who reaches the port may do anything."""
    return settings.auth == "off" and not is_loopback(settings.host)
