"""`/datanet/sync/1.0.0`: one sync session over one libp2p stream, a thin shell around the sans-I/O
`reconcile.Reconciler` and `transfer.Fetcher`.

Frames (both directions): `length:u32 big-endian` then `type:u8` and a payload; a frame over `MAX_FRAME` bytes,
an unknown type, or a read that stalls longer than `READ_TIMEOUT` seconds cuts the peer off.

    HELLO      1  version:u8=1  name length:u8  Datanet name (UTF-8)  [credential: 85 bytes, admission.py]
    REFUSED    2  reason (UTF-8)
    RECONCILE  3  a reconciliation message (reconcile.py's wire format)
    TRANSFER   4  a WANT or RECORDS frame (transfer.py's wire format)
    FETCHED    5  (empty) "I have everything I wanted": the other side fetches next
    WELCOME    6  [credential: 85 bytes]

A session: the initiator sends HELLO; the responder refuses (REFUSED, then closes) unless the initiator's peer id
is a member of that Datanet in its vault, or its credential proves an account that is a member on chain; else it
answers WELCOME. The initiator checked the responder's peer id before dialling, or checks the credential of the
WELCOME, so neither side ever sends a record, an id or a fingerprint to a peer that is not a member. Then the two
reconcile their record ids; then the initiator fetches what it lacks (WANT frames pipelined `WINDOW` deep, each
RECORDS frame verified record by record and committed to the vault in one transaction), sends FETCHED, and the
responder fetches the other way. Records are never sent unasked, never stored unverified; an interrupted session
keeps every committed frame, and the next one asks only for what is still missing.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from client.p2p import admission, transfer
from client.p2p.errors import P2PError, ProtocolViolation
from client.p2p.reconcile import Reconciler
from storage.shard import NewRecord, Shard

logger = logging.getLogger(__name__)

VERSION = 1
HELLO, REFUSED, RECONCILE, TRANSFER, FETCHED, WELCOME = 1, 2, 3, 4, 5, 6
MAX_FRAME = transfer.MAX_FRAME + 64
READ_TIMEOUT = 30.0
WINDOW = 4  # WANT frames in flight
PARTS = 8  # the need is split across this many sequential fetchers, interleaved to keep WINDOW frames in flight


class Refused(P2PError):
    """The peer refused the session (not a member, no such Datanet)."""


@dataclass
class Counters:
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass(frozen=True, slots=True)
class SyncProgress:
    datanet: str
    peer: str
    phase: str  # "reconcile" | "fetch" | "serve" | "done"
    records_done: int
    records_left: int
    bytes_done: int
    bytes_left: int  # estimated from the mean size of the records received so far
    rate: float  # records per second so far
    eta: float | None  # seconds


@dataclass
class SyncResult:
    datanet: str
    peer: str
    received: int = 0
    sent: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    seconds: float = 0.0
    rounds: int = 0
    progress: list[SyncProgress] = field(default_factory=list)


ProgressCallback = Callable[[SyncProgress], None]


class FrameStream:
    """Length-prefixed frames over a libp2p stream (anything with async `read(n)`, `write(data)`)."""

    def __init__(self, stream: object, counters: Counters, *, read_timeout: float = READ_TIMEOUT) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self.counters = counters
        self.read_timeout = read_timeout

    async def _read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            try:
                with trio.fail_after(self.read_timeout):
                    chunk = await self._stream.read(max(n - len(self._buffer), 1 << 16))  # type: ignore[attr-defined]
            except trio.TooSlowError:
                raise ProtocolViolation(f"The peer sent nothing for {self.read_timeout:.0f} s.") from None
            except EOFError:
                chunk = b""
            except Exception as exc:
                raise _broken(exc) from None
            if not chunk:
                raise ProtocolViolation("The peer closed the stream in the middle of the session.")
            self._buffer += chunk
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        self.counters.bytes_received += n
        return data

    async def receive(self) -> tuple[int, bytes]:
        length = int.from_bytes(await self._read_exact(4), "big")
        if length == 0:
            raise ProtocolViolation("The peer sent an empty frame.")
        if length > MAX_FRAME:
            raise ProtocolViolation(f"The peer announced a {length}-byte frame, over the {MAX_FRAME} limit.")
        frame = await self._read_exact(length)
        if frame[0] not in (HELLO, REFUSED, RECONCILE, TRANSFER, FETCHED, WELCOME):
            raise ProtocolViolation(f"The peer sent a frame of unknown type {frame[0]}.")
        return frame[0], frame[1:]

    async def expect(self, kind: int) -> bytes:
        got, payload = await self.receive()
        if got == REFUSED and kind != REFUSED:
            raise Refused(f"The peer refused: {payload[:200].decode('utf-8', 'replace')}")
        if got != kind:
            raise ProtocolViolation(f"The peer sent a frame of type {got} where {kind} was expected.")
        return payload

    async def send(self, kind: int, payload: bytes = b"") -> None:
        data = (len(payload) + 1).to_bytes(4, "big") + bytes([kind]) + payload
        try:
            await self._stream.write(data)  # type: ignore[attr-defined]
        except Exception as exc:
            raise _broken(exc) from None
        self.counters.bytes_sent += len(data)


def _broken(exc: Exception) -> Exception:
    """A reset or closed libp2p stream is the peer going away: one ProtocolViolation; anything else as it is."""
    if type(exc).__module__.startswith("libp2p"):
        return ProtocolViolation(f"The stream to the peer broke ({type(exc).__name__}).")
    return exc


def hello(datanet: str, credential: bytes | None = None) -> bytes:
    name = datanet.encode()
    return bytes([VERSION, len(name)]) + name + (credential or b"")


def parse_hello(payload: bytes) -> tuple[str, bytes | None]:
    """(Datanet name, credential or None)."""
    if not payload or payload[0] != VERSION:
        raise ProtocolViolation(f"The peer speaks sync version {payload[:1].hex() or '?'}, not {VERSION}.")
    if len(payload) < 2 or len(payload) < 2 + payload[1]:
        raise ProtocolViolation("The peer's HELLO names no valid Datanet.")
    size = payload[1]
    try:
        name = payload[2 : 2 + size].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolViolation("The peer's HELLO names no valid Datanet.") from None
    if not name or len(name) > 200:
        raise ProtocolViolation("The peer's HELLO names no valid Datanet.")
    rest = payload[2 + size :]
    if rest and len(rest) != admission.CREDENTIAL_BYTES:
        raise ProtocolViolation("The peer's HELLO carries a malformed credential.")
    return name, rest or None


async def _admitted(
    peer: str, name: str, credential: bytes | None, chain_member: admission.ChainMembership | None
) -> str | None:
    """The on-chain account that admits `peer`, or None."""
    if credential is None or chain_member is None:
        return None
    account = admission.credential_account(credential, peer, name)
    if account is None:
        return None
    return account if await chain_member(name, account) else None


async def _reconcile(frames: FrameStream, shard: Shard, *, initiator: bool) -> Reconciler:
    reconciler = Reconciler(shard.ids())
    if initiator:
        await frames.send(RECONCILE, reconciler.initiate())
    while True:
        reply = reconciler.receive(await frames.expect(RECONCILE))
        if reply is None:
            return reconciler
        await frames.send(RECONCILE, reply)
        if reconciler.done:
            return reconciler


async def _fetch(
    frames: FrameStream, shard: Shard, need: set[bytes], source: str, report: Callable[[int, int, int], None]
) -> int:
    """Fetch `need` from the peer with WANT frames pipelined WINDOW deep; commit each verified RECORDS frame."""
    ordered = sorted(need)
    fetchers = [transfer.Fetcher(ordered[i::PARTS]) for i in range(PARTS) if ordered[i::PARTS]]
    in_flight: deque[transfer.Fetcher] = deque()
    waiting = deque(fetchers)
    received = 0
    total = len(ordered)
    byte_count = 0

    async def top_up() -> None:
        while len(in_flight) < WINDOW and waiting:
            fetcher = waiting.popleft()
            request = fetcher.next_request()
            if request is None:
                continue
            await frames.send(TRANSFER, request)
            in_flight.append(fetcher)

    await top_up()
    while in_flight:
        fetcher = in_flight.popleft()
        records = fetcher.receive(await frames.expect(TRANSFER))
        if records:
            added, _ = shard.add_records(NewRecord(i, body, source) for i, body in records)
            received += added
            byte_count += sum(len(body) for _, body in records)
        waiting.append(fetcher)
        await top_up()
        report(received, total - received, byte_count)
    await frames.send(FETCHED)
    return received


async def _serve(frames: FrameStream, shard: Shard) -> int:
    """Answer the peer's WANT frames until it says FETCHED."""
    sent = 0
    while True:
        kind, payload = await frames.receive()
        if kind == FETCHED:
            return sent
        if kind != TRANSFER:
            raise ProtocolViolation(f"The peer sent a frame of type {kind} where a WANT was expected.")
        answer = transfer.serve(payload, shard.bodies)
        sent += len(transfer.decode_records(answer))
        await frames.send(TRANSFER, answer)


