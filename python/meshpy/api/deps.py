"""Typed dependencies of the request handlers (``Annotated`` aliases, FastAPI style).

- ``StoreDep``: the registry. Handlers ``await store.read(repository.fn, ...)`` or
  ``store.write(...)``; the unit of work runs on a database thread under the request
  deadline, so there is no Session in a handler (unlike the template's ``SessionDep``): a
  hung database connection then costs a 503, never a stuck request.
- ``SettingsDep``, ``StateDep``: the server settings and the app's shared state.
- ``AdminDep``: the caller presented the admin token (else 401, or 403 for a join token).
- ``JoinTokenDep``: the caller presented the admin token or an unexpired join token;
  the handler checks the token's scope with ``Principal.may_manage``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from meshpy.api import problems
from meshpy.api.auth import Principal, is_admin_token
from meshpy.api.state import AppState
from meshpy.api.store import Store
from meshpy.registry import repository
from meshpy.settings import Settings

__all__ = ["AdminDep", "JoinTokenDep", "SettingsDep", "StateDep", "StoreDep"]

_bearer = HTTPBearer(
    auto_error=False,
    description="The admin token (<home>/admin-token) or, for instances, a join token.",
)


def get_state(request: Request) -> AppState:
    """The app's shared state, set by its lifespan."""
    state: AppState = request.app.state.meshpy
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_store(state: StateDep) -> Store:
    """The registry store."""
    return state.store


def get_settings(state: StateDep) -> Settings:
    """The server settings."""
    return state.settings


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _presented(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise problems.unauthorized("send the admin token as 'Authorization: Bearer <token>'")
    return credentials.credentials


async def require_admin(state: StateDep, credentials: Credentials) -> Principal:
    """The admin, or 401 (no or unknown token) / 403 (a join token)."""
    token = _presented(credentials)
    if is_admin_token(token, state.admin_token):
        return Principal(admin=True)
    if token.startswith(repository.JOIN_TOKEN_PREFIX):
        raise problems.forbidden("a join token only registers instances; use the admin token")
    raise problems.unauthorized("the token is not valid")


async def require_join_token(state: StateDep, credentials: Credentials) -> Principal:
    """The admin or the holder of an unexpired join token, or 401."""
    token = _presented(credentials)
    if is_admin_token(token, state.admin_token):
        return Principal(admin=True)
    row = await state.store.read(repository.verify_join_token, token, now=repository.utcnow())
    if row is None:
        raise problems.unauthorized("the token is not valid or has expired")
    return Principal(admin=False, namespace=row.namespace, service=row.service, token_id=row.id)


AdminDep = Annotated[Principal, Depends(require_admin)]
JoinTokenDep = Annotated[Principal, Depends(require_join_token)]
