"""The change feed: waiters wake on a newer revision, and only then."""

from __future__ import annotations

import asyncio
import time

from meshpy.api.changes import ChangeFeed, poll


def test_wait_newer_returns_at_once_when_already_newer() -> None:
    async def main() -> None:
        feed = ChangeFeed(5)
        assert await feed.wait_newer(4, timeout=10) == 5

    asyncio.run(main())


def test_wait_newer_times_out_unchanged() -> None:
    async def main() -> None:
        feed = ChangeFeed(5)
        start = time.monotonic()
        assert await feed.wait_newer(5, timeout=0.1) == 5
        assert 0.09 <= time.monotonic() - start < 1

    asyncio.run(main())


def test_changed_wakes_every_waiter_and_ignores_older_revisions() -> None:
    async def main() -> None:
        feed = ChangeFeed(1)
        waiters = [asyncio.create_task(feed.wait_newer(1, timeout=5)) for _ in range(3)]
        slow = asyncio.create_task(feed.wait_newer(2, timeout=5))
        await asyncio.sleep(0.01)
        await feed.changed(1)  # not newer: nobody wakes
        await asyncio.sleep(0.01)
        assert not any(w.done() for w in waiters)
        await feed.changed(2)
        assert await asyncio.gather(*waiters) == [2, 2, 2]
        assert not slow.done()
        await feed.changed(4)
        assert await slow == 4
        await feed.changed(3)
        assert feed.revision == 4

    asyncio.run(main())


def test_poll_feeds_the_revision_and_survives_errors() -> None:
    async def main() -> None:
        feed = ChangeFeed()
        answers: list[int | Exception] = [RuntimeError("db down"), 3, 7]

        async def read() -> int:
            answer = answers.pop(0) if answers else 7
            if isinstance(answer, Exception):
                raise answer
            return answer

        task = asyncio.create_task(poll(feed, read, 0.01))
        assert await feed.wait_newer(6, timeout=2) == 7
        task.cancel()

    asyncio.run(main())
