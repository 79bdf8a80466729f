"""A database lane: one open shard used from a trio task without blocking the event loop.

SQLCipher work (page encryption, HMAC, the WAL) runs in a worker thread, and sqlite3 lets go of the GIL while a
statement runs, so the loop meanwhile decrypts the next Noise frame or verifies the next records. (Writes go in
multi-row statements, `storage.shard.ROWS_PER_INSERT`: a statement per row would hand the GIL back and forth with
the loop for every row.)

One connection has one user at a time, and calls run in the order they were made: one worker task takes them
from a queue, one by one. Writes may run behind: `write_behind` returns once the write is queued (waiting while
`ahead` writes are queued already). The worker is shielded from cancellation and runs until `close`: whatever was
queued runs, even when the session is cancelled meanwhile (verified data is never dropped), and a session that
fails can still queue its last verified records and `drain` them. After a write fails, the writes queued behind it
do not run, and the error is raised by the next call, `write_behind` or `drain`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar, cast

import trio

T = TypeVar("T")


@dataclass
class _Item:
    fn: Callable[[], object]
    write: bool
    done: trio.Event = field(default_factory=trio.Event)
    result: object = None
    error: Exception | None = None


class DbLane:
    """Calls on one connection, off the event loop, one at a time and in order (see the module docstring)."""

    def __init__(self, nursery: trio.Nursery, *, ahead: int = 2) -> None:
        self._send, receive = trio.open_memory_channel[_Item](math.inf)
        self._ahead = ahead
        self._writes = 0  # queued or running
        self._changed = trio.Event()  # set (and replaced) whenever a write finishes
        self._error: Exception | None = None
        nursery.start_soon(self._work, receive)

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` in a worker thread after everything queued before it; its result."""
        self._raise()
        item = _Item(fn, write=False)
        self._send.send_nowait(item)
        await item.done.wait()
        if item.error is not None:
            raise item.error
        self._raise()
        return cast(T, item.result)

    async def write_behind(self, fn: Callable[[], object]) -> None:
        """Queue `fn` after everything queued before it and return without waiting for it to run (waiting only
        while `ahead` writes are queued already)."""
        while self._writes >= self._ahead:
            self._raise()
            await self._changed.wait()
        self._raise()
        self._writes += 1
        self._send.send_nowait(_Item(fn, write=True))

    async def drain(self) -> None:
        """Wait until every queued write has run; raise the first error of any of them."""
        while self._writes:
            await self._changed.wait()
        self._raise()

    def close(self) -> None:
        """No more calls: the worker runs what is queued, then ends."""
        self._send.close()

    async def _work(self, receive: trio.MemoryReceiveChannel[_Item]) -> None:
        with trio.CancelScope(shield=True):  # ends when `close` is called and the queue is empty
            async for item in receive:
                try:
                    if not (item.write and self._error is not None):
                        item.result = await trio.to_thread.run_sync(item.fn)
                except Exception as exc:  # handed to the lane's user, never raised in its nursery
                    if item.write:
                        self._error = self._error or exc
                    else:
                        item.error = exc
                finally:
                    item.done.set()
                    if item.write:
                        self._writes -= 1
                        self._changed.set()
                        self._changed = trio.Event()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
