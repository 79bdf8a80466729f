"""The database lane (client/db_lane.py): calls and writes run one at a time in the order they were made, off the
event loop; a queued write runs even when its caller is cancelled; `drain` waits for every write and survives a
cancellation; a failed write stops the ones behind it and is raised to the lane's user, never in its nursery."""

from __future__ import annotations

import threading

import pytest
import trio

from client.db_lane import DbLane


def test_calls_and_writes_run_in_the_order_made_and_off_the_event_loop() -> None:
    order: list[str] = []
    threads: set[int] = set()

    def step(name: str) -> str:
        threads.add(threading.get_ident())
        order.append(name)
        return name

    async def main() -> str:
        async with trio.open_nursery() as nursery:
            lane = DbLane(nursery, ahead=2)
            await lane.write_behind(lambda: step("w1"))
            await lane.write_behind(lambda: step("w2"))
            got = await lane.call(lambda: step("read"))  # after both writes, though none was awaited
            await lane.write_behind(lambda: step("w3"))
            await lane.drain()
            lane.close()
        return got

    assert trio.run(main) == "read"
    assert order == ["w1", "w2", "read", "w3"]
    assert threading.get_ident() not in threads


def test_a_queued_write_runs_when_the_caller_is_cancelled_and_drain_survives_a_cancel() -> None:
    release = threading.Event()
    done: list[str] = []

    def slow(name: str) -> None:
        release.wait(10)
        done.append(name)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            lane = DbLane(nursery, ahead=1)
            await lane.write_behind(lambda: slow("first"))
            with trio.move_on_after(0.2) as waiting:  # no room: this wait is cancelled, nothing queued
                await lane.write_behind(lambda: slow("never queued"))
            assert waiting.cancelled_caught
            with trio.move_on_after(0.2) as draining:  # a cancelled drain takes nothing with it
                await lane.drain()
            assert draining.cancelled_caught
            release.set()
            await lane.drain()  # and a later one still ends
            with trio.CancelScope() as scope:  # the session is cancelled with a write queued: it still runs
                await lane.write_behind(lambda: slow("queued then cancelled"))
                scope.cancel()
                await trio.lowlevel.checkpoint()  # cancelled here
            lane.close()
            nursery.cancel_scope.cancel()  # the worker is shielded: it finishes the queue first

    trio.run(main)
    assert done == ["first", "queued then cancelled"]


def test_a_failed_write_stops_the_writes_behind_it_and_is_raised_to_the_user() -> None:
    ran: list[str] = []

    def fail() -> None:
        raise OSError("disk full")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            lane = DbLane(nursery, ahead=3)
            await lane.write_behind(fail)
            await lane.write_behind(lambda: ran.append("behind"))
            with pytest.raises(OSError, match="disk full"):
                await lane.drain()
            with pytest.raises(OSError, match="disk full"):
                await lane.call(lambda: ran.append("read"))
            lane.close()

    trio.run(main)  # the nursery ended normally: the error never escaped into it
    assert ran == []
