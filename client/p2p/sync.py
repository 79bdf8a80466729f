"""`/datanet/sync/1.1.0`: one sync session over one libp2p stream, a thin shell around the sans-I/O
`reconcile.Reconciler`, `transfer.Fetcher` and `claims.ClaimFetcher`. Framing and the limits that bound a hostile
peer are in frames.py.

    HELLO      1  version:u8=2  name length:u8  Datanet name (UTF-8)  [credential: 85 bytes, admission.py]
    REFUSED    2  reason (UTF-8)
    RECONCILE  3  a reconciliation message (reconcile.py's wire format)
    TRANSFER   4  a WANT or RECORDS frame (transfer.py's wire format)
    FETCHED    5  (empty) "I have everything I wanted": the other side fetches next
    WELCOME    6  [credential: 85 bytes]
    BATCHES    7  a WANT or BATCHES frame of batch claims (claims.py's wire format)

A session: the initiator sends HELLO; the responder refuses (REFUSED, then closes) unless it has a Datanet of
exactly that name and the initiator's peer id is one of its members in the vault, or the shard is bound to an
on-chain Datanet and the credential proves an account that is a member of that Datanet on that registry and
chain; else it answers WELCOME. The initiator checked the responder's peer id before dialling, or checks the
credential of the WELCOME against its own binding, so neither side ever sends a record, an id or a fingerprint
to a peer that is not a member.

Then, twice (first the record ids, then the roots of the batches each side may carry): the two reconcile; the
initiator fetches what it lacks (WANT frames pipelined `WINDOW` deep), sends FETCHED, and the responder fetches
the other way. Every record is verified (asked for, canonical, hashes to its id, fits the Datanet's task), and
verified records are committed in groups of up to 16 MiB or one second (transfer.CommitGroups), as received from
this peer: never the receiver's own. Every batch claim is stored unverified, then checked in its own lane once the
session's data is in (`carried.verify_carried`: off the event loop, its root recomputed from the records held here, its
Groth16 proof verified); a claim that does not check out cuts the peer off, and nothing of that peer's unchecked
claims is kept. A WANT for a record that reconciliation did not show the peer lacks is a violation too. An
interrupted session keeps every record it had verified, and the next one asks only for what is still missing.

A `/datanet/sync/1.0.0` peer (no provenance) is answered with one REFUSED frame saying to upgrade (`refuse_legacy`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol

import trio

from client.db_lane import DbLane
from client.p2p import admission, carried, checking, claims, transfer
from client.p2p.errors import ProtocolViolation
from client.p2p.frames import (
    BATCHES,
    FETCHED,
    HELLO,
    RECONCILE,
    REFUSED,
    TRANSFER,
    WELCOME,
    Counters,
    FrameStream,
    Limits,
    Refused,
    Throttle,
)
from client.p2p.progress import ProgressCallback, Reporter, SyncProgress, SyncResult
from client.p2p.reconcile import Reconciler
from storage.provenance import BatchClaim
from storage.shard import NewRecord, Shard

logger = logging.getLogger(__name__)

VERSION = 2  # the HELLO's version byte of /datanet/sync/1.1.0
WINDOW = 4  # WANT frames in flight
PARTS = 8  # the need is split across this many sequential fetchers, interleaved to keep WINDOW frames in flight
UPGRADE = "this node speaks /datanet/sync/1.1.0, which carries provenance; upgrade datanet to sync with it"

RecordCheck = Callable[[dict[str, Any]], None]  # raises RecordError for a record the Datanet does not take

__all__ = [
    "BATCHES",
    "FETCHED",
    "HELLO",
    "RECONCILE",
    "REFUSED",
    "TRANSFER",
    "WELCOME",
    "Counters",
    "FrameStream",
    "Limits",
    "ProgressCallback",
    "Refused",
    "SyncProgress",
    "SyncResult",
    "admit",
    "admitted_on_chain",
    "credential_for",
    "hello",
    "initiate",
    "parse_hello",
    "refuse_legacy",
    "respond",
]


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


async def admitted_on_chain(
    peer: str, shard: Shard, credential: bytes | None, chain_member: admission.ChainMembership | None
) -> str | None:
    """The on-chain account that admits `peer` to this bound shard, or None (never for an unbound shard)."""
    binding = shard.binding()
    if credential is None or chain_member is None or binding is None:
        return None
    account = admission.credential_account(credential, peer, binding)
    if account is None:
        return None
    return account if await chain_member(binding, account) else None


def credential_for(shard: Shard, evm_private_key: bytes | None, peer_id: str) -> bytes | None:
    """Our on-chain membership proof for a bound shard (it names our account), when chain admission is on."""
    binding = shard.binding()
    if evm_private_key is None or binding is None:
        return None
    return admission.make_credential(evm_private_key, peer_id, binding)


async def _reconcile(frames: FrameStream, ids: list[bytes], *, initiator: bool, max_need: int) -> Reconciler:
    reconciler = Reconciler(ids)
    if initiator:
        await frames.send(RECONCILE, reconciler.initiate())
    while True:
        reply = reconciler.receive(await frames.expect(RECONCILE))
        if len(reconciler.need) > max_need:
            raise ProtocolViolation(f"The peer claims {len(reconciler.need)} items we lack, over the {max_need} limit.")
        if reply is None:
            return reconciler
        await frames.send(RECONCILE, reply)
        if reconciler.done:
            return reconciler


def _check_want(ids: list[bytes], offered: set[bytes], served: set[bytes]) -> None:
    """A WANT may ask only for ids reconciliation showed the peer lacks, each once (an honest fetcher asks again
    only for what it was not sent)."""
    if not set(ids) <= offered:
        raise ProtocolViolation("The peer asked for records that reconciliation did not show it lacks.")
    if not served.isdisjoint(ids):
        raise ProtocolViolation("The peer asked again for records it was sent.")


class _Fetcher(Protocol):
    def next_request(self) -> bytes | None: ...
    def receive(self, frame: bytes) -> Any: ...


# (Datanet, peer, record ids): records this node just sent to a peer (the audit log's "records.sent").
SentCallback = Callable[[str, str, list[bytes]], None]


class _Session:
    """The two phases (records, then batch claims) of one session, from one side."""

    lane: DbLane  # the shard's reads and writes during the records phase, off the event loop

    def __init__(
        self,
        frames: FrameStream,
        shard: Shard,
        peer: str,
        result: SyncResult,
        report: Reporter,
        check_record: RecordCheck | None,
        on_sent: SentCallback | None = None,
    ) -> None:
        self.frames = frames
        self.shard = shard
        self.peer = peer
        self.result = result
        self.report = report
        self.check_record = check_record
        self.on_sent = on_sent

    async def run(self, *, initiator: bool) -> None:
        """Records, then batch claims. The frames are pumped (read ahead) meanwhile, so neither side ever waits
        on the other's writing; a violation anywhere ends the session with it."""
        error: Exception | None = None
        async with trio.open_nursery() as nursery:
            await nursery.start(self.frames.pump)
            self.lane = DbLane(nursery)
            try:
                await self._records(initiator=initiator)
                await self._batches(initiator=initiator)
            except Exception as exc:  # raised below, outside the nursery (not wrapped in an ExceptionGroup)
                error = exc
            finally:
                self.lane.close()  # its worker runs what is queued, then ends
            nursery.cancel_scope.cancel()
        if error is not None:  # a failed session's carried claims are never checked: none of them stays
            self.shard.provenance.drop_unverified_from(self.peer)
            raise error

    async def _records(self, *, initiator: bool) -> None:
        """Reconcile record ids and fetch what we lack at the same time: every id reconciliation shows we lack
        is asked for at once (WINDOW WANTs in flight), while the peer's WANTs are answered as they come. Each
        side sends FETCHED once reconciliation is over and it holds everything it asked for; the phase ends when
        both have."""
        lane = self.lane
        reconciler = Reconciler(await lane.call(self.shard.ids))
        limits = self.frames.limits
        wanted: deque[bytes] = deque()
        retry: deque[transfer.Fetcher] = deque()
        in_flight: deque[transfer.Fetcher] = deque()
        sent_fetched = got_fetched = False
        served: set[bytes] = set()  # records sent to the peer: asking for one again is a violation
        verified = byte_count = 0
        ready: list[list[tuple[bytes, bytes]]] = []  # groups of verified records to commit, in order
        groups = transfer.CommitGroups(ready.append)

        async def commit_ready() -> None:  # in the lane, while the loop goes on verifying
            while ready:
                await lane.write_behind(partial(self._store, ready[0]))
                ready.pop(0)  # only once queued: a cancelled wait for room leaves it for the error path

        if initiator:
            await self.frames.send(RECONCILE, reconciler.initiate())
        try:
            while not (sent_fetched and got_fetched):
                while len(in_flight) < WINDOW and (retry or wanted):
                    if retry:
                        fetcher = retry.popleft()
                    else:
                        chunk = [wanted.popleft() for _ in range(min(transfer.CHUNK_IDS, len(wanted)))]
                        fetcher = transfer.Fetcher(chunk, check=self.check_record)
                    request = fetcher.next_request()
                    if request is not None:
                        await self.frames.send(TRANSFER, request)
                        in_flight.append(fetcher)
                if reconciler.done and not (in_flight or retry or wanted or sent_fetched):
                    groups.flush()
                    await commit_ready()
                    await lane.drain()
                    await self.frames.send(FETCHED)
                    sent_fetched = True
                    continue
                kind, payload = await self.frames.receive()
                if kind == RECONCILE:
                    reply = reconciler.receive(payload)
                    if len(reconciler.need) > limits.max_need:
                        raise ProtocolViolation(
                            f"The peer claims {len(reconciler.need)} records we lack, over the {limits.max_need} a "
                            "session takes."
                        )
                    wanted.extend(reconciler.take_new_need())
                    if reply is not None:
                        await self.frames.send(RECONCILE, reply)
                    self.result.rounds = reconciler.rounds
                elif kind == TRANSFER and payload[1:2] == bytes([transfer.WANT]):
                    ids = transfer.decode_want(payload)
                    _check_want(ids, reconciler.offered, served)
                    found = await lane.call(partial(self.shard.bodies, ids))
                    reply, count = transfer.answer(found)
                    served.update(record_id for record_id, _ in found[:count])
                    self.result.sent += count
                    await self.frames.send(TRANSFER, reply)
                    if self.on_sent is not None and count:  # the audit of what left: each answer as it goes
                        self.on_sent(self.shard.info.name, self.peer, [record_id for record_id, _ in found[:count]])
                elif kind == TRANSFER:
                    if not in_flight:
                        raise ProtocolViolation("The peer sent records that were not asked for.")
                    fetcher = in_flight.popleft()
                    records = await self._checked(fetcher, payload)
                    groups.add(records)
                    await commit_ready()
                    verified += len(records)
                    byte_count += sum(len(body) for _, body in records)
                    if fetcher.progress.records_left:
                        retry.append(fetcher)
                    self.report("fetch", verified, len(reconciler.need) - verified, byte_count)
                elif kind == FETCHED and not got_fetched and reconciler.done:
                    got_fetched = True
                else:
                    raise ProtocolViolation(f"The peer sent a frame of type {kind} out of turn.")
        except BaseException:
            with trio.CancelScope(shield=True):  # what was verified is kept, whatever ended the session
                try:
                    groups.flush()
                    await commit_ready()
                    await lane.drain()
                except Exception as exc:  # logged, not raised over what ended the session
                    logger.warning("records verified from peer %s could not be stored (%s)", self.peer, exc)
            raise

    async def _checked(self, fetcher: transfer.Fetcher, frame: bytes) -> list[tuple[bytes, bytes]]:
        """A RECORDS frame's records, every one checked, in the checker process (checking.py): a 4 MiB frame is
        about 50 ms of pure Python that would hold the node's interpreter lock, and its control API, back."""
        records = fetcher.delivered(frame)
        problem = await checking.problem_of(records, self.check_record)
        if problem is not None:
            raise ProtocolViolation(problem)
        fetcher.settle(records)
        return records

    def _store(self, records: list[tuple[bytes, bytes]]) -> None:
        """Commit verified records in one transaction, as received from the peer (never our own)."""
        added, _ = self.shard.add_records(
            (NewRecord(i, body, f"peer {self.peer}") for i, body in records), received_from=self.peer
        )
        self.result.received += added

    async def _batches(self, *, initiator: bool) -> None:
        store = self.shard.provenance
        mine = store.shareable_roots()
        roots = await _reconcile(self.frames, mine, initiator=initiator, max_need=self.frames.limits.max_claims)
        need = roots.need - store.known_roots()
        carried = set(mine) & roots.offered
        answer = self._claims(carried)
        if initiator:
            await self._fetch_claims(need)
            await self._serve(BATCHES, answer)
        else:
            await self._serve(BATCHES, answer)
            await self._fetch_claims(need)

    def _claims(self, carried: set[bytes]) -> Callable[[bytes], bytes]:
        """Answers to the peer's WANTs of batch claims: only roots we offered, each sent once; a root we cannot
        carry (a record of it deleted meanwhile) may be asked for twice (an honest fetcher asks again for what a
        partial answer left out), never more."""
        store = self.shard.provenance
        asked: Counter[bytes] = Counter()

        def answer(request: bytes) -> bytes:
            def lookup(roots: list[bytes]) -> list[BatchClaim]:
                if not set(roots) <= carried:
                    raise ProtocolViolation("The peer asked for batches we did not offer it, or were sent already.")
                asked.update(roots)
                if any(asked[root] > 2 for root in roots):
                    raise ProtocolViolation("The peer keeps asking for a batch that cannot be sent.")
                return [claim for root in roots if (claim := store.claim(root)) is not None]

            reply, sent = claims.serve(request, lookup)
            carried.difference_update(sent)
            self.result.batches_sent += len(sent)
            return reply

        return answer

    async def _serve(self, kind: int, answer: Callable[[bytes], bytes]) -> None:
        """Answer the peer's WANT frames of this phase until it says FETCHED."""
        while True:
            got, payload = await self.frames.receive()
            if got == FETCHED:
                return
            if got != kind:
                raise ProtocolViolation(f"The peer sent a frame of type {got} where a WANT was expected.")
            await self.frames.send(kind, answer(payload))

    async def _fetch_claims(self, need: set[bytes]) -> None:
        """Fetch the batch claims we lack and store each frame's unverified as it arrives: nothing shows, uses or
        forwards them until `carried.verify_carried` has checked them, after the session."""
        ordered = sorted(need)
        fetchers = [claims.ClaimFetcher(ordered[i::PARTS]) for i in range(PARTS) if ordered[i::PARTS]]
        store = self.shard.provenance

        def keep(carried: list[BatchClaim]) -> None:
            store.add_claims(carried, self.peer, int(time.time() * 1000))
            self.result.batches_carried += len(carried)

        await self._pipeline(BATCHES, fetchers, keep)

    async def _pipeline(self, kind: int, fetchers: Sequence[_Fetcher], keep: Callable[[Any], None]) -> None:
        """Keep WINDOW requests of the fetchers in flight, hand every answer to `keep`, then say FETCHED."""
        in_flight: deque[_Fetcher] = deque()
        waiting: deque[_Fetcher] = deque(fetchers)

        async def top_up() -> None:
            while len(in_flight) < WINDOW and waiting:
                fetcher = waiting.popleft()
                request = fetcher.next_request()
                if request is None:
                    continue
                await self.frames.send(kind, request)
                in_flight.append(fetcher)

        await top_up()
        while in_flight:
            fetcher = in_flight.popleft()
            keep(fetcher.receive(await self.frames.expect(kind)))
            waiting.append(fetcher)
            await top_up()
        await self.frames.send(FETCHED)


