"""The names of namespaces, services and versions: DNS labels (RFC 1123), as Kubernetes has them."""

from __future__ import annotations

import re

__all__ = ["DNS_LABEL", "is_name"]

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
"""Lowercase letters, digits and '-', 1 to 63 characters, a letter or digit at each end."""

_NAME = re.compile(DNS_LABEL)


def is_name(text: str) -> bool:
    """Whether ``text`` is a valid namespace, service or version name."""
    return _NAME.match(text) is not None
