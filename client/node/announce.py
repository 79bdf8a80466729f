"""Announcements over GossipSub: small, rate-limited "Datanet X now has N records, fingerprint F" messages that
make members sync; never record contents, never even the Datanet's name (its topic is a hash of it).

    topic    datanet/announce/1/<first 32 hex digits of SHA-256("datanet:" + name)>
    message  {"v": 1, "records": N, "fp": "<32 hex digits: reconcile.fingerprint of every record id>"}

A node announces a Datanet when its record count changed since the last announcement (checked every
`check_every` seconds), and at least every `refresh` seconds, never more often than every `min_interval`. On an
announcement from a member peer whose (count, fingerprint) differs from ours, it queues a sync with that peer,
at most one per peer and Datanet every `min_interval` seconds. Messages from non-members, malformed or
oversized ones are dropped (and logged).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from client.p2p.host import ID, IHost  # imports libp2p the project's way (warnings, logging) first
from client.p2p.reconcile import fingerprint
from storage.vault import Vault

logger = logging.getLogger(__name__)
MAX_MESSAGE = 256


def topic(name: str) -> str:
    return "datanet/announce/1/" + hashlib.sha256(f"datanet:{name}".encode()).hexdigest()[:32]


@dataclass
class Announced:
    records: int
    fp: str
    at: float


class Announcer:
    def __init__(
        self,
        host: IHost,
        vault: Vault,
        queue_sync: Callable[[str, str], None],
        *,
        check_every: float = 5.0,
        refresh: float = 300.0,
        min_interval: float = 5.0,
    ) -> None:
        self.host = host
        self.vault = vault
        self.queue_sync = queue_sync  # (datanet, peer address) -> None
        self.check_every = check_every
        self.refresh = refresh
        self.min_interval = min_interval
        from libp2p.pubsub.gossipsub import PROTOCOL_ID as GOSSIPSUB
        from libp2p.pubsub.gossipsub import GossipSub
        from libp2p.pubsub.pubsub import Pubsub

        self.gossipsub = GossipSub(
            protocols=[GOSSIPSUB],
            degree=6,
            degree_low=2,
            degree_high=12,
            heartbeat_initial_delay=0.1,
            heartbeat_interval=1,
        )
        self.pubsub = Pubsub(host, self.gossipsub)
        self._announced: dict[str, Announced] = {}
        self._own: dict[str, tuple[int, str, float]] = {}  # name -> (count, fingerprint, when computed)
        self._topics: dict[str, str] = {}  # topic -> Datanet name
        self._last_sync: dict[tuple[str, str], float] = {}
        self.received = 0
        self.published = 0

    def poke(self) -> None:
        """A new peer is connected: announce every Datanet again at the next round (rate limits still apply)."""
        for state in self._announced.values():
            state.records = -1

    def _state(self, name: str) -> tuple[int, str] | None:
        """(record count, fingerprint of every id). The fingerprint reads every id, so it is computed again only
        when the count changed or the last one is older than `refresh` (this runs every few seconds)."""
        try:
            with self.vault.open_shard(name) as shard:
                count = shard.count()
                known = self._own.get(name)
                if known is not None and known[0] == count and time.monotonic() - known[2] < self.refresh:
                    return known[0], known[1]
                ids = shard.ids()
        except Exception:  # a shard that vanished or cannot be read now: try again next round
            logger.debug("cannot read Datanet %r for an announcement", name, exc_info=True)
            return None
        fp = fingerprint(ids).hex()
        self._own[name] = (len(ids), fp, time.monotonic())
        return len(ids), fp

    def _names(self) -> list[str]:
        return [info.name for info in self.vault.list_shards()]

    async def run(self) -> None:
        from libp2p.tools.anyio_service import background_trio_service

        async with background_trio_service(self.pubsub), background_trio_service(self.gossipsub):
            await self.pubsub.wait_until_ready()
            async with trio.open_nursery() as nursery:
                while True:
                    for name in self._names():
                        if name not in self._topics.values():
                            subscription = await self.pubsub.subscribe(topic(name))
                            self._topics[topic(name)] = name
                            nursery.start_soon(self._listen, name, subscription)
                        await self._maybe_announce(name)
                    await trio.sleep(self.check_every)

    async def _maybe_announce(self, name: str) -> None:
        now = time.monotonic()
        last = self._announced.get(name)
        if last is not None and now - last.at < self.min_interval:
            return
        state = self._state(name)
        if state is None:
            return
        records, fp = state
        if last is not None and (records, fp) == (last.records, last.fp) and now - last.at < self.refresh:
            return
        if not self.host.get_network().connections:
            return  # nobody to tell yet; the next round tries again
        message = json.dumps({"v": 1, "records": records, "fp": fp[:32]}, separators=(",", ":")).encode()
        await self.pubsub.publish(topic(name), message)
        self._announced[name] = Announced(records, fp, now)
        self.published += 1
        logger.info("announced Datanet %r: %d records", name, records)

    async def _listen(self, name: str, subscription: Any) -> None:
        async for message in subscription:
            sender = ID(message.from_id)
            if sender == self.host.get_id():
                continue
            self.received += 1
            self._on_announcement(name, str(sender), bytes(message.data))

    def _on_announcement(self, name: str, peer: str, data: bytes) -> None:
        parsed = _parse(data)
        if parsed is None:
            logger.warning("dropped a malformed announcement for %r from %s", name, peer)
            return
        try:
            with self.vault.open_shard(name) as shard:
                member = shard.is_member(peer)
        except Exception:
            return
        if not member:
            logger.info("ignored an announcement for %r from %s: not a member", name, peer)
            return
        mine = self._state(name)
        if mine is not None and (mine[0], mine[1][:32]) == parsed:
            return  # already in step
        now = time.monotonic()
        if now - self._last_sync.get((name, peer), -1e9) < self.min_interval:
            return
        address = self._address(peer)
        if address is None:
            return
        self._last_sync[(name, peer)] = now
        logger.info("announcement from %s for %r differs from ours: syncing", peer, name)
        self.queue_sync(name, address)

    def address_of(self, peer: str) -> str | None:
        """A dialable address of a connected peer, or None."""
        try:
            peer_id = ID.from_base58(peer)
        except Exception:
            return None
        if peer_id not in self.host.get_network().connections:
            return None
        return self._address(peer)

    def _address(self, peer: str) -> str | None:
        try:
            addresses = self.host.get_peerstore().addrs(ID.from_base58(peer))
        except Exception:
            return None
        for address in addresses:
            text = str(address)
            if "/ws" not in text:
                return text if "/p2p/" in text else f"{text}/p2p/{peer}"
        return None


def _parse(data: bytes) -> tuple[int, str] | None:
    if len(data) > MAX_MESSAGE:
        return None
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("v") != 1:
        return None
    records, fp = doc.get("records"), doc.get("fp")
    if not isinstance(records, int) or records < 0 or not isinstance(fp, str) or len(fp) != 32:
        return None
    try:
        bytes.fromhex(fp)
    except ValueError:
        return None
    return records, fp
