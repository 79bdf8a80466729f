"""Members behind firewalls, with py-libp2p 0.8.1's own circuit relay v2 and DCUtR (none of it written here).

Every online node runs the relay protocol's client side (it accepts circuits opened to it through a relay, and
dials peers known only by a relayed address, `/.../p2p/RELAY/p2p-circuit/p2p/PEER`) and DCUtR, which tries to
replace a relayed connection by a direct one (hole punching). A node started with `relay_service = true` also
relays for others (opt-in: it spends its bandwidth). A node with `relays = [...]` keeps a reservation on each (the
relay then accepts circuits to it) and is reachable at the circuit addresses `addresses()` lists: how an
outbound-only node (no listening port at all) is reached.

What 0.8.1 does that callers must know (measured, FACTS.md): `host.connect` drops `/p2p-circuit` addresses (use
`connect` here); a reserving node advertises no circuit address (`addresses()` does); the relay keeps a circuit
per peer id, so a peer's older circuit ending can end its newer one (a sync retried after that succeeds); a
reservation holds while the connection to the relay does (kept here, re-made when it drops); `data=0` in the
relay's limits means no data at all, not unlimited.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import multiaddr
import trio
from libp2p.relay.circuit_v2 import DCUtRProtocol
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP
from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from libp2p.tools.anyio_service import background_trio_service

from client.p2p.host import IHost, PeerInfo, peer_info

logger = logging.getLogger(__name__)

# What a relay this node runs grants each circuit: no time limit (duration 0 is "none" in 0.8.1) and 1 TiB (a
# Datanet sync is large; 0.8.1's default of 1 GiB cut syncs off mid-transfer), many reservations (a departed
# peer's slot is held until it expires).
SERVICE_LIMITS = RelayLimits(duration=0, data=1 << 40, max_circuit_conns=64, max_reservations=256)
RESERVE_EVERY = 30.0  # seconds between checks that each reservation still holds
DIAL_TIMEOUT = 20.0


class Relays:
    def __init__(
        self,
        host: IHost,
        *,
        serve: bool = False,
        relays: tuple[str, ...] = (),
        on_reserved: Callable[[str, str], None] | None = None,
    ) -> None:
        self.host = host
        self.on_reserved = on_reserved  # (relay peer id, our circuit address): a reservation was made
        self.serve = serve
        self.relays = relays
        self.protocol = CircuitV2Protocol(host, limits=SERVICE_LIMITS if serve else None, allow_hop=serve)
        self.dcutr = DCUtRProtocol(host)
        # Dialling through a relay must not reserve a slot there first (the CLIENT role does): STOP only.
        self._dialer = CircuitV2Transport(host, self.protocol, RelayConfig(roles=RelayRole.STOP))
        self._reserver = CircuitV2Transport(host, self.protocol, RelayConfig(roles=RelayRole.STOP | RelayRole.CLIENT))
        self._reserved: dict[str, str] = {}  # relay address -> our circuit address through it

    def addresses(self) -> list[str]:
        """Where peers reach this node through its relays (`/.../p2p/RELAY/p2p-circuit/p2p/US`)."""
        return sorted(self._reserved.values())

    async def run(self) -> None:
        """The relay protocol (client; hop when serving), DCUtR, and a reservation kept on each relay."""
        async with (
            background_trio_service(self.protocol),
            background_trio_service(self.dcutr),
            trio.open_nursery() as nursery,
        ):
            await self.protocol.event_started.wait()
            if self.serve:
                logger.info("relaying circuits for other peers (relay_service)")
            for address in self.relays:
                nursery.start_soon(self._keep_reservation, address, nursery)
            await trio.sleep_forever()

    async def _keep_reservation(self, address: str, nursery: trio.Nursery) -> None:
        try:
            relay = peer_info(address)
        except ValueError as exc:
            logger.warning("relay skipped: %s", exc)
            return
        ours = f"{address}/p2p-circuit/p2p/{self.host.get_id()}"
        while True:
            if relay.peer_id not in self.host.get_network().connections or address not in self._reserved:
                self._reserved.pop(address, None)
                try:
                    with trio.fail_after(DIAL_TIMEOUT):
                        await self.host.connect(relay)
                        stream = await self.host.new_stream(relay.peer_id, [HOP])
                        try:
                            reserved = await self._reserver.reserve(stream, relay.peer_id, nursery)
                        finally:
                            with contextlib.suppress(Exception):
                                await stream.close()
                except Exception as exc:  # py-libp2p's dial and stream errors share no base class
                    logger.warning("no reservation on relay %s (%s); trying again", relay.peer_id, type(exc).__name__)
                    reserved = False
                if reserved:
                    self._reserved[address] = ours
                    logger.info("reachable through relay %s", relay.peer_id)
                    if self.on_reserved is not None:
                        self.on_reserved(str(relay.peer_id), ours)
            await trio.sleep(RESERVE_EVERY)

    async def connect(self, info: PeerInfo) -> None:
        """`host.connect`, and through a relay for a peer known only by a `/p2p-circuit` address."""
        circuits = [a for a in info.addrs if "/p2p-circuit" in str(a)]
        if not circuits or info.peer_id in self.host.get_network().connections:
            await self.host.connect(info)
            return
        target = multiaddr.Multiaddr(f"{circuits[0]}/p2p/{info.peer_id}")
        with trio.fail_after(DIAL_TIMEOUT):
            await self._dialer.dial(target)
