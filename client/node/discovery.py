"""How the node finds its peers: the bootstrap peers from the config (kept connected), mDNS on the LAN (when on),
and Kademlia rounds (each Datanet's provider record put, its providers that are members here dialled). It only
connects; announcements then bring the syncs."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable

import trio

from client.node import control
from client.node.peers import Peers
from client.p2p.host import IHost, PeerInfo, peer_info
from storage.vault import BrokenShard, Vault

logger = logging.getLogger(__name__)


class Discovery:
    def __init__(
        self,
        host: IHost,
        vault: Vault,
        peers: Peers,
        events: control.Events,
        *,
        bootstrap: tuple[str, ...],
        discover_every: float,
        on_connected: Callable[[], None],
        connect: Callable[[PeerInfo], Awaitable[None]],
    ) -> None:
        self.host = host
        self.vault = vault
        self.peers = peers
        self.events = events
        self.bootstrap_peers = bootstrap
        self.discover_every = discover_every  # seconds between DHT rounds
        self.on_connected = on_connected  # a peer newly connected (the node announces every Datanet again)
        self.connect = connect  # host.connect, or through a relay for a /p2p-circuit address (client/p2p/relay.py)

    async def bootstrap(self) -> None:
        """Keep a connection to every bootstrap peer from the config (dialled at start, then every minute)."""
        while True:
            for address in self.bootstrap_peers:
                try:
                    info = peer_info(address)
                except ValueError as exc:
                    logger.warning("bootstrap peer skipped: %s", exc)
                    continue
                if info.peer_id not in self.host.get_network().connections:
                    await self._dial(info, "bootstrap")
            await trio.sleep(60)

    def listen_for_mdns(self, nursery: trio.Nursery) -> None:
        from libp2p.discovery.events.peerDiscovery import peerDiscovery

        send, receive = trio.open_memory_channel[PeerInfo](64)
        token = trio.lowlevel.current_trio_token()

        def found(info: PeerInfo) -> None:  # called on zeroconf's thread
            with contextlib.suppress(trio.RunFinishedError):  # the node is stopping
                token.run_sync_soon(lambda: _offer(send, info))

        peerDiscovery.register_peer_discovered_handler(found)
        nursery.start_soon(self._dial_discovered, receive)

    async def _dial_discovered(self, receive: trio.MemoryReceiveChannel[PeerInfo]) -> None:
        """mDNS finds peers on a thread of its own and dials nobody: dial what it found, once each."""
        async for info in receive:
            if info.peer_id != self.host.get_id() and info.peer_id not in self.host.get_network().connections:
                await self._dial(PeerInfo(info.peer_id, [a for a in info.addrs if "/ws" not in str(a)]), "mdns")

    async def discover(self) -> None:
        """Kademlia: every round, put each Datanet's provider record (key: a hash of its name) and dial the
        providers found that are its members here; announcements then bring the sync."""
        from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
        from libp2p.tools.anyio_service import background_trio_service

        dht = KadDHT(self.host, DHTMode.SERVER)
        async with background_trio_service(dht):
            while True:
                for peer in list(self.host.get_network().connections):
                    with contextlib.suppress(Exception):  # a peer that went away meanwhile
                        await dht.routing_table.add_peer(peer)
                for item in self.vault.each_shard():
                    if isinstance(item, BrokenShard):
                        continue
                    with item as shard:
                        name, shard_uuid, members = shard.info.name, shard.info.uuid, set(shard.members())
                    key = hashlib.sha256(f"datanet:{name}".encode()).hexdigest()
                    try:
                        with trio.move_on_after(20):
                            await dht.provide(key)
                            providers = await dht.find_providers(key)
                    except Exception:  # the DHT is best effort: the next round tries again
                        logger.debug("DHT round for shard %s failed", shard_uuid, exc_info=True)
                        continue
                    for info in providers:
                        if str(info.peer_id) in members and info.peer_id not in self.host.get_network().connections:
                            await self._dial(info, "dht")
                await trio.sleep(self.discover_every)

    async def _dial(self, info: PeerInfo, via: str) -> None:
        peer = str(info.peer_id)
        address = next((f"{a}" if "/p2p/" in str(a) else f"{a}/p2p/{peer}" for a in info.addrs), "")
        self.peers.note(peer, address)
        try:
            with trio.fail_after(10):
                await self.connect(info)
        except Exception as exc:  # py-libp2p's dial errors share no base class
            self.peers.note(peer, address, error=f"cannot connect ({type(exc).__name__})")
            return
        logger.info("connected to %s (found by %s)", peer, via)
        self.events.publish({"type": "peer.up", "peer": peer, "via": via})
        self.on_connected()


def _offer(send: trio.MemorySendChannel[PeerInfo], info: PeerInfo) -> None:
    # A burst of discoveries may fill the queue: such a peer is announced again soon.
    with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
        send.send_nowait(info)