async def initiate(
    stream: object,
    shard: Shard,
    peer: str,
    *,
    local_member: bool = True,
    credential: bytes | None = None,
    chain_member: admission.ChainMembership | None = None,
    on_progress: ProgressCallback | None = None,
    check_record: RecordCheck | None = None,
    limits: Limits | None = None,
    on_sent: SentCallback | None = None,
    throttle: Throttle | None = None,
) -> SyncResult:
    """Sync `shard` with the peer at the other end of `stream`. A peer that is not `local_member` (in the vault)
    must prove membership of the shard's bound on-chain Datanet in its WELCOME before anything else is sent."""
    result = SyncResult(shard.info.name, peer)
    counters = Counters()
    frames = FrameStream(stream, counters, limits, throttle)
    report = Reporter(result, on_progress)
    started = time.perf_counter()
    await frames.send(HELLO, hello(shard.info.name, credential))
    welcome = await frames.expect(WELCOME)
    if welcome and len(welcome) != admission.CREDENTIAL_BYTES:
        raise ProtocolViolation("The peer's WELCOME carries a malformed credential.")
    if not local_member and await admitted_on_chain(peer, shard, welcome or None, chain_member) is None:
        raise Refused(f"Peer {peer} is neither a member here nor proves membership on chain; nothing was sent.")
    await _Session(frames, shard, peer, result, report, check_record, on_sent).run(initiator=True)
    _finish(result, counters, started, report)
    await carried.verify_carried(shard, peer, result)
    return result


