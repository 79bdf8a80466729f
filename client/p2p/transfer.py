"""Fetching missing records after reconciliation, as sans-I/O state machines.

The side that needs records sends WANT frames of at most `chunk` ids; the other side answers each with a
RECORDS frame holding as many of them as fit under `max_frame` bytes (the fetcher asks again for the rest). Every
received record is checked before it is handed to storage: it was asked for, its bytes are canonical record
JSON, they hash to its id, and they fit the Datanet's task (the caller's `check`). Anything else is a
ProtocolViolation and the caller cuts the peer off; records already accepted stay valid, and what is still
missing is simply asked for again next time (resumable).

Wire format (version 1), integers as LEB128 varints (see reconcile.py):

    frame    = version:u8=1  kind:u8  count:varint  entry*
    WANT     kind 1, entry = id:32 bytes
    RECORDS  kind 2, entry = id:32 bytes  length:varint  body:length bytes
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from client.p2p.errors import ProtocolViolation
from client.p2p.reconcile import ID_BYTES, VERSION
from client.p2p.wire import Reader, WantQueue, open_frame, read_wanted, varint, want_frame
from client.records import MAX_RECORD_BYTES, RecordError, canonical_object

WANT, RECORDS = 1, 2
CHUNK_IDS = 512
MAX_FRAME = 4 << 20
GROUP_BYTES = 16 << 20  # verified records gathered for one commit...
GROUP_SECONDS = 1.0  # ...or for at most this long

Lookup = Callable[[list[bytes]], list[tuple[bytes, bytes]]]  # ids -> (id, body) of those we hold


@dataclass(frozen=True, slots=True)
class Progress:
    records_done: int
    records_left: int
    bytes_done: int


def encode_want(ids: list[bytes]) -> bytes:
    return want_frame(VERSION, WANT, ids)


def encode_records(records: list[tuple[bytes, bytes]]) -> bytes:
    out = bytearray([VERSION, RECORDS])
    out += varint(len(records))
    for record_id, body in records:
        out += record_id + varint(len(body)) + body
    return bytes(out)


def _frame(data: bytes, kind: int, max_frame: int) -> Reader:
    return open_frame(data, kind, version=VERSION, max_frame=max_frame, what="transfer")


def decode_want(data: bytes, *, max_frame: int = MAX_FRAME, max_ids: int = CHUNK_IDS) -> list[bytes]:
    return read_wanted(_frame(data, WANT, max_frame), limit=max_ids, noun="records", what="transfer")


def decode_records(data: bytes, *, max_frame: int = MAX_FRAME) -> list[tuple[bytes, bytes]]:
    reader = _frame(data, RECORDS, max_frame)
    count = reader.varint()
    records = []
    pos, size = reader.pos, len(data)
    truncated = "The peer's sync message ends in the middle of a field."
    for _ in range(count):  # the hot loop of a sync: fields read in place, not through Reader
        end = pos + ID_BYTES
        if end > size:
            raise ProtocolViolation(truncated)
        record_id, pos = data[pos:end], end
        length = shift = 0
        while True:
            if pos >= size:
                raise ProtocolViolation(truncated)
            byte = data[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift >= 63:
                raise ProtocolViolation("The peer's sync message has an over-long number.")
        if length > MAX_RECORD_BYTES:
            raise ProtocolViolation(f"The peer sent a {length}-byte record, over the {MAX_RECORD_BYTES} limit.")
        end = pos + length
        if end > size:
            raise ProtocolViolation(truncated)
        records.append((record_id, data[pos:end]))
        pos = end
    if pos != size:
        raise ProtocolViolation("The peer's transfer frame has trailing bytes.")
    return records


class Fetcher(WantQueue):
    """The side that needs records: asks in chunks, verifies every answer."""

    def __init__(
        self,
        need: Iterable[bytes],
        *,
        chunk: int = CHUNK_IDS,
        max_frame: int = MAX_FRAME,
        check: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        # A WANT is never over the frame limit it will be read with (version, kind, count: at most 16 bytes).
        fits = max(1, (max_frame - 16) // ID_BYTES)
        super().__init__(need, chunk=min(chunk, fits), version=VERSION, kind=WANT)
        self.check = check  # the Datanet's own rule for a record (its task); raises RecordError
        self.max_frame = max_frame
        self._done = 0
        self._bytes = 0

    @property
    def progress(self) -> Progress:
        return Progress(self._done, len(self._left) + len(self._asked), self._bytes)

    def receive(self, frame: bytes) -> list[tuple[bytes, bytes]]:
        """The verified records of a RECORDS frame, for the caller to store."""
        records = self.delivered(frame)
        for record_id, body in records:
            problem = record_problem(record_id, body, self.check)
            if problem is not None:
                raise ProtocolViolation(problem)
        self.settle(records)
        return records

    def delivered(self, frame: bytes) -> list[tuple[bytes, bytes]]:
        """The records of a RECORDS frame, each one asked for (once), not yet checked: the caller checks each
        with `record_problem` (in slices, between which its event loop runs) and then calls `settle`."""
        records = decode_records(frame, max_frame=self.max_frame)
        if not records and self._asked:
            raise ProtocolViolation("The peer answered with no records at all; it does not hold what it announced.")
        seen: set[bytes] = set()
        for record_id, _ in records:
            if record_id not in self._asked or record_id in seen:
                raise ProtocolViolation(f"The peer sent record {record_id.hex()[:16]}, which was not asked for.")
            seen.add(record_id)
        return records

    def settle(self, records: list[tuple[bytes, bytes]]) -> None:
        """Count checked records as received: they are no longer asked for."""
        for record_id, body in records:
            self._asked.discard(record_id)
            self._done += 1
            self._bytes += len(body)


def record_problem(record_id: bytes, body: bytes, check: Callable[[dict[str, Any]], None] | None) -> str | None:
    """Why a received record may not be stored, as the sentence that cuts the peer off; None if it may: its bytes
    hash to its id, are canonical record JSON, and fit the Datanet's task (`check`, raising RecordError)."""
    if hashlib.sha256(body).digest() != record_id:
        return f"The peer sent record {record_id.hex()[:16]} with bytes that do not match it."
    try:
        obj = canonical_object(body)
        if check is not None:
            check(obj)
    except RecordError as exc:
        return f"The peer sent record {record_id.hex()[:16]} that is not a valid record ({exc})."
    return None


