"""Carrying contributors' proven batches between members, as sans-I/O state machines (the provenance half of
`/datanet/sync/1.1.0`).

After the records, the two sides reconcile the roots of the batches each may carry (own batches, and received
ones that verified; reconcile.py over 32-byte roots), then each fetches the claims it lacks exactly as records
are fetched: WANT frames of at most `CHUNK_ROOTS` roots, answered by BATCHES frames. A claim is checked for shape
here (asked for, sizes, field lengths); its proof and root are checked by the caller (client/provenance.py)
before anything shows, uses or forwards it.

Wire format (version 1), integers as LEB128 varints (see reconcile.py):

    frame    = version:u8=1  kind:u8  count:varint  entry*
    WANT     kind 1, entry = root:32
    BATCHES  kind 2, entry = root:32  commitment:32  datanet id:32  recipient:32  proof:256
                             n:u8 (1..16)  (record id:32  salt:32) * n
                             chain length:u8  chain (ASCII)  tx length:u8  tx hash (ASCII)

All field elements are big-endian. `chain` and `tx hash` (empty: not submitted) say where the contributor's
batch was accepted on chain, as the contributor's node recorded it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from client.p2p.errors import ProtocolViolation
from client.p2p.reconcile import ID_BYTES
from client.p2p.wire import Reader, WantQueue, open_frame, read_wanted, varint, want_frame
from storage.provenance import BatchClaim

VERSION = 1
WANT, BATCHES = 1, 2
CHUNK_ROOTS = 256
MAX_FRAME = 4 << 20
MAX_RECORDS = 16
MAX_TEXT = 200
PROOF_BYTES = 256

Lookup = Callable[[list[bytes]], list[BatchClaim]]  # roots -> the claims we may carry, of those asked


def _field(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _text(value: str | None) -> bytes:
    data = (value or "").encode("ascii")
    return bytes([len(data)]) + data


def encode_claim(claim: BatchClaim) -> bytes:
    out = bytearray(claim.root + _field(claim.commitment) + _field(claim.datanet_id) + _field(claim.recipient))
    out += claim.proof
    out.append(claim.count)
    for record_id, salt in claim.records:
        out += record_id + _field(salt)
    out += _text(claim.chain) + _text(claim.tx_hash)
    return bytes(out)


def encode_want(roots: list[bytes]) -> bytes:
    return want_frame(VERSION, WANT, roots)


def encode_batches(claims: list[BatchClaim]) -> bytes:
    return bytes([VERSION, BATCHES]) + varint(len(claims)) + b"".join(encode_claim(c) for c in claims)


def _frame(data: bytes, kind: int, max_frame: int) -> Reader:
    return open_frame(data, kind, version=VERSION, max_frame=max_frame, what="batch")


def decode_want(data: bytes, *, max_frame: int = MAX_FRAME) -> list[bytes]:
    return read_wanted(_frame(data, WANT, max_frame), limit=CHUNK_ROOTS, noun="batches", what="batch")


def _read_text(reader: Reader) -> str | None:
    raw = reader.take(reader.take(1)[0])
    if len(raw) > MAX_TEXT or any(not 0x21 <= byte <= 0x7E for byte in raw):
        raise ProtocolViolation("The peer's batch names its chain or transaction in characters that are not allowed.")
    return raw.decode("ascii") or None


def decode_batches(data: bytes, *, max_frame: int = MAX_FRAME) -> list[BatchClaim]:
    reader = _frame(data, BATCHES, max_frame)
    count = reader.varint()
    claims = []
    for _ in range(count):
        root = reader.take(32)
        commitment, datanet_id, recipient = (int.from_bytes(reader.take(32), "big") for _ in range(3))
        proof = reader.take(PROOF_BYTES)
        n = reader.take(1)[0]
        if not 1 <= n <= MAX_RECORDS:
            raise ProtocolViolation(f"The peer sent a batch of {n} records; a batch holds 1 to {MAX_RECORDS}.")
        records = tuple((reader.take(ID_BYTES), int.from_bytes(reader.take(32), "big")) for _ in range(n))
        claims.append(
            BatchClaim(root, commitment, datanet_id, recipient, proof, records, _read_text(reader), _read_text(reader))
        )
    if reader.pos != len(data):
        raise ProtocolViolation("The peer's batch frame has trailing bytes.")
    return claims


class ClaimFetcher(WantQueue):
    """The side that lacks batches: asks in chunks; every answer must be a claim it asked for."""

    def __init__(self, need: Iterable[bytes], *, chunk: int = CHUNK_ROOTS, max_frame: int = MAX_FRAME) -> None:
        super().__init__(need, chunk=chunk, version=VERSION, kind=WANT)
        self.max_frame = max_frame

    def receive(self, frame: bytes) -> list[BatchClaim]:
        claims = decode_batches(frame, max_frame=self.max_frame)
        if not claims and self._asked:
            # a batch can stop being carriable between reconciliation and now (a record deleted): not an attack
            self._asked.clear()
            return []
        for claim in claims:
            if claim.root not in self._asked:
                raise ProtocolViolation(f"The peer sent batch {claim.root.hex()[:16]}, which was not asked for.")
            self._asked.discard(claim.root)
        return claims


def serve(request: bytes, lookup: Lookup, *, max_frame: int = MAX_FRAME) -> tuple[bytes, list[bytes]]:
    """Answer a WANT frame with the claims we may carry, as many as fit in one frame; and the roots sent."""
    roots = decode_want(request, max_frame=max_frame)
    chosen: list[BatchClaim] = []
    size = 2 + 10
    for claim in lookup(roots):
        entry = len(encode_claim(claim))
        if chosen and size + entry > max_frame:
            break
        chosen.append(claim)
        size += entry
    return encode_batches(chosen), [claim.root for claim in chosen]
