"""The change feed: wakes whoever waits for the registry revision to move past a value.

``await feed.wait_newer(revision, timeout)`` returns the current revision as soon as it is
greater than ``revision`` (at once if it already is), or after ``timeout`` seconds with
the revision unchanged. Request handlers call ``await feed.changed(revision)`` after
each committed change (``Store.write`` does it for them).

Other processes' changes arrive through ``follow``, one background task per server:

- PostgreSQL: ``LISTEN meshpy_changes`` on its own connection; every change NOTIFYs in
  its transaction, so several servers on one database see each other's changes within
  milliseconds. After a reconnect, and every few seconds anyway, the revision is read
  again, so a notification lost with a connection is caught up.
- SQLite: the revision is read every ``poll_interval`` seconds (200 ms by default).

This is the hook the long-poll config endpoint builds on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["ChangeFeed", "follow_postgres", "poll"]

log = logging.getLogger("meshpy.server")

ReadRevision = Callable[[], Awaitable[int]]


class ChangeFeed:
    """The newest registry revision this process knows, and a way to wait for a newer one."""

    def __init__(self, revision: int = 0) -> None:
        self._revision = revision
        self._event = asyncio.Event()
        self._closing = False

    @property
    def closing(self) -> bool:
        """Whether the server is stopping: waits end at once, and no lease is expired."""
        return self._closing

    def close(self) -> None:
        """The server is stopping: wake every waiter, and make later waits return at once.

        Long-polls then end with "unchanged" instead of holding the shutdown, and sidecars
        ask again (another server, or this one restarted).
        """
        self._closing = True
        self._event.set()

    @property
    def revision(self) -> int:
        """The newest revision seen."""
        return self._revision

    async def changed(self, revision: int) -> None:
        """Record that ``revision`` was committed; wakes the waiters if it is newer."""
        if revision <= self._revision:
            return
        self._revision = revision
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_newer(self, revision: int, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for a revision greater than ``revision``; return the
        current revision (still ``<= revision`` on timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._revision <= revision and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._event.wait()
        return self._revision


async def poll(feed: ChangeFeed, read_revision: ReadRevision, interval: float) -> None:
    """Read the revision every ``interval`` seconds and feed it in (runs until cancelled)."""
    while True:
        try:
            await feed.changed(await read_revision())
        except Exception as exc:
            log.debug("reading the revision failed: %s", exc)
        await asyncio.sleep(interval)


async def follow_postgres(
    feed: ChangeFeed,
    conninfo: str,
    read_revision: ReadRevision,
    *,
    channel: str,
    catch_up_every: float = 5.0,
    connect_timeout: int = 3,
) -> None:
    """LISTEN on ``channel`` and feed in every change (runs until cancelled).

    A notification's payload is not trusted as the revision (databases can hold several
    meshes in separate schemas); it only says "read the revision now".
    """
    import psycopg
    from psycopg import sql

    backoff = 0.2
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                conninfo, autocommit=True, connect_timeout=connect_timeout
            ) as conn:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                await feed.changed(await read_revision())
                backoff = 0.2
                while True:
                    received = False
                    async for _ in conn.notifies(timeout=catch_up_every, stop_after=1):
                        received = True
                    if not received:
                        # Quiet for a while: check the connection is alive and catch up.
                        async with asyncio.timeout(catch_up_every):
                            await conn.execute("SELECT 1")
                    await feed.changed(await read_revision())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("change listener: %s; reconnecting in %.1fs", _one_line(exc), backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 5.0)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