class _Reporter:
    def __init__(self, result: SyncResult, on_progress: ProgressCallback | None) -> None:
        self.result = result
        self.on_progress = on_progress
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, phase: str, done: int, left: int, byte_count: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < 0.25:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        rate = done / elapsed
        bytes_left = round(left * byte_count / done) if done else 0
        event = SyncProgress(
            self.result.datanet,
            self.result.peer,
            phase,
            done,
            left,
            byte_count,
            bytes_left,
            rate,
            left / rate if rate else None,
        )
        self.result.progress.append(event)
        if self.on_progress is not None:
            self.on_progress(event)


async def initiate(
    stream: object,
    shard: Shard,
    peer: str,
    *,
    local_member: bool = True,
    credential: bytes | None = None,
    chain_member: admission.ChainMembership | None = None,
    on_progress: ProgressCallback | None = None,
) -> SyncResult:
    """Sync `shard` with the peer at the other end of `stream`. A peer that is not `local_member` (in the vault)
    must prove on-chain membership in its WELCOME before anything else is sent."""
    result = SyncResult(shard.info.name, peer)
    counters = Counters()
    frames = FrameStream(stream, counters)
    report = _Reporter(result, on_progress)
    started = time.perf_counter()
    await frames.send(HELLO, hello(shard.info.name, credential))
    welcome = await frames.expect(WELCOME)
    if welcome and len(welcome) != admission.CREDENTIAL_BYTES:
        raise ProtocolViolation("The peer's WELCOME carries a malformed credential.")
    if not local_member and await _admitted(peer, shard.info.name, welcome or None, chain_member) is None:
        raise Refused(f"Peer {peer} is neither a member here nor proves membership on chain; nothing was sent.")
    reconciler = await _reconcile(frames, shard, initiator=True)
    report("reconcile", 0, len(reconciler.need), 0, force=True)
    result.received = await _fetch(
        frames, shard, reconciler.need, f"peer {peer}", lambda d, left, b: report("fetch", d, left, b)
    )
    result.sent = await _serve(frames, shard)
    result.rounds = reconciler.rounds
    _finish(result, counters, started, report)
    return result


