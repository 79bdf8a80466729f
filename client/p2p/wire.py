"""Wire primitives shared by the sync protocol's messages: LEB128 varints and a bounds-checked reader."""

from __future__ import annotations

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
