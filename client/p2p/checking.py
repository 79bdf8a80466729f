"""Checking received records in a process of their own. Each record is hashed, parsed as canonical JSON and fitted
to its Datanet's task (`transfer.record_problem`): pure Python, about 80% of the node's CPU time during a large
sync. Done in the node it holds the interpreter lock most of that time, and the control API's thread (which needs
the lock for every step of an answer) waits behind it; done here the node only hands over the bytes.

One checker process per node, started at the first large frame and kept; small frames (fewer than INLINE_BELOW
records) are checked in place, where a hand-over would cost more than it saves. Why our own code and not a
library: the hand-over is one `ProcessPoolExecutor` of the standard library; what it runs is our check. A checker
that died is started again, and the frame is checked in place meanwhile: the answer is the same either way.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import trio

from client.children import follow_parent
from client.p2p import transfer

logger = logging.getLogger(__name__)

INLINE_BELOW = 64  # records; a frame of fewer is checked in place
Check = Callable[[dict[str, Any]], None] | None

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def first_problem(records: list[tuple[bytes, bytes]], check: Check) -> str | None:
    """The sentence for the first record that may not be stored, or None (run in the checker process)."""
    for record_id, body in records:
        problem = transfer.record_problem(record_id, body, check)
        if problem is not None:
            return problem
    return None


def _checker() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=follow_parent,
                initargs=(os.getpid(), 0),
            )
        return _pool


def _forget(pool: ProcessPoolExecutor) -> None:
    global _pool
    with _pool_lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


async def problem_of(records: list[tuple[bytes, bytes]], check: Check) -> str | None:
    """`first_problem` of these records: in the checker process for a large frame, in place for a small one (or
    one whose check cannot be handed over)."""
    if len(records) < INLINE_BELOW or not _can_hand_over(check):
        return first_problem(records, check)
    pool = _checker()
    try:
        future = pool.submit(first_problem, records, check)
        return await trio.to_thread.run_sync(future.result, abandon_on_cancel=True)  # type: ignore[call-arg]
    except BrokenProcessPool:
        logger.warning("the record checker process died; checking in the node until it is started again")
        _forget(pool)
        return first_problem(records, check)


def _can_hand_over(check: Check) -> bool:
    """A check given as a module-level function or a partial of one pickles; a closure (a test's) does not."""
    if check is None:
        return True
    func = getattr(check, "func", check)
    return "<locals>" not in getattr(func, "__qualname__", "<locals>")
