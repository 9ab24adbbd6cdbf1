"""Run registry work from async request handlers: on worker threads, under a deadline.

``await store.read(fn, ...)`` and ``await store.write(fn, ...)`` call
``fn(session, ...)`` in one transaction on a database thread and return its result. A
write that bumped the revision notifies the change feed after it committed. Whatever
goes wrong below is translated in one place (``_translated``): the database being
unreachable, slow or out of connections becomes ``UnavailableError`` (a 503), and a request
never waits longer than the deadline, even on a connection that hangs. (A write whose
connection hangs past the deadline may still commit if the connection comes back: a 503
means "not known to be applied". Repeating a write is safe: resource writes are
idempotent, and a repeated registration leaves an extra instance that simply expires.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from meshpy.api.changes import ChangeFeed
from meshpy.errors import MeshpyError
from meshpy.registry import repository
from meshpy.registry.db import Database

__all__ = ["Store", "UnavailableError"]

log = logging.getLogger("meshpy.server")

P = ParamSpec("P")
T = TypeVar("T")


class UnavailableError(MeshpyError):
    """The database cannot be used right now; the request may be retried."""


class Store:
    """The registry database as async request handlers use it."""

    def __init__(self, db: Database, feed: ChangeFeed, *, deadline_s: float, workers: int) -> None:
        self.db = db
        self.feed = feed
        self.deadline_s = deadline_s
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="meshpy-db")

    async def read(
        self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(session, *args, **kwargs)`` in a read transaction."""
        result, _ = await self._call(False, fn, *args, **kwargs)
        return result

    async def write(
        self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``fn(session, *args, **kwargs)`` in a write transaction, then tell the change feed."""
        result, revision = await self._call(True, fn, *args, **kwargs)
        if revision is not None:
            await self.feed.changed(revision)
        return result

    def close(self) -> None:
        """Stop the worker threads (waiting for none: a hung one must not block shutdown)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def aclose(self, wait_s: float) -> None:
        """Stop the worker threads, and wait up to ``wait_s`` for one still in a
        transaction: its connection then goes back to the pool before the pool is
        disposed, instead of being left open (a hung one still does not block shutdown)."""
        self.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(self._executor.shutdown, wait=True), wait_s)

    async def _call(
        self,
        write: bool,
        fn: Callable[Concatenate[Session, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> tuple[T, int | None]:
        def work() -> tuple[T, int | None]:
            with _translated(), self.db.transaction(write=write) as session:
                result = fn(session, *args, **kwargs)
                revision = repository.committed_revision(session)
            return result, revision

        try:
            future = self._executor.submit(work)
        except RuntimeError as exc:  # the executor was shut down
            raise UnavailableError("the server is shutting down") from exc
        try:
            async with asyncio.timeout(self.deadline_s):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            future.cancel()  # not started yet: never runs; running: finishes on its own
            log.warning("database did not answer within %gs", self.deadline_s)
            msg = f"the database did not answer within {self.deadline_s:g}s"
            raise UnavailableError(msg) from None


_UNAVAILABLE = (
    sa_exc.OperationalError,  # connection refused/lost, timeouts, "database is locked"
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # no pooled connection free in time
    sa_exc.DisconnectionError,
)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except _UNAVAILABLE as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"]
        log.warning("database unavailable: %s", reason[0])
        raise UnavailableError("the database is unavailable") from exc
