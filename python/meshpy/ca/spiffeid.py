"""SPIFFE IDs of the mesh: the trust domain, and the ID of each namespace/service."""

from __future__ import annotations

import re

__all__ = [
    "TRUST_DOMAIN_PATTERN",
    "check_trust_domain",
    "is_spiffe_id",
    "trust_domain_id",
    "workload_id",
]

TRUST_DOMAIN_PATTERN = r"^[a-z0-9._-]{1,255}$"
"""A SPIFFE trust domain name: lowercase letters, digits, '.', '-' and '_'."""

_TRUST_DOMAIN = re.compile(TRUST_DOMAIN_PATTERN)
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
_MAX_ID = 2048


def check_trust_domain(value: str) -> str:
    """Return ``value`` if it is a valid trust domain name, else raise ValueError."""
    if not _TRUST_DOMAIN.fullmatch(value):
        msg = (
            f"invalid trust domain {value!r}: use 1 to 255 lowercase letters, digits, "
            "'.', '-' or '_' (e.g. meshpy.local)"
        )
        raise ValueError(msg)
    return value


def trust_domain_id(trust_domain: str) -> str:
    """The SPIFFE ID of the trust domain itself, ``spiffe://<trust domain>``."""
    return f"spiffe://{trust_domain}"


def workload_id(trust_domain: str, namespace: str, service: str) -> str:
    """The identity of a service's workloads: ``spiffe://<td>/ns/<namespace>/sa/<service>``."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service}"


def is_spiffe_id(value: str) -> bool:
    """Whether ``value`` is a workload SPIFFE ID as the SPIFFE standard spells one.

    ``spiffe://`` then a trust domain, then a non-empty path of segments made of letters,
    digits, '.', '-' and '_' ('.' and '..' alone are not segments); nothing else.
    """
    if len(value) > _MAX_ID or not value.startswith("spiffe://"):
        return False
    trust_domain, slash, path = value.removeprefix("spiffe://").partition("/")
    if not slash or not _TRUST_DOMAIN.fullmatch(trust_domain):
        return False
    return all(_SEGMENT.fullmatch(s) and s not in (".", "..") for s in path.split("/"))
