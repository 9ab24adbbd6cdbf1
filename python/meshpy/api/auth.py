"""Who may call what: the admin token, and join tokens scoped to one service.

- The admin token is made on the server's first start and kept in ``<home>/admin-token``
  (mode 0600); the CLI reads it from there. Every admin call sends it as
  ``Authorization: Bearer <token>``.
- A join token (``POST /api/v1/tokens``) lets the sidecars of one namespace/service
  register and keep their instances; it grants nothing else.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ADMIN_TOKEN_PREFIX", "Principal", "is_admin_token", "load_or_create_admin_token"]

ADMIN_TOKEN_PREFIX = "mpa_"


@dataclass(frozen=True)
class Principal:
    """Who made a request: the admin, or the holder of a join token for one service."""

    admin: bool
    namespace: str | None = None
    service: str | None = None
    token_id: str | None = None

    def may_manage(self, namespace: str, service: str) -> bool:
        """Whether this caller may register and keep instances of ``namespace``/``service``."""
        return self.admin or (self.namespace == namespace and self.service == service)


def load_or_create_admin_token(path: Path) -> str:
    """Read the admin token at ``path``, or create it there (mode 0600) if there is none."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing = path.read_text(encoding="utf-8").strip()
        if not existing:
            msg = f"{path} is empty: delete it to have a new admin token made"
            raise ValueError(msg) from None
        return existing
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


def is_admin_token(presented: str, admin_token: str) -> bool:
    """Constant-time comparison of a presented bearer token with the admin token."""
    return hmac.compare_digest(presented.encode(), admin_token.encode())
