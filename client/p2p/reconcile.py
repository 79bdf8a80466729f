"""Range-based set reconciliation of record ids (after Negentropy), as a sans-I/O state machine.

Two peers hold sorted sets of 32-byte record ids. They exchange messages, each covering the whole id space as
consecutive ranges [lower, upper); every range carries one of:

- FINGERPRINT(count, fp): fp = SHA-256(count || ids in the range, sorted)[:16]. A hash of the ids themselves,
  not a sum: a hostile peer cannot make a different set match without a SHA-256 collision.
- IDLIST(ids): all the sender's ids in the range (sent when a range is small).
- HAVE(ids): after an IDLIST, the ids the IDLIST's sender lacks (the receiver of HAVE will fetch them).
- SKIP: nothing to do in this range.

A side that receives a FINGERPRINT compares it with its own: equal, SKIP; different and small, IDLIST; different
and large, split the range into `branch` sub-ranges of about equal size and send their fingerprints. A message
whose ranges are all SKIP is sent as DONE, and a DONE ends the exchange. When it ends, each side's `need` is
exactly the set of ids the other side has and it lacks (tests/test_reconcile.py checks it, and that the bytes
exchanged grow with the difference, not with the size of the sets).

Wire format (version 1), all integers unsigned LEB128 varints:

    message  = version:u8=1  nranges:varint  range*
    range    = upper:bound  mode:u8  payload
    bound    = length:u8  prefix:length bytes     (length 0: the end of the id space; 1..32: the shortest
                                                   prefix of the next range's first id that is above this
                                                   range's last id, so bounds cost a few bytes, not 32)
    mode     = 0 SKIP | 1 FINGERPRINT count:varint fp:16 bytes | 2 IDLIST n:varint id*n | 3 HAVE n:varint id*n

Ranges are strictly increasing; the first starts at the lowest id, the last ends at the end of the id space.
Messages are capped at `max_message` bytes (default 4 MiB) and ids per range at `max_ids`; a violation raises
ProtocolViolation and the caller cuts the peer off. Pure logic: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from client.p2p.errors import ProtocolViolation
from client.p2p.wire import Reader, varint

VERSION = 1
ID_BYTES = 32
FP_BYTES = 16
SKIP, FINGERPRINT, IDLIST, HAVE = 0, 1, 2, 3
MAX_MESSAGE = 4 << 20
MAX_IDS = 50_000
MAX_ROUNDS = 128  # log_8 of any real set size is far below; a peer that keeps splitting is hostile

Bound = bytes | None  # an id, or None for the end of the id space


@dataclass(frozen=True, slots=True)
class Range:
    upper: Bound
    mode: int
    count: int = 0
    fingerprint: bytes = b""
    ids: tuple[bytes, ...] = ()


def separator(below: bytes, above: bytes) -> bytes:
    """The shortest prefix of `above` that is greater than `below` (which is less than `above`)."""
    n = 0
    while below[n] == above[n]:
        n += 1
    return above[: n + 1]


def fingerprint(ids: Sequence[bytes]) -> bytes:
    digest = hashlib.sha256(len(ids).to_bytes(8, "big"))
    for record_id in ids:
        digest.update(record_id)
    return digest.digest()[:FP_BYTES]


# -- wire format --------------------------------------------------------------------------------------------


def encode(ranges: Sequence[Range]) -> bytes:
    out = bytearray([VERSION])
    out += varint(len(ranges))
    for r in ranges:
        out += b"\x00" if r.upper is None else bytes([len(r.upper)]) + r.upper
        out.append(r.mode)
        if r.mode == FINGERPRINT:
            out += varint(r.count) + r.fingerprint
        elif r.mode in (IDLIST, HAVE):
            out += varint(len(r.ids)) + b"".join(r.ids)
    return bytes(out)


def decode(message: bytes, *, max_message: int = MAX_MESSAGE, max_ids: int = MAX_IDS) -> list[Range]:
    if len(message) > max_message:
        raise ProtocolViolation(f"The peer sent a {len(message)}-byte sync message, over the {max_message} limit.")
    reader = Reader(message)
    version = reader.take(1)[0]
    if version != VERSION:
        raise ProtocolViolation(f"The peer speaks sync protocol version {version}, not {VERSION}.")
    count = reader.varint()
    ranges: list[Range] = []
    previous: Bound = b""
    for _ in range(count):
        length = reader.take(1)[0]
        if length > ID_BYTES:
            raise ProtocolViolation(f"The peer sent a {length}-byte range bound; bounds are at most {ID_BYTES}.")
        upper: Bound = None if length == 0 else reader.take(length)
        if previous is None or (upper is not None and upper <= previous):
            raise ProtocolViolation("The peer's sync ranges are not in increasing order.")
        mode = reader.take(1)[0]
        lower = previous
        if mode == SKIP:
            ranges.append(Range(upper, SKIP))
        elif mode == FINGERPRINT:
            ranges.append(Range(upper, FINGERPRINT, count=reader.varint(), fingerprint=reader.take(FP_BYTES)))
        elif mode in (IDLIST, HAVE):
            n = reader.varint()
            if n > max_ids:
                raise ProtocolViolation(f"The peer listed {n} ids in one range, over the {max_ids} limit.")
            ids = tuple(reader.take(ID_BYTES) for _ in range(n))
            if any(b <= a for a, b in itertools.pairwise(ids)):
                raise ProtocolViolation("The peer's id list is not sorted and unique.")
            if ids and (ids[0] < lower or (upper is not None and ids[-1] >= upper)):
                raise ProtocolViolation("The peer listed ids outside the range they belong to.")
            ranges.append(Range(upper, mode, ids=ids))
        else:
            raise ProtocolViolation(f"The peer's sync message has an unknown range mode {mode}.")
        previous = upper
    if reader.pos != len(message):
        raise ProtocolViolation("The peer's sync message has trailing bytes.")
    if ranges and ranges[-1].upper is not None:
        raise ProtocolViolation("The peer's sync ranges do not cover the whole id space.")
    return ranges


# -- the state machine --------------------------------------------------------------------------------------


class Reconciler:
    """One side of a reconciliation. The initiator calls `initiate()`; both then feed each received message to
    `receive()` and send back what it returns, until it returns None (the exchange is over)."""

    def __init__(
        self, ids: Sequence[bytes], *, branch: int = 8, idlist_threshold: int = 8, max_message: int = MAX_MESSAGE
    ) -> None:
        self.ids = sorted(ids)
        if any(len(i) != ID_BYTES for i in self.ids) or any(
            b == a for a, b in zip(self.ids, self.ids[1:], strict=False)
        ):
            raise ValueError("ids must be distinct 32-byte values")
        self.branch = branch
        self.idlist_threshold = idlist_threshold
        self.max_message = max_message
        self.need: set[bytes] = set()  # ids the peer has and we lack
        self.done = False
        self.rounds = 0

    def _slice(self, lower: bytes, upper: Bound) -> list[bytes]:
        start = bisect.bisect_left(self.ids, lower)
        end = len(self.ids) if upper is None else bisect.bisect_left(self.ids, upper)
        return self.ids[start:end]

    def _describe(self, lower: bytes, upper: Bound, *, split: bool = False) -> list[Range]:
        """Our view of a range the peer disagrees on: ids if small, else fingerprints of sub-ranges."""
        mine = self._slice(lower, upper)
        if len(mine) <= (1 if split else self.idlist_threshold):
            return [Range(upper, IDLIST, ids=tuple(mine))]
        out: list[Range] = []
        step = -(-len(mine) // self.branch)
        for start in range(0, len(mine), step):
            part = mine[start : start + step]
            bound: Bound = separator(part[-1], mine[start + step]) if start + step < len(mine) else upper
            out.append(Range(bound, FINGERPRINT, count=len(part), fingerprint=fingerprint(part)))
        return out

    def initiate(self) -> bytes:
        return encode([Range(None, FINGERPRINT, count=len(self.ids), fingerprint=fingerprint(self.ids))])

    def receive(self, message: bytes) -> bytes | None:
        if self.done:
            raise ProtocolViolation("The peer kept sending after the sync exchange ended.")
        self.rounds += 1
        if self.rounds > MAX_ROUNDS:
            raise ProtocolViolation(f"The sync exchange did not settle in {MAX_ROUNDS} rounds; the peer misbehaves.")
        ranges = decode(message, max_message=self.max_message)
        if not ranges:  # DONE
            self.done = True
            return None
        out: list[Range] = []
        lower = b""
        budget = self.max_message // 2  # ids beyond it wait for the next round (a peer that has nothing)
        for r in ranges:
            if r.mode == FINGERPRINT:
                mine = self._slice(lower, r.upper)
                if len(mine) == r.count and fingerprint(mine) == r.fingerprint:
                    out.append(Range(r.upper, SKIP))
                else:
                    out += self._describe(lower, r.upper)
            elif r.mode == IDLIST:
                ours, theirs = set(self._slice(lower, r.upper)), set(r.ids)
                self.need |= theirs - ours
                extra = sorted(ours - theirs)
                size = len(extra) * ID_BYTES
                if len(extra) <= MAX_IDS and size <= budget:
                    budget -= size
                    out.append(Range(r.upper, HAVE, ids=tuple(extra)))
                elif len(extra) <= MAX_IDS and size <= self.max_message // 2:
                    # fits a message, not this one: our fingerprint brings the peer's id list back next round
                    mine = sorted(ours)
                    out.append(Range(r.upper, FINGERPRINT, count=len(mine), fingerprint=fingerprint(mine)))
                else:  # more than a message can list: split it; the peer answers each part with its id list
                    out += self._describe(lower, r.upper, split=True)
            elif r.mode == HAVE:
                self.need |= set(r.ids) - set(self._slice(lower, r.upper))
                out.append(Range(r.upper, SKIP))
            else:
                out.append(Range(r.upper, SKIP))
            lower = r.upper if r.upper is not None else lower
        merged: list[Range] = []
        for r in out:  # adjacent SKIPs collapse into one
            if merged and r.mode == SKIP and merged[-1].mode == SKIP:
                merged[-1] = Range(r.upper, SKIP)
            else:
                merged.append(r)
        if all(r.mode == SKIP for r in merged):
            self.done = True
            return encode([])
        return encode(merged)
