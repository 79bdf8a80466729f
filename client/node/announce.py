"""Announcements over GossipSub: small, rate-limited "Datanet X now has N records, fingerprint F" messages that
make members sync; never record contents, never even the Datanet's name (its topic is a hash of it).

    topic    datanet/announce/1/<first 32 hex digits of SHA-256("datanet:" + name)>
    message  {"v": 1, "records": N, "fp": "<32 hex digits: reconcile.fingerprint of every record id>"}

A node announces a Datanet when its record count changed since the last announcement (checked every
`check_every` seconds), and at least every `refresh` seconds, never more often than every `min_interval`. On an
announcement from a member peer whose (count, fingerprint) differs from ours, it queues a sync with that peer,
at most one per peer and Datanet every `min_interval` seconds. Malformed messages are dropped (and logged).

Who may announce is decided by a topic validator, before GossipSub delivers or forwards anything: py-libp2p
0.8.1's `Pubsub.push_msg` checks the seen-cache and the signature, then runs `validate_msg` (our validator), and
only then `notify_subscriptions` (our handler) and `router.publish` (forwarding to the mesh). The validator
drops an oversized message, one whose signed originator is not a member of that Datanet (the vault's list, or a
peer admitted on chain for a while: see `members.MemberSet`), and one over its sender's rate limit. It never
opens the vault: the member set lives in memory and each round of the periodic check refreshes it from the
shards it reads anyway.

Replays: GossipSub drops a message whose id (originator + sequence number) it saw within `SEEN_TTL` seconds (120,
and each sighting starts that again). A signed announcement replayed after a longer silence is new to it: it
runs the validator again (the validation cache, which would skip the validator, is kept shorter than the seen
cache for that reason), so replays count against the originator's rate limit. A replay that passes can queue
one sync with the member it names, which costs a reconciliation and transfers nothing once in step.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from client.node.members import MemberSet, RateLimit, Verdict, topic
from client.p2p.host import ID, IHost  # imports libp2p the project's way (warnings, logging) first
from client.p2p.reconcile import fingerprint
from storage.shard import Shard
from storage.vault import BrokenShard, Vault

logger = logging.getLogger(__name__)
MAX_MESSAGE = 256
SEEN_TTL = 120  # seconds GossipSub remembers a message id (py-libp2p's default)
VALIDATION_CACHE_TTL = 60  # < SEEN_TTL: a message new to the seen cache is validated again (rate limit)

__all__ = ["Announcer", "MemberSet", "RateLimit", "Verdict", "topic"]


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
        rate_limit: RateLimit | None = None,
        on_dropped: Callable[[str, str, Verdict], None] | None = None,
        gossip: bool = True,
    ) -> None:
        self.host = host
        self.vault = vault
        self.queue_sync = queue_sync  # (datanet, peer address) -> None
        self.on_dropped = on_dropped  # (datanet, peer id, why) after the validator dropped an announcement
        self.check_every = check_every
        self.refresh = refresh
        self.min_interval = min_interval
        self.members = MemberSet(rate_limit)  # updated from the vault here; the node calls members.admit
        self._announced: dict[str, Announced] = {}
        self._own: dict[str, tuple[int, str, float]] = {}  # name -> (count, fingerprint, when computed)
        self._uuids: dict[str, str] = {}  # name -> shard uuid: what the log names a Datanet by (never its name)
        self._topics: dict[str, str] = {}  # topic -> Datanet name, once subscribed
        self._last_sync: dict[tuple[str, str], float] = {}
        self.received = 0
        self.published = 0
        self.dropped = 0
        self.gossip = gossip
        if not gossip:  # an offline node: no gossip protocol on the host at all (a peer cannot open it)
            return
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
        self.pubsub = Pubsub(host, self.gossipsub, seen_ttl=SEEN_TTL, validation_cache_ttl=VALIDATION_CACHE_TTL)

    def poke(self) -> None:
        """A new peer is connected: announce every Datanet again at the next round (rate limits still apply)."""
        for state in self._announced.values():
            state.records = -1

    def _read_vault(self) -> list[str]:
        """One pass over the shards per round: each readable Datanet's member list (into `members`) and its
        (record count, fingerprint of every id). The fingerprint reads every id, so it is computed again only
        when the count changed or the last one is older than `refresh`. Returns the names read."""
        names: list[str] = []
        try:
            for item in self.vault.each_shard():
                if isinstance(item, BrokenShard):
                    continue  # keeps its last member set; the vault logged why
                try:
                    with item as shard:
                        self.members.update(shard.info.name, shard.members())
                        self._read_state(shard)
                except Exception:  # a shard that vanished or cannot be read now: try again next round
                    logger.debug("cannot read a Datanet for announcements", exc_info=True)
                    continue
                names.append(shard.info.name)
        except Exception:
            logger.warning("cannot list the vault's Datanets for announcements", exc_info=True)
        return names

    def _read_state(self, shard: Shard) -> None:
        name, count, now = shard.info.name, shard.count(), time.monotonic()
        self._uuids[name] = shard.info.uuid
        known = self._own.get(name)
        if known is not None and known[0] == count and now - known[2] < self.refresh:
            return
        ids = shard.ids()
        self._own[name] = (len(ids), fingerprint(ids).hex(), now)

    async def run(self) -> None:
        from libp2p.tools.anyio_service import background_trio_service

        async with background_trio_service(self.pubsub), background_trio_service(self.gossipsub):
            await self.pubsub.wait_until_ready()
            async with trio.open_nursery() as nursery:
                while True:
                    for name in self._read_vault():
                        topic_id = topic(name)
                        if topic_id not in self._topics:
                            # The validator first: nothing may arrive on the topic before it is in place.
                            self.pubsub.set_topic_validator(topic_id, self._validator(topic_id), False)
                            subscription = await self.pubsub.subscribe(topic_id)
                            self._topics[topic_id] = name
                            nursery.start_soon(self._listen, name, topic_id, subscription)
                        await self._maybe_announce(name)
                    await trio.sleep(self.check_every)

    def _validator(self, topic_id: str) -> Callable[[ID, Any], bool]:
        """The synchronous GossipSub validator of one topic; `Pubsub.push_msg` runs it before delivering or
        forwarding a message. It never raises: an exception would escape `push_msg`."""

        def validate(forwarder: ID, message: Any) -> bool:
            try:
                return self._judge(topic_id, forwarder, message)
            except Exception:
                logger.exception("announcement validator failed; dropping the message")
                return False

        return validate

    def _judge(self, topic_id: str, forwarder: ID, message: Any) -> bool:
        sender, own = ID(message.from_id), self.host.get_id()
        if sender == own:
            return bool(forwarder == own)  # what we publish; a copy of ours from elsewhere is dropped
        peer = sender.to_base58()
        if len(message.data) > MAX_MESSAGE:
            verdict = Verdict.OVERSIZED
        else:
            verdict = self.members.check(topic_id, peer, time.monotonic())
        if verdict is Verdict.ACCEPTED:
            return True
        self.dropped += 1
        name = self.members.name_of(topic_id) or topic_id
        logger.debug("dropped an announcement on topic %s from %s: %s", topic_id[:16], peer, verdict.value)
        if self.on_dropped is not None:
            self.on_dropped(name, peer, verdict)
        return False

    async def _maybe_announce(self, name: str) -> None:
        now = time.monotonic()
        last = self._announced.get(name)
        if last is not None and now - last.at < self.min_interval:
            return
        own = self._own.get(name)
        if own is None:
            return
        records, fp, _ = own
        if last is not None and (records, fp) == (last.records, last.fp) and now - last.at < self.refresh:
            return
        if not self.host.get_network().connections:
            return  # nobody to tell yet; the next round tries again
        message = json.dumps({"v": 1, "records": records, "fp": fp[:32]}, separators=(",", ":")).encode()
        await self.pubsub.publish(topic(name), message)
        self._announced[name] = Announced(records, fp, now)
        self.published += 1
        logger.info("announced shard %s: %d records", self._uuids.get(name, "?"), records)

    async def _listen(self, name: str, topic_id: str, subscription: Any) -> None:
        async for message in subscription:
            sender = ID(message.from_id)
            if sender == self.host.get_id():
                continue
            self.received += 1
            self._on_announcement(name, topic_id, str(sender), bytes(message.data))

    def _on_announcement(self, name: str, topic_id: str, peer: str, data: bytes) -> None:
        """A validated announcement (from a member, within its rate limit). Never opens the vault: our own state
        is the one the last round read."""
        parsed = _parse(data)
        if parsed is None:
            logger.warning("dropped a malformed announcement for shard %s from %s", self._uuids.get(name, "?"), peer)
            return
        now = time.monotonic()
        if not self.members.is_member(topic_id, peer, now):  # removed since the validator let it through
            return
        mine = self._own.get(name)
        if mine is not None and (mine[0], mine[1][:32]) == parsed:
            return  # already in step
        if now - self._last_sync.get((name, peer), -1e9) < self.min_interval:
            return
        address = self._address(peer)
        if address is None:
            return
        self._last_sync[(name, peer)] = now
        logger.info("announcement from %s for shard %s differs from ours: syncing", peer, self._uuids.get(name, "?"))
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
