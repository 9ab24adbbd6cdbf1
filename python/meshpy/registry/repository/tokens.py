"""Join tokens: created with a secret shown once, verified against its hash, listed, deleted."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from meshpy.registry.models import (
    JoinToken,
)
from meshpy.registry.repository._shared import JOIN_TOKEN_PREFIX, _affected


def create_join_token(
    session: Session, *, namespace: str, service: str, ttl: timedelta, now: datetime
) -> tuple[JoinToken, str]:
    """Create a join token; return its row and the token text (shown once, never stored)."""
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    row = JoinToken(
        id=token_id,
        secret_hash=_hash_secret(secret),
        namespace=namespace,
        service=service,
        expires_at=now + ttl,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row, f"{JOIN_TOKEN_PREFIX}{token_id}.{secret}"


def verify_join_token(session: Session, token: str, *, now: datetime) -> JoinToken | None:
    """The unexpired join token that ``token`` is the text of, or None."""
    body = token.removeprefix(JOIN_TOKEN_PREFIX)
    token_id, sep, secret = body.partition(".")
    if body == token or not sep or not token_id or not secret or len(token_id) > 32:
        return None
    row = session.get(JoinToken, token_id)
    if row is None or not hmac.compare_digest(row.secret_hash, _hash_secret(secret)):
        return None
    return row if row.expires_at > now else None


def list_join_tokens(session: Session, namespace: str | None = None) -> list[JoinToken]:
    """Join tokens (without secrets), newest first."""
    query = select(JoinToken).order_by(JoinToken.created_at.desc(), JoinToken.id)
    if namespace is not None:
        query = query.where(JoinToken.namespace == namespace)
    return list(session.scalars(query))


def delete_join_token(session: Session, token_id: str) -> bool:
    """Revoke a join token; False if there is none with this id."""
    return _affected(session.execute(delete(JoinToken).where(JoinToken.id == token_id)))


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