async def admit(
    frames: FrameStream,
    peer: str,
    open_shard: Callable[[str], Shard | None],
    chain_member: admission.ChainMembership | None,
) -> tuple[Shard, str]:
    """The responder's admission: read the HELLO and open the shard named exactly so; the peer must be a member
    (vault) or prove membership of the shard's bound Datanet on chain. Returns the open shard and how the peer was
    admitted; refuses (REFUSED, then Refused) otherwise. Takes no lock: run it before any."""
    name, credential = parse_hello(await frames.expect(HELLO))
    shard = open_shard(name)
    how = "vault"
    admitted = shard is not None and shard.is_member(peer)
    if shard is not None and not admitted:
        account = await admitted_on_chain(peer, shard, credential, chain_member)
        admitted, how = account is not None, f"chain account {account}"
    if shard is None or not admitted:
        if shard is not None:
            logger.warning("refused sync of shard %s from peer %s: not a member", shard.info.uuid, peer)
            shard.close()
        else:  # the name is not logged: the log names shards by uuid only
            logger.warning("refused sync from peer %s: no Datanet of the name it asked for here", peer)
        await frames.send(REFUSED, b"not a member of this Datanet here")
        raise Refused(f"Refused peer {peer}: not a member of that Datanet here.")
    logger.info("peer %s admitted to shard %s (%s)", peer, shard.info.uuid, how)
    return shard, how


