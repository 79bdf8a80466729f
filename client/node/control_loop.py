"""The control API's own thread: a second trio loop that serves the node's socket (`api.sock`, behind the
control front, front.py, which answers `status` and `records.count` in a process of its own), so an answer never
waits behind the node's loop while a sync verifies and stores records. Handlers that only read (or work in a
thread of their own: the vault, the chain, the journal) run in this loop; the ones that change the node loop's
state (queueing and cancelling jobs, dialling, the announcement validator's member set, stopping) are forwarded to
the node's loop and awaited from here. Events are fanned out here too (control.Events.attach).

Why a thread of our own and not a library: trio has no priorities between tasks, and the CPU-bound part of a
sync (hashing and checking each record) runs in slices on the node's loop; a second loop is the smallest change
that lets the socket be answered between those slices. Both loops share the GIL, so the node shortens the
interpreter's switch interval (SWITCH_INTERVAL) for this thread to get it promptly; what a client asks most often
(`status`, `records.count`) the front answers without the GIL (the ratio under load went from 10 to about 3).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Collection
from pathlib import Path
from typing import Any

import trio

from client.node import control

SWITCH_INTERVAL = 0.001  # seconds a thread holding the GIL keeps it when another asks (CPython's default: 0.005)


def forwarded(handler: control.Handler, token: trio.lowlevel.TrioToken) -> control.Handler:
    """`handler`, run in the loop of `token` (the node's) and awaited from the control loop."""

    async def call(params: dict[str, Any]) -> Any:
        return await trio.to_thread.run_sync(  # trio-typing's stubs predate abandon_on_cancel (trio 0.23)
            lambda: trio.from_thread.run(handler, params, trio_token=token),
            abandon_on_cancel=True,  # type: ignore[call-arg]
        )

    return call


async def serve_in_thread(
    path: Path,
    methods: dict[str, control.Handler],
    events: control.Events,
    *,
    on_node_loop: Collection[str],
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control API on `path` from a thread of its own until cancelled; the methods named in
    `on_node_loop` run in the caller's loop (the node's). Started once the socket listens."""
    node_token = trio.lowlevel.current_trio_token()
    served = {
        name: forwarded(handler, node_token) if name in on_node_loop else handler for name, handler in methods.items()
    }
    started = threading.Event()
    held: dict[str, Any] = {}

    async def control_main() -> None:
        async with trio.open_nursery() as nursery:
            held["token"], held["scope"] = trio.lowlevel.current_trio_token(), nursery.cancel_scope
            events.attach(held["token"])
            await nursery.start(control.serve, path, served, events)
            started.set()

    def run() -> None:
        try:
            trio.run(control_main)
        except BaseException as exc:  # reported to the node's loop below, which fails with it
            held["failure"] = exc
        finally:
            events.attach(None)
            started.set()

    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, SWITCH_INTERVAL))
    thread = threading.Thread(target=run, name="control-api", daemon=True)
    thread.start()
    try:
        await trio.to_thread.run_sync(started.wait)
        if "failure" in held:
            raise held["failure"]
        task_status.started()
        await trio.to_thread.run_sync(lambda: thread.join(), abandon_on_cancel=True)  # type: ignore[call-arg]
        if "failure" in held:
            raise held["failure"]
    finally:
        if thread.is_alive():
            with contextlib.suppress(trio.RunFinishedError):
                held["token"].run_sync_soon(held["scope"].cancel)
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(thread.join)
        sys.setswitchinterval(previous)
