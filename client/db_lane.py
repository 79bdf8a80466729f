"""A database lane: one open shard used from a trio task without blocking the event loop.

SQLCipher work (page encryption, HMAC, the WAL) runs in a worker thread, and sqlite3 lets go of the GIL while a
statement runs, so the loop meanwhile decrypts the next Noise frame or verifies the next records. (Writes go in
multi-row statements, `storage.shard.ROWS_PER_INSERT`: a statement per row would hand the GIL back and forth with
the loop for every row.) One connection has one user at a time: every call goes through one
`trio.CapacityLimiter(1)`, which is fair (first come, first served), so calls run in the order they were made.
Writes may run behind: `write_behind` returns once the write is queued (at most `ahead` of them); a queued write
always runs, even when the caller is cancelled meanwhile (verified data is never dropped), and the first error of
any of them is raised by the next call, or by `drain`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import trio

T = TypeVar("T")


class DbLane:
    """Calls on one connection, off the event loop, one at a time and in order."""

    def __init__(self, nursery: trio.Nursery, *, ahead: int = 2) -> None:
        self._nursery = nursery
        self._limiter = trio.CapacityLimiter(1)
        self._ahead = ahead
        self._slots = trio.Semaphore(ahead)
        self._error: Exception | None = None

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` in the lane's worker thread after every call made before it; its result."""
        self._raise()
        result = await trio.to_thread.run_sync(fn, limiter=self._limiter)
        self._raise()
        return result

    async def write_behind(self, fn: Callable[[], object]) -> None:
        """Queue `fn` to run after every call made before it, and return without waiting for it to finish
        (waiting only while `ahead` writes are queued already)."""
        self._raise()
        await self._slots.acquire()
        self._nursery.start_soon(self._write, fn)

    async def drain(self) -> None:
        """Wait until every queued write has finished; raise the first error of any of them."""
        for _ in range(self._ahead):
            await self._slots.acquire()
        for _ in range(self._ahead):
            self._slots.release()
        self._raise()

    async def _write(self, fn: Callable[[], object]) -> None:
        try:
            with trio.CancelScope(shield=True):  # queued means it runs: at most `ahead` writes, bounded
                if self._error is None:  # after a failed write, the ones queued behind it do not run
                    await trio.to_thread.run_sync(fn, limiter=self._limiter)
        except Exception as exc:  # kept for the lane's user: raised by its next call, not in the nursery
            if self._error is None:
                self._error = exc
        finally:
            self._slots.release()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