async def respond(
    frames: FrameStream,
    shard: Shard,
    peer: str,
    *,
    credential: bytes | None = None,
    on_progress: ProgressCallback | None = None,
    check_record: RecordCheck | None = None,
    on_sent: SentCallback | None = None,
) -> SyncResult:
    """Answer an admitted session (see `admit`): WELCOME, then reconcile, serve, fetch."""
    await frames.send(WELCOME, credential or b"")
    result = SyncResult(shard.info.name, peer)
    report = Reporter(result, on_progress)
    started = time.perf_counter()
    await _Session(frames, shard, peer, result, report, check_record, on_sent).run(initiator=False)
    _finish(result, frames.counters, started, report)
    await carried.verify_carried(shard, peer, result)
    return result


async def refuse_legacy(stream: object) -> None:
    """Answer a `/datanet/sync/1.0.0` session: one REFUSED frame saying to upgrade."""
    frames = FrameStream(stream, Counters(), Limits(frame_deadline=10.0))
    await frames.expect(HELLO)
    await frames.send(REFUSED, UPGRADE.encode())


def _finish(result: SyncResult, counters: Counters, started: float, report: Reporter) -> None:
    result.bytes_sent, result.bytes_received = counters.bytes_sent, counters.bytes_received
    result.seconds = time.perf_counter() - started
    report("done", result.received, 0, counters.bytes_received, force=True)
