"""The "meshpy proxy: admin IP:PORT, NAME IP:PORT" line that proxies print, its parser, and
the admin address a sidecar registers."""

from __future__ import annotations

import ipaddress
import re

__all__ = ["format_addresses", "parse_addresses", "reachable_admin"]

_ITEM = r"[a-z0-9][a-z0-9_.-]* (?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}"
_ADDRESS_LINE = re.compile(rf"^meshpy proxy: ({_ITEM}(?:, {_ITEM})*)$")


def format_addresses(addresses: dict[str, str]) -> str:
    """Return ``admin 127.0.0.1:9901, web 127.0.0.1:8000``: admin first, then listeners."""
    names = sorted(addresses, key=lambda name: name != "admin")
    return ", ".join(f"{name} {addresses[name]}" for name in names) or "no listeners"


def parse_addresses(line: str) -> dict[str, str] | None:
    """Return the addresses of a ``meshpy proxy: admin ..., web ...`` line, else None."""
    match = _ADDRESS_LINE.match(line.rstrip("\n"))
    if match is None:
        return None
    return dict(item.split(" ", 1) for item in match.group(1).split(", "))


def reachable_admin(bound: str, instance_address: str) -> str:
    """Where others reach an admin listener bound at ``bound`` (``IP:PORT``).

    A listener bound to every address (0.0.0.0, [::]) is reached at the instance's own
    address; one bound to a single address, at that address.
    """
    host, _, port = bound.rpartition(":")
    if not ipaddress.ip_address(host.strip("[]")).is_unspecified:
        return bound
    ip = ipaddress.ip_address(instance_address)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
