"""Who may announce on a Datanet's GossipSub topic, decided in memory (pure logic: no libp2p, no vault, no clock).

The announcement topic validator asks `MemberSet.check` about every announcement before GossipSub delivers or
forwards it, so the answer must never open the vault. The set holds, per topic (a hash of the Datanet's name):

    listed    the peer ids the vault lists as members; `update(name, members)` replaces them. The announcer
              refreshes them on every round of its periodic check (it reads each shard then anyway), and the
              node calls it when it changes a member list itself.
    admitted  peers admitted by on-chain membership (a credential during a sync session), which the vault does
              not list: `admit(name, peer, until)` lets one announce until `until`.
    buckets   one token bucket per allowed sender: `RateLimit.burst` announcements back to back, then
              `RateLimit.per_minute` a minute. An announcement over the limit is rejected (not delivered, not
              forwarded). Only allowed senders get a bucket, so memory is bounded by the members, not by
              whoever sends.

Times are seconds on one monotonic clock, passed in by the caller (`time.monotonic()` in the node).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_ADMITTED = 1024  # chain-admitted peers kept per Datanet; past that, the admission that ends first goes
# How long a peer admitted on chain (during a sync session) may announce. It only lets announcements through:
# every sync one queues checks membership on chain again, so a revoked member costs refused syncs, rate-limited.
CHAIN_ADMISSION_TTL = 600.0


def topic(name: str) -> str:
    """The GossipSub topic of a Datanet's announcements: a hash of its name, never the name itself."""
    return "datanet/announce/1/" + hashlib.sha256(f"datanet:{name}".encode()).hexdigest()[:32]


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    UNKNOWN_TOPIC = "not a Datanet of ours"
    NOT_A_MEMBER = "not a member"
    RATE_LIMITED = "over the rate limit"
    OVERSIZED = "oversized"  # decided by the validator before it asks the member set


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Per sender and topic. The announcer itself sends at most one announcement every `min_interval` (5 s by
    default) and only when its Datanet changed, so a member that imports for minutes can go over this: the
    dropped announcements cost only latency, since any accepted one makes the receiver sync everything, and the
    receiver announces its own new state afterwards."""

    per_minute: float = 6.0
    burst: float = 3.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float

    def take(self, limit: RateLimit, now: float) -> bool:
        elapsed = max(0.0, now - self.at)  # a clock read out of order refills nothing
        self.tokens = min(limit.burst, self.tokens + elapsed * limit.per_minute / 60.0)
        self.at = max(self.at, now)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass(slots=True)
class _Datanet:
    name: str
    listed: frozenset[str] = frozenset()
    admitted: dict[str, float] = field(default_factory=dict)  # peer id -> until
    buckets: dict[str, _Bucket] = field(default_factory=dict)  # peer id -> its rate limit


class MemberSet:
    def __init__(self, limit: RateLimit | None = None, *, max_admitted: int = MAX_ADMITTED) -> None:
        self.limit = limit or RateLimit()
        self.max_admitted = max_admitted
        self._by_topic: dict[str, _Datanet] = {}

    def update(self, name: str, members: Iterable[str]) -> bool:
        """The vault's member list of Datanet `name` (replaces the last one); True if it changed. Costs one set
        of the members, so it can run on every periodic check. A removed member loses its bucket."""
        entry = self._entry(name)
        listed = frozenset(members)
        if listed == entry.listed:
            return False
        entry.listed = listed
        for peer in [p for p in entry.buckets if p not in listed and p not in entry.admitted]:
            del entry.buckets[peer]
        return True

    def admit(self, name: str, peer: str, until: float) -> None:
        """Let `peer`, admitted by on-chain membership, announce on Datanet `name` until `until` (monotonic
        seconds; an earlier admission that ends later is kept). A peer the vault lists now is left to the vault
        (nothing is recorded), so a caller may admit every peer that finished a session, and removing a listed
        member from the vault still takes effect at the next refresh."""
        entry = self._entry(name)
        if peer in entry.listed:
            return
        if peer not in entry.admitted and len(entry.admitted) >= self.max_admitted:
            first = min(entry.admitted, key=entry.admitted.__getitem__)
            del entry.admitted[first]
            if first not in entry.listed:
                entry.buckets.pop(first, None)
        entry.admitted[peer] = max(until, entry.admitted.get(peer, until))

    def name_of(self, topic_id: str) -> str | None:
        entry = self._by_topic.get(topic_id)
        return None if entry is None else entry.name

    def is_member(self, topic_id: str, peer: str, now: float) -> bool:
        """Listed, or admitted until later than `now`; spends nothing."""
        entry = self._by_topic.get(topic_id)
        return entry is not None and self._allowed(entry, peer, now)

    def check(self, topic_id: str, peer: str, now: float) -> Verdict:
        """May `peer` announce on `topic_id` now? An accepted announcement spends one token of its bucket."""
        entry = self._by_topic.get(topic_id)
        if entry is None:
            return Verdict.UNKNOWN_TOPIC
        if not self._allowed(entry, peer, now):
            return Verdict.NOT_A_MEMBER
        bucket = entry.buckets.get(peer)
        if bucket is None:
            bucket = entry.buckets[peer] = _Bucket(self.limit.burst, now)
        return Verdict.ACCEPTED if bucket.take(self.limit, now) else Verdict.RATE_LIMITED

    def _allowed(self, entry: _Datanet, peer: str, now: float) -> bool:
        if peer in entry.listed:
            return True
        until = entry.admitted.get(peer)
        if until is None:
            return False
        if now < until:
            return True
        del entry.admitted[peer]  # expired: forget it and its bucket
        entry.buckets.pop(peer, None)
        return False

    def _entry(self, name: str) -> _Datanet:
        topic_id = topic(name)
        entry = self._by_topic.get(topic_id)
        if entry is None:
            entry = self._by_topic[topic_id] = _Datanet(name)
        return entry
