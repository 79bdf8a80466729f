"""The node's peer book: every peer it met (dialled, synced with, or connected to it), with its address, how it is
reached, its last sync or error, and its latency, measured by one libp2p ping when the `peers` method asks."""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Any

import trio

from client.p2p.host import IHost


@dataclass
class PeerState:
    peer_id: str
    address: str
    transport: str  # "direct" (TCP or WebSocket) or "relayed" (a /p2p-circuit address)
    connected: bool = False
    last_sync: float | None = None
    last_error: str | None = None
    latency_ms: float | None = None


class Peers:
    def __init__(self) -> None:
        self.known: dict[str, PeerState] = {}

    def note(self, peer: str, address: str | None, *, error: str | None = None, sync_done: bool = False) -> None:
        state = self.known.get(peer)
        if state is None:
            where = address or ""
            state = self.known[peer] = PeerState(peer, where, "relayed" if "p2p-circuit" in where else "direct")
        if address:
            state.address = address
        if error is not None:
            state.last_error = error
        if sync_done:
            state.last_sync = time.time()
            state.last_error = None

    async def report(self, host: IHost) -> list[dict[str, Any]]:
        """Every peer met, the connected ones (added if new) with a fresh latency, sorted by peer id."""
        from libp2p.host.ping import PingService

        connected = {str(p): p for p in host.get_network().connections}
        for peer in connected:
            self.note(peer, None)
        pinger = PingService(host)
        for state in self.known.values():
            state.connected = state.peer_id in connected
            if state.connected:  # latency: one libp2p ping, at most a second
                with trio.move_on_after(1.0), contextlib.suppress(Exception):
                    rtts = await pinger.ping(connected[state.peer_id], ping_amt=1)
                    state.latency_ms = float(rtts[0]) if rtts else None
        return [asdict(p) for p in sorted(self.known.values(), key=lambda p: p.peer_id)]