async def respond(
    stream: object,
    peer: str,
    open_shard: Callable[[str], Shard | None],
    *,
    credential_for: Callable[[str], bytes | None] = lambda name: None,
    chain_member: admission.ChainMembership | None = None,
    on_progress: ProgressCallback | None = None,
) -> SyncResult:
    """Answer a session: admission first (nothing is sent to a non-member), then reconcile, serve, fetch."""
    counters = Counters()
    frames = FrameStream(stream, counters)
    name, credential = parse_hello(await frames.expect(HELLO))
    shard = open_shard(name)
    admitted = shard is not None and shard.is_member(peer)
    how = "vault"
    if shard is not None and not admitted:
        account = await _admitted(peer, name, credential, chain_member)
        admitted, how = account is not None, f"chain account {account}"
    if shard is None or not admitted:
        if shard is not None:
            shard.close()
        logger.warning("refused sync of Datanet %r from peer %s: not a member", name, peer)
        await frames.send(REFUSED, b"not a member of this Datanet here")
        raise Refused(f"Refused peer {peer}: not a member of Datanet {name!r}.")
    logger.info("peer %s admitted to Datanet %r (%s)", peer, name, how)
    with shard:
        await frames.send(WELCOME, credential_for(name) or b"")
        result = SyncResult(name, peer)
        report = _Reporter(result, on_progress)
        started = time.perf_counter()
        reconciler = await _reconcile(frames, shard, initiator=False)
        result.sent = await _serve(frames, shard)
        result.received = await _fetch(
            frames, shard, reconciler.need, f"peer {peer}", lambda d, left, b: report("fetch", d, left, b)
        )
        result.rounds = reconciler.rounds
        _finish(result, counters, started, report)
    return result


def _finish(result: SyncResult, counters: Counters, started: float, report: _Reporter) -> None:
    result.bytes_sent, result.bytes_received = counters.bytes_sent, counters.bytes_received
    result.seconds = time.perf_counter() - started
    report("done", result.received, 0, counters.bytes_received, force=True)
