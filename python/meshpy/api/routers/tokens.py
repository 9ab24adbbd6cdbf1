"""``/api/v1/tokens``: join tokens for the sidecars of one service (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query, status

from meshpy.api import problems
from meshpy.api.deps import AdminDep, StoreDep
from meshpy.api.schemas import DNS_LABEL, TokenCreate, TokenCreated, TokenList, TokenPublic
from meshpy.durations import parse_duration
from meshpy.registry import repository

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])

MAX_TTL_S = 366 * 24 * 3600


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_token(body: TokenCreate, store: StoreDep, _: AdminDep) -> TokenCreated:
    """Create a join token; its secret is in this answer only."""
    ttl = parse_duration(body.ttl)
    if not 0 < ttl.total_seconds() <= MAX_TTL_S:
        raise problems.invalid(
            [problems.ErrorItem(path="ttl", message="must be longer than 0 and at most 366 days")]
        )
    row, token = await store.write(
        repository.create_join_token,
        namespace=body.namespace,
        service=body.service,
        ttl=ttl,
        now=repository.utcnow(),
    )
    public = TokenPublic.model_validate(row, from_attributes=True)
    return TokenCreated(**public.model_dump(), token=token)


@router.get("")
async def list_tokens(
    store: StoreDep,
    _: AdminDep,
    namespace: str | None = Query(default=None, pattern=DNS_LABEL, max_length=63),
) -> TokenList:
    """Join tokens (never their secrets), newest first."""
    rows = await store.read(repository.list_join_tokens, namespace)
    return TokenList(items=[TokenPublic.model_validate(r, from_attributes=True) for r in rows])


@router.delete("/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_token(
    store: StoreDep,
    _: AdminDep,
    token_id: str = Path(pattern=r"^[0-9a-f]{1,32}$"),
) -> None:
    """Revoke a join token: it registers nothing from now on."""
    if not await store.write(repository.delete_join_token, token_id):
        raise problems.not_found(f"join token {token_id}")
