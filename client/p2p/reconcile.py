"""Range-based set reconciliation of record ids (after Negentropy), as a sans-I/O state machine.

Two peers hold sorted sets of 32-byte record ids. They exchange messages, each covering the whole id space as
consecutive ranges [lower, upper); every range carries one of:

- FINGERPRINT(count, fp): fp = SHA-256(count || ids in the range, sorted)[:16]. A hash of the ids themselves,
  not a sum: a hostile peer cannot make a different set match without a SHA-256 collision.
- IDLIST(ids): all the sender's ids in the range (sent when a range is small).
- HAVE(ids): after an IDLIST, the ids the IDLIST's sender lacks (the receiver of HAVE will fetch them).
- SKIP: nothing to do in this range.

A side that receives a FINGERPRINT compares it with its own: equal, SKIP; different and small, IDLIST; different
and large, split the range into `branch` sub-ranges of about equal size and send their fingerprints. An IDLIST is
answered with HAVE. A message whose ranges are all SKIP is sent as DONE, and a DONE ends the exchange. When it
ends, each side's `need` is exactly the set of ids the other side has and it lacks, and `offered` holds every id
it listed to the peer (tests/test_reconcile.py checks it, and that the bytes exchanged grow with the difference,
not with the size of the sets).

Open and finished ranges. The FINGERPRINT and IDLIST ranges of the last messages are open (in flight) until
answered; a range is finished once a SKIP or a HAVE has crossed the wire for it, either way (after a HAVE each side
has seen the other's ids there). Both sides see every message, so they agree on which ranges are open. A finished
range is never reopened: whatever the peer later sends inside it is answered with SKIP and ids listed there are
ignored, so a peer that answers our HAVE (empty or not), or anything else, with a FINGERPRINT or an IDLIST gets a
SKIP and no further round for that range. A range we listed stays open until the peer's HAVE covers it; a peer
that answers with FINGERPRINTs instead (honestly: its leftover, below) makes us list those few ids again (at most
`idlist_threshold`), one round each, so it runs into the round cap. A FINGERPRINT is compared only when it covers
one open range (or part of one); one that covers several (only a leftover does) is answered range by range, each
with our fingerprint or, if few, our ids; its finished parts with SKIP.

Budget. Every message we send is at most `max_message` bytes, `initiate()` included. A reply is built in order,
piece by piece (a SKIP, a split into `branch` fingerprints, an id list, a HAVE); when the next piece does not fit,
everything from there to the end of the id space goes as ONE leftover range: SKIP if nothing there is open, else
a FINGERPRINT of our ids in its open ranges. Its fp is SHA-256 as usual when it covers one open range, and
NOT_COMPARED (16 zero bytes) when it covers several (it is not compared) or the rest of a HAVE that did not fit
(known to differ); so a leftover never costs a hash of the whole tail. A HAVE too large for the message lists what
fits (in ranges of at most MAX_IDS ids) up to a bound just after its last id; the peer lists the rest again and
the next HAVE goes on. The peer's ranges beyond the leftover are not lost: the ids in its IDLISTs and HAVEs are
learnt at once, its SKIPs and HAVEs finish ranges, the rest stays open. `min_message` is the least budget that
fits a SKIP, any one piece and a leftover, so every message moves the first open range on and the exchange
converges. A reply over budget anyway would be a bug: RuntimeError, never sent.

Rounds. A side answers at most `max_rounds(n, max_message, branch)` messages, n being the ids it knows of (its own
and those the peer has shown it, so an empty side can still receive a large set): log_branch(n) levels of splits,
plus the messages that the most an honest exchange sends for n ids fill, plus ROUND_MARGIN. A peer that runs the
exchange longer (fingerprints that never match, ranges kept open) is cut off with ProtocolViolation.
`take_new_need()` hands over the ids added to `need` since the last call, so the caller can start fetching them
while reconciliation goes on.

Wire format (version 1), all integers unsigned LEB128 varints:

    message  = version:u8=1  nranges:varint  range*
    range    = upper:bound  mode:u8  payload
    bound    = length:u8  prefix:length bytes     (length 0: the end of the id space; 1..32: the shortest
                                                   prefix of the next range's first id that is above this
                                                   range's last id, so bounds cost a few bytes, not 32)
    mode     = 0 SKIP | 1 FINGERPRINT count:varint fp:16 bytes | 2 IDLIST n:varint id*n | 3 HAVE n:varint id*n

The bytes are those of the first version; only the leftover's NOT_COMPARED fp is new, and a peer that does not
know it sees a fingerprint that does not match, and splits.

Ranges are strictly increasing; the first starts at the lowest id, the last ends at the end of the id space.
Received messages are capped at `max_message` bytes (default 4 MiB) and ids per range at `max_ids`; a violation
raises ProtocolViolation and the caller cuts the peer off. Pure logic: no I/O, no clock, no randomness.
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
NOT_COMPARED = bytes(FP_BYTES)  # the fp of a leftover that covers several open ranges, or one known to differ
ROUND_MARGIN = 64  # rounds beyond max_rounds' estimate, for the unlucky shapes of honest sets

_HEADER_BYTES = 1 + 5  # version, and a range count up to 2^35
_BOUND_BYTES = 1 + ID_BYTES  # the longest bound
_FP_RANGE_BYTES = _BOUND_BYTES + 1 + 10 + FP_BYTES  # the largest FINGERPRINT range
_LEFTOVER_BYTES = 1 + 1 + 10 + FP_BYTES  # the leftover FINGERPRINT, up to the end of the id space
_LIST_OVERHEAD = _BOUND_BYTES + 1 + 3  # an IDLIST or HAVE range before its ids (a count up to MAX_IDS)
_ID_COST = 2 * (_LIST_OVERHEAD + ID_BYTES) + 2 * _FP_RANGE_BYTES + _BOUND_BYTES + 1  # most bytes one id costs

Bound = bytes | None  # an id, or None for the end of the id space
Span = tuple[bytes, Bound]  # [lower, upper)


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
    digest.update(b"".join(ids))
    return digest.digest()[:FP_BYTES]


def min_message(branch: int = 8, idlist_threshold: int = 8) -> int:
    """The least budget that always fits a SKIP, one piece (a split, an id list, a HAVE of one id) and a leftover."""
    piece = max(branch * _FP_RANGE_BYTES, _LIST_OVERHEAD + ID_BYTES * max(idlist_threshold, 1))
    return _HEADER_BYTES + _BOUND_BYTES + 1 + piece + _LEFTOVER_BYTES


def max_rounds(set_size: int, max_message: int = MAX_MESSAGE, branch: int = 8) -> int:
    """How many messages one side answers before it calls the peer hostile, for `set_size` known ids.

    An honest exchange splits down about log_branch(n) levels, and sends each id at most in an IDLIST and a HAVE,
    with at most two FINGERPRINT ranges and a SKIP for it (a split tree has fewer nodes than twice its leaves):
    `_ID_COST` bytes an id, in messages of `max_message` less the room for the header, a SKIP and the leftover.
    We allow as many rounds as those messages, though each side answers only every other one, 4 rounds a level,
    and ROUND_MARGIN. At the default budget that is about 130 rounds for 300,000 ids."""
    levels = 1
    while branch**levels < set_size:
        levels += 1
    room = max_message - _HEADER_BYTES - _BOUND_BYTES - 1 - _LEFTOVER_BYTES
    return ROUND_MARGIN + 4 * levels + -(-set_size * _ID_COST // room)


def _before(a: Bound, b: Bound) -> bool:
    """a < b, None being the end of the id space."""
    return a is not None and (b is None or a < b)


def _bound_bytes(bound: Bound) -> int:
    return 1 if bound is None else 1 + len(bound)


def _range_bytes(r: Range) -> int:
    size = _bound_bytes(r.upper) + 1
    if r.mode == FINGERPRINT:
        size += len(varint(r.count)) + FP_BYTES
    elif r.mode in (IDLIST, HAVE):
        size += len(varint(len(r.ids))) + ID_BYTES * len(r.ids)
    return size


def _within(ids: tuple[bytes, ...], lower: bytes, upper: Bound) -> tuple[bytes, ...]:
    start = bisect.bisect_left(ids, lower)
    end = len(ids) if upper is None else bisect.bisect_left(ids, upper)
    return ids[start:end]


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


class _Reply:
    """The ranges of one reply and their encoded size, kept under the budget less the leftover's room."""

    def __init__(self, max_message: int) -> None:
        self.ranges: list[Range] = []
        self.size = _HEADER_BYTES
        self.limit = max_message - _LEFTOVER_BYTES

    def ids_room(self) -> int:
        """How many ids one more IDLIST or HAVE range could list."""
        return max(0, min(MAX_IDS, (self.limit - self.size - _LIST_OVERHEAD) // ID_BYTES))

    def add(self, ranges: list[Range]) -> bool:
        size = sum(_range_bytes(r) for r in ranges)
        if self.size + size > self.limit:
            return False
        self.ranges += ranges
        self.size += size
        return True

    def skip(self, upper: Bound, *, leftover: bool = False) -> bool:
        """A SKIP up to `upper`, merged with a SKIP before it. The leftover may use the room kept for it."""
        last = self.ranges[-1] if self.ranges and self.ranges[-1].mode == SKIP else None
        size = _bound_bytes(upper) - (_bound_bytes(last.upper) if last else -1)
        if self.size + size > self.limit + (_LEFTOVER_BYTES if leftover else 0):
            return False
        if last:
            self.ranges[-1] = Range(upper, SKIP)
        else:
            self.ranges.append(Range(upper, SKIP))
        self.size += size
        return True


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
        if branch < 2 or not 1 <= idlist_threshold <= MAX_IDS:
            raise ValueError("branch must be at least 2 and idlist_threshold between 1 and MAX_IDS")
        if max_message < min_message(branch, idlist_threshold):
            raise ValueError(f"max_message must be at least {min_message(branch, idlist_threshold)} bytes")
        self.branch = branch
        self.idlist_threshold = idlist_threshold
        self.max_message = max_message
        self.need: set[bytes] = set()  # ids the peer has and we lack
        self.offered: set[bytes] = set()  # ids we listed to the peer (IDLIST or HAVE): all it may learn it lacks
        self.done = False
        self.rounds = 0
        self._fresh: list[bytes] = []  # added to need since the last take_new_need()
        self._open: list[Span] = [(b"", None)]  # the ranges in flight, in order; the rest is finished

    def take_new_need(self) -> list[bytes]:
        """The ids added to `need` since the last call, sorted: the caller may fetch them before the end."""
        fresh, self._fresh = sorted(self._fresh), []
        return fresh

    def initiate(self) -> bytes:
        return self._checked([Range(None, FINGERPRINT, count=len(self.ids), fingerprint=fingerprint(self.ids))])

    def receive(self, message: bytes) -> bytes | None:
        if self.done:
            raise ProtocolViolation("The peer kept sending after the sync exchange ended.")
        self.rounds += 1
        limit = max_rounds(len(self.ids) + len(self.need), self.max_message, self.branch)
        if self.rounds > limit:
            raise ProtocolViolation(f"The sync exchange did not settle in {limit} rounds; the peer misbehaves.")
        ranges = decode(message, max_message=self.max_message)
        if not ranges:  # DONE
            self.done = True
            return None
        reply = _Reply(self.max_message)
        opened: list[Span] = []  # the ranges still open after this reply
        stop: bytes | None = None  # where the leftover starts, once the budget is spent
        differs = False  # the leftover starts with the rest of a HAVE that did not fit
        lower, cursor = b"", 0
        for r in ranges:
            parts, cursor = self._parts(lower, r.upper, cursor)
            open_parts = [(start, end) for start, end, is_open in parts if is_open]
            single = len(open_parts) == 1
            if stop is None and r.mode == FINGERPRINT and single and self._matches(*open_parts[0], r):
                if reply.skip(r.upper):
                    lower = lower if r.upper is None else r.upper
                    continue
                stop = lower
            for start, end, is_open in parts:
                if stop is None:
                    stop = self._answer(r, start, end, is_open, single, reply, opened)
                    if stop is None:
                        continue
                    differs, start = stop != start, stop
                self._absorb(r, start, end, is_open, opened)
            lower = lower if r.upper is None else r.upper
        if stop is not None:
            leftover = self._leftover([span for span in opened if _before(stop, span[1])], differs)
            if leftover is None:
                reply.skip(None, leftover=True)
            else:
                reply.ranges.append(leftover)
        self._open = opened
        if all(r.mode == SKIP for r in reply.ranges):
            self.done = True
            return encode([])
        return self._checked(reply.ranges)

    # -- helpers of receive -------------------------------------------------------------------------------------

    def _checked(self, ranges: list[Range]) -> bytes:
        message = encode(ranges)
        if len(message) > self.max_message:
            raise RuntimeError(
                f"Reconciliation built a {len(message)}-byte message, over its {self.max_message}-byte budget (a bug)."
            )
        for r in ranges:
            self.offered.update(r.ids)
        return message

    def _index(self, bound: Bound) -> int:
        return len(self.ids) if bound is None else bisect.bisect_left(self.ids, bound)

    def _learn(self, ids: Sequence[bytes]) -> None:
        for record_id in ids:
            i = bisect.bisect_left(self.ids, record_id)
            if (i == len(self.ids) or self.ids[i] != record_id) and record_id not in self.need:
                self.need.add(record_id)
                self._fresh.append(record_id)

    def _parts(self, lower: bytes, upper: Bound, cursor: int) -> tuple[list[tuple[bytes, Bound, bool]], int]:
        """[lower, upper) cut into its open and finished parts, in order. `cursor` indexes the first open span
        that may meet it; ranges come in increasing order, so it only moves forward."""
        spans = self._open
        while cursor < len(spans) and not _before(lower, spans[cursor][1]):
            cursor += 1
        parts: list[tuple[bytes, Bound, bool]] = []
        at: Bound = lower
        k = cursor
        while at is not None and k < len(spans) and _before(spans[k][0], upper):
            start, end = max(spans[k][0], at), spans[k][1] if _before(spans[k][1], upper) else upper
            if start != at:
                parts.append((at, start, False))
            parts.append((start, end, True))
            at, k = end, k + 1
        if at is not None and at != upper:
            parts.append((at, upper, False))
        return parts, cursor

    def _leftover(self, tail: list[Span], differs: bool) -> Range | None:
        """The range from where the budget ran out to the end: None (a SKIP) if nothing there is open; else a
        FINGERPRINT of our ids in its open ranges, its fp NOT_COMPARED when there are several or it differs."""
        if not tail:
            return None
        if len(tail) == 1 and not differs:
            start, end = self._index(tail[0][0]), self._index(tail[0][1])
            return Range(None, FINGERPRINT, count=end - start, fingerprint=fingerprint(self.ids[start:end]))
        count = sum(self._index(upper) - self._index(lower) for lower, upper in tail)
        return Range(None, FINGERPRINT, count=count, fingerprint=NOT_COMPARED)

    def _matches(self, lower: bytes, upper: Bound, r: Range) -> bool:
        """Whether the peer's FINGERPRINT (of the one open part of its range) is ours."""
        start, end = self._index(lower), self._index(upper)
        return end - start == r.count and fingerprint(self.ids[start:end]) == r.fingerprint

    def _answer(
        self, r: Range, start: bytes, end: Bound, is_open: bool, single: bool, reply: _Reply, opened: list[Span]
    ) -> bytes | None:
        """Answer one part of a received range; None, or where the budget ran out (the leftover starts there)."""
        if not is_open or r.mode in (SKIP, HAVE):
            if not reply.skip(end):
                return start
            if is_open and r.mode == HAVE:
                self._learn(_within(r.ids, start, end))
            return None
        if r.mode == IDLIST:
            return self._answer_idlist(_within(r.ids, start, end), start, end, reply)
        pieces = self._describe(start, end) if single else self._offer(start, end)
        if not reply.add(pieces):
            return start
        for piece in pieces:
            opened.append((start, piece.upper))
            start = piece.upper if piece.upper is not None else start
        return None

    def _answer_idlist(self, theirs: tuple[bytes, ...], start: bytes, end: Bound, reply: _Reply) -> bytes | None:
        """HAVE: our ids the peer did not list; if they do not all fit, those that do, up to a bound after them."""
        self._learn(theirs)
        listed = set(theirs)
        i, last = self._index(start), self._index(end)
        while True:  # a HAVE holds at most MAX_IDS ids: fill the budget with as many as it takes
            room, extra = reply.ids_room(), list[bytes]()
            while i < last and len(extra) <= room:
                if self.ids[i] not in listed:
                    extra.append(self.ids[i])
                i += 1
            if len(extra) <= room:
                return None if reply.add([Range(end, HAVE, ids=tuple(extra))]) else start
            if room == 0:
                return start
            stop = separator(extra[room - 1], extra[room])
            if not reply.add([Range(stop, HAVE, ids=tuple(extra[:room]))]):
                raise RuntimeError("Reconciliation sized a HAVE it could not fit (a bug).")
            start, i = stop, self._index(extra[room])

    def _absorb(self, r: Range, start: bytes, end: Bound, is_open: bool, opened: list[Span]) -> None:
        """Take in a part of a range beyond the leftover: learn its ids; a SKIP or HAVE finishes it."""
        if not is_open or r.mode == SKIP:
            return
        if r.mode in (IDLIST, HAVE):
            self._learn(_within(r.ids, start, end))
        if r.mode != HAVE:
            opened.append((start, end))

    def _offer(self, lower: bytes, upper: Bound) -> list[Range]:
        """Our view of one of the open ranges a leftover covers: its ids if few, else its fingerprint (the peer
        compares it, then splits or lists)."""
        start, end = self._index(lower), self._index(upper)
        if end - start <= self.idlist_threshold:
            return [Range(upper, IDLIST, ids=tuple(self.ids[start:end]))]
        return [Range(upper, FINGERPRINT, count=end - start, fingerprint=fingerprint(self.ids[start:end]))]

    def _describe(self, lower: bytes, upper: Bound) -> list[Range]:
        """Our view of a range the peer disagrees on: ids if small, else fingerprints of sub-ranges."""
        start, end = self._index(lower), self._index(upper)
        if end - start <= self.idlist_threshold:
            return [Range(upper, IDLIST, ids=tuple(self.ids[start:end]))]
        mine = self.ids[start:end]
        out: list[Range] = []
        step = -(-len(mine) // self.branch)
        for at in range(0, len(mine), step):
            part = mine[at : at + step]
            bound: Bound = separator(part[-1], mine[at + step]) if at + step < len(mine) else upper
            out.append(Range(bound, FINGERPRINT, count=len(part), fingerprint=fingerprint(part)))
        return out
