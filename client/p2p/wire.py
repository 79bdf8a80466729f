"""Wire primitives shared by the sync protocol's messages: LEB128 varints and a bounds-checked reader."""

from __future__ import annotations

from collections.abc import Iterable

from client.p2p.errors import ProtocolViolation


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolViolation("The peer's sync message ends in the middle of a field.")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift >= 63:  # 9 bytes carry every 63-bit value; more is garbage or an attack
                raise ProtocolViolation("The peer's sync message has an over-long number.")


def open_frame(data: bytes, kind: int, *, version: int, max_frame: int, what: str) -> Reader:
    """A `version:u8 kind:u8 ...` frame of a sync sub-protocol (`what`: "transfer", "batch"), checked for its
    size, version and kind; the reader stands after the kind."""
    if len(data) > max_frame:
        raise ProtocolViolation(f"The peer sent a {len(data)}-byte {what} frame, over the {max_frame} limit.")
    reader = Reader(data)
    got_version, got = reader.take(1)[0], reader.take(1)[0]
    if got_version != version:
        raise ProtocolViolation(f"The peer speaks {what} protocol version {got_version}, not {version}.")
    if got != kind:
        raise ProtocolViolation(f"The peer sent a {what} frame of kind {got} where {kind} was expected.")
    return reader


def read_wanted(reader: Reader, *, limit: int, noun: str, what: str) -> list[bytes]:
    """The rest of a WANT frame: `count:varint` then that many 32-byte ids (`noun`: what they name)."""
    count = reader.varint()
    if count > limit:
        raise ProtocolViolation(f"The peer asked for {count} {noun} in one frame, over the {limit} limit.")
    ids = [reader.take(32) for _ in range(count)]
    if reader.pos != len(reader.data):
        raise ProtocolViolation(f"The peer's {what} frame has trailing bytes.")
    return ids


def want_frame(version: int, kind: int, ids: list[bytes]) -> bytes:
    """A WANT frame of a sync sub-protocol: `version:u8 kind:u8 count:varint id:32*count`."""
    return bytes([version, kind]) + varint(len(ids)) + b"".join(ids)


class WantQueue:
    """What a fetching side still lacks, asked for in chunks: a chunk is asked for again (what is left of it)
    until every id in it was answered, then the next chunk; the base of transfer.Fetcher and claims.ClaimFetcher."""

    def __init__(self, need: Iterable[bytes], *, chunk: int, version: int, kind: int) -> None:
        self._left = sorted(set(need))
        self._asked: set[bytes] = set()
        self.chunk = chunk
        self._version, self._kind = version, kind

    def next_request(self) -> bytes | None:
        """The next WANT frame, or None when nothing is missing any more."""
        if not self._asked:
            batch, self._left = self._left[: self.chunk], self._left[self.chunk :]
            self._asked = set(batch)
        if not self._asked:
            return None
        return want_frame(self._version, self._kind, sorted(self._asked))
