"""Flower's daemons as the node starts them: `python -m client.federation.guard node <flower-supernode arguments>`
and `... guard link <flower-superlink arguments>`. Both leave, with every process they started (their session's
group: Flower's SuperExec and app processes), when the node that started them is gone, so a SIGKILLed node leaves
no Flower process behind. The SuperLink answers its Control and Runtime APIs on loopback only (`LoopbackOnly`).

A member's SuperNode is Flower's own, except that a run's app bundle is refused, before any of it is unpacked or
run, unless its SHA-256 is `DATANET_FAB_SHA256` (the FAB this client builds itself, client/federation/fab.py).

Flower 1.42 has no public switch for this (its `--trusted-entities` needs signatures only Flower's hub issues), so
this wraps the one place the SuperNode fetches a FAB: the `get_fab` of the connection that
`start_client_internal` opens (`http_request_response`, a module-level name there). A refusal ends the process at
once with exit code `REFUSED_EXIT` (an exception would be swallowed by Flower's connection loop, and its own
`flwr_exit` from that thread ends the process with 1 after retries); the member's node sees that exit, says so in
one sentence and stops the rest of the SuperNode's process group. Tested by tests/test_federation_units.py with
a coordinator's app of its own.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

REFUSED_EXIT = 86  # ours: Flower's codes (300 and up) do not fit in an exit status
NODE_POLL = 0.5  # seconds between a SuperNode's pulls when idle (Flower's 3 s, capped: see _Poll)
FAB_INDEX = 4  # (node_id, receive, send, get_run, get_fab, ...) as start_client_internal unpacks it


class LoopbackOnly:
    """ASGI middleware for the SuperLink: members (any address) reach the Fleet API and the health check; the
    Control API (runs, node keys) and the Runtime API (the ServerApp's tasks) answer on loopback only. Flower
    serves all three on one port, and its open-source build authenticates none of the last two, so without this
    anyone who reaches the port could start a run of their own code on the coordinator."""

    PUBLIC = ("/v1/fleet/", "/health")

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and not str(scope.get("path", "")).startswith(self.PUBLIC):
            client = scope.get("client") or ("", 0)
            if not _loopback(str(client[0])):
                await send(
                    {"type": "http.response.start", "status": 403, "headers": [(b"content-type", b"text/plain")]}
                )
                await send({"type": "http.response.body", "body": b"this API answers on loopback only\n"})
                return
        await self.app(scope, receive, send)


class _Poll:
    """A module's `time`, with its sleeps capped: Flower's SuperNode waits 3 s after a pull that brought nothing,
    and its ServerApp's grid 3 s between pulls for replies; secure aggregation is four exchanges a round, so those
    waits alone made up a fifth of a round here."""

    def __init__(self, cap: float) -> None:
        self.cap = cap

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, self.cap))


def poll_faster(module: Any, cap: float) -> None:
    """Cap the sleeps of one of Flower's modules (by its own `time` name only; nothing else changes)."""
    setattr(module, "time", _Poll(cap))  # noqa: B010


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def follow_node(parent: int) -> None:
    """End this process's group when `parent` (the node) is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True, name="follow-node").start()


def main() -> int:
    role = sys.argv.pop(1) if len(sys.argv) > 1 else ""
    follow_node(os.getppid())
    if role == "link":
        import flwr.superlink.main as link
        from flwr.superlink.cli import flower_superlink
        from starlette.middleware import Middleware

        middleware = link._get_middleware  # the one place the SuperLink's app takes its middleware
        setattr(link, "_get_middleware", lambda: [Middleware(LoopbackOnly), *middleware()])  # noqa: B010
        sys.argv[0] = "flower-superlink"
        flower_superlink()
        return 0
    if role != "node":
        sys.stderr.write("usage: python -m client.federation.guard node|link <Flower's arguments>\n")
        return 2
    return supernode()


def supernode() -> int:
    import flwr.supernode.start_client_internal as internal
    from flwr.supernode.cli.flower_supernode import flower_supernode

    expected = os.environ.get("DATANET_FAB_SHA256", "").strip().lower()
    if len(expected) != 64:
        sys.stderr.write("datanet: no app hash to check runs against (DATANET_FAB_SHA256)\n")
        return 2
    opened: Any = getattr(internal, "http_request_response")  # noqa: B009  (not re-exported by flwr)

    @contextmanager
    def guarded(*args: Any, **kwargs: Any) -> Iterator[tuple[Any, ...]]:
        with opened(*args, **kwargs) as connection:
            parts = list(connection)
            get_fab = parts[FAB_INDEX]

            def checked(fab_hash: str, run_id: int) -> Any:
                fab = get_fab(fab_hash, run_id)
                actual = hashlib.sha256(fab.content).hexdigest()
                if actual != expected or fab.hash_str != expected:
                    sys.stderr.write(
                        f"datanet: refused the app of run {run_id}: its hash {actual[:16]} is not this client's "
                        f"{expected[:16]}\n"
                    )
                    sys.stderr.flush()
                    os._exit(REFUSED_EXIT)  # at once, from this thread: Flower would retry, or exit 1
                return fab

            parts[FAB_INDEX] = checked
            yield tuple(parts)

    setattr(internal, "http_request_response", guarded)  # noqa: B010
    poll_faster(internal, NODE_POLL)
    sys.argv[0] = "flower-supernode"
    flower_supernode()
    return 0


if __name__ == "__main__":
    sys.exit(main())