class CommitGroups:
    """Verified records gathered into one transaction of about `max_bytes`, or `max_seconds` after the first of
    them arrived, then handed to `store`. A transaction per RECORDS frame (about 4,000 records of 1 KB) costs a
    large sync a sixth of its speed: every commit writes the changed pages of the id index again, encrypted.
    Records handed to `add` are already verified: the caller flushes them even when the session then fails."""

    def __init__(
        self,
        store: Callable[[list[tuple[bytes, bytes]]], None],
        *,
        max_bytes: int = GROUP_BYTES,
        max_seconds: float = GROUP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self._max_seconds = max_seconds
        self._clock = clock
        self._pending: list[tuple[bytes, bytes]] = []
        self._bytes = 0
        self._since = 0.0

    def add(self, records: list[tuple[bytes, bytes]]) -> None:
        if not records:
            return
        if not self._pending:
            self._since = self._clock()
        self._pending += records
        self._bytes += sum(len(body) for _, body in records)
        if self._bytes >= self._max_bytes or self._clock() - self._since >= self._max_seconds:
            self.flush()

    def flush(self) -> None:
        """Store what is gathered (in one transaction), if anything."""
        pending, self._pending, self._bytes = self._pending, [], 0
        if pending:
            self._store(pending)


def serve(request: bytes, lookup: Lookup, *, max_frame: int = MAX_FRAME, max_ids: int = CHUNK_IDS) -> bytes:
    """Answer a WANT frame with the records we hold, as many as fit in one frame (in the order asked)."""
    return answer(lookup(decode_want(request, max_frame=max_frame, max_ids=max_ids)), max_frame=max_frame)[0]


def answer(found: list[tuple[bytes, bytes]], *, max_frame: int = MAX_FRAME) -> tuple[bytes, int]:
    """The RECORDS frame answering a WANT with the records `found` for it (in the order asked): as many as fit
    in one frame, and how many that is (the fetcher asks again for the rest)."""
    chosen = 0
    size = 2 + 10
    for _, body in found:
        entry = ID_BYTES + len(varint(len(body))) + len(body)
        if chosen and size + entry > max_frame:
            break
        chosen += 1
        size += entry
    return encode_records(found[:chosen]), chosen
