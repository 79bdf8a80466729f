"""The sync service of a node: answers `/datanet/sync/1.1.0` streams for every Datanet in the vault (and
`/datanet/sync/1.0.0` ones with one sentence saying to upgrade), and starts sessions with peers.

Admission (a shard of exactly the HELLO's name; the peer in its member list, or proven a member of its bound
on-chain Datanet) happens before any lock is taken. A peer has one session of a Datanet at a time; sessions of
different peers run side by side, each on its own SQLCipher connection (SQLite serialises their short commit
transactions; a record that two sessions fetch at once is stored once). A session used to hold its Datanet whole:
one member that stalled until its frame deadline then held every other member's sync back (bench/hostile.py: an
honest sync ran at 0.06 of its rate under attack). What one peer may take
is capped by `PeerCaps` ([limits]): sessions at once (each one stream: py-libp2p 0.8.1 enforces no per-peer
stream limit of its own), frames buffered for it (its sessions' share of a memory cap) and bytes a second sent
to it (one throttle across its sessions).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio
from libp2p.host.exceptions import StreamFailure

from client.datanet import check_record
from client.identity import Identity
from client.p2p import admission, sync
from client.p2p.errors import P2PError, ProtocolViolation
from client.p2p.frames import Counters, FrameStream, Limits, Throttle, close_stream, reset_stream
from client.p2p.host import LEGACY_SYNC_PROTOCOL, SYNC_PROTOCOL, IHost, PeerInfo, peer_info
from storage.errors import ShardNotFound
from storage.shard import Shard
from storage.vault import Vault

logger = logging.getLogger(__name__)
CONNECT_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class PeerCaps:
    sessions: int = 4  # sync sessions (streams) one peer may hold with us at once
    memory: int = 64 << 20  # bytes of read-ahead frames, all of a peer's sessions together
    upload_rate: float = 0.0  # bytes a second sent to one peer (0: no cap)


class NotAMember(P2PError):
    pass


def record_check(shard: Shard) -> sync.RecordCheck:
    """What a record received for this shard must look like: its Datanet's task (client.datanet)."""
    return functools.partial(check_record, shard.info.task)  # a partial pickles: the checker process runs it


class SyncService:
    def __init__(
        self,
        vault: Vault,
        identity: Identity,
        host: IHost,
        *,
        on_progress: sync.ProgressCallback | None = None,
        on_result: Callable[[sync.SyncResult], None] | None = None,
        chain_member: admission.ChainMembership | None = None,
        limits: Limits | None = None,
        on_sent: sync.SentCallback | None = None,
        on_refused: Callable[[str, str], None] | None = None,
        caps: PeerCaps | None = None,
        connect: Callable[[PeerInfo], Awaitable[None]] | None = None,
    ) -> None:
        self.chain_member = chain_member  # on-chain admission (a shared chain); None: the vault's members only
        self.vault = vault
        self.identity = identity
        self.host = host
        self.on_progress = on_progress
        self.on_result = on_result
        self.on_sent = on_sent  # records sent to a peer, as they go (the audit log)
        self.on_refused = on_refused  # (peer, why): a session refused at admission (the audit log)
        self.caps = caps or PeerCaps()
        limits = limits or Limits()
        # Each session's share of the peer's memory cap (the read-ahead is the one buffer a peer fills).
        self.limits = dataclasses.replace(
            limits, max_buffered=min(limits.max_buffered, self.caps.memory // self.caps.sessions)
        )
        self.connect = connect or host.connect  # through a relay for a /p2p-circuit address (client/p2p/relay.py)
        self._throttles: dict[str, Throttle] = {}
        self._locks: dict[tuple[str, str], trio.Lock] = {}  # (shard uuid, peer) -> that peer's one session of it
        self._sessions: Counter[str] = Counter()  # peer -> sessions open now
        host.set_stream_handler(SYNC_PROTOCOL, self._handle)
        host.set_stream_handler(LEGACY_SYNC_PROTOCOL, self._handle_legacy)

    def _throttle(self, peer: str) -> Throttle | None:
        if not self.caps.upload_rate:
            return None
        return self._throttles.setdefault(peer, Throttle(self.caps.upload_rate))

    def _lock(self, shard: Shard, peer: str) -> trio.Lock:
        return self._locks.setdefault((shard.info.uuid, peer), trio.Lock())

    def _open(self, name: str) -> Shard | None:
        try:
            return self.vault.open_shard(name)
        except ShardNotFound:
            return None

    def _credential(self, shard: Shard) -> bytes | None:
        """Our proof of on-chain membership, sent only when on-chain admission is on (it names our account)."""
        if self.chain_member is None:
            return None
        return sync.credential_for(shard, self.identity.evm_private_key, str(self.host.get_id()))

    async def _handle_legacy(self, stream: object) -> None:
        peer = str(stream.muxed_conn.peer_id)  # type: ignore[attr-defined]
        try:
            await sync.refuse_legacy(stream)
            logger.warning("peer %s speaks /datanet/sync/1.0.0 only: told to upgrade", peer)
        except (P2PError, ProtocolViolation) as exc:
            logger.warning("legacy session of peer %s: %s", peer, exc)
        await close_stream(stream)

    async def _handle(self, stream: object) -> None:
        peer = str(stream.muxed_conn.peer_id)  # type: ignore[attr-defined]  # authenticated by Noise
        if self._sessions[peer] >= self.caps.sessions:
            logger.warning("peer %s already holds %d sync sessions: stream refused", peer, self.caps.sessions)
            await reset_stream(stream)
            return
        self._sessions[peer] += 1
        try:
            frames = FrameStream(stream, Counters(), self.limits, self._throttle(peer))
            shard, _ = await sync.admit(frames, peer, self._open, self.chain_member)
            with shard:
                async with self._lock(shard, peer):
                    result = await sync.respond(
                        frames,
                        shard,
                        peer,
                        credential=self._credential(shard),
                        on_progress=self.on_progress,
                        check_record=record_check(shard),
                        on_sent=self.on_sent,
                    )
            if self.on_result is not None:
                self.on_result(result)
            logger.info("sync with %s: %d received, %d sent", peer, result.received, result.sent)
        except sync.Refused as exc:
            logger.warning("%s", exc)
            if self.on_refused is not None:
                self.on_refused(peer, str(exc))
            await close_stream(stream)
        except ProtocolViolation as exc:
            logger.warning("peer %s cut off: %s", peer, exc)
            await reset_stream(stream)
        except Exception:  # a storage or stream failure ends this session only; the node goes on
            logger.exception("sync session with %s failed", peer)
            await reset_stream(stream)
        else:
            await close_stream(stream)
        finally:
            self._sessions[peer] -= 1
            if not self._sessions[peer]:
                del self._sessions[peer]
                self._throttles.pop(peer, None)

    async def sync_with(self, address: str, name: str) -> sync.SyncResult:
        """One session with the peer at `address` for Datanet `name`; the peer must be one of its members (in the
        vault, or proven a member of the shard's bound on-chain Datanet when on-chain admission is on)."""
        info = peer_info(address)
        with self.vault.open_shard(name) as shard:
            local_member = shard.is_member(str(info.peer_id))
            if not local_member and (self.chain_member is None or shard.binding() is None):
                raise NotAMember(
                    f"Peer {info.peer_id} is not a member of Datanet {name!r} here; add it with "
                    f"`datanet members {name} add {info.peer_id}` first."
                )
        with trio.fail_after(CONNECT_TIMEOUT):
            await self.connect(info)
            try:
                stream = await self.host.new_stream(info.peer_id, [SYNC_PROTOCOL])
            except StreamFailure:
                raise P2PError(
                    f"Peer {info.peer_id} does not speak {SYNC_PROTOCOL}: it runs an older datanet (it must upgrade "
                    "to sync with this one) or does not sync at all."
                ) from None
        try:
            with self.vault.open_shard(name) as shard:
                async with self._lock(shard, str(info.peer_id)):
                    result = await sync.initiate(
                        stream,
                        shard,
                        str(info.peer_id),
                        local_member=local_member,
                        credential=self._credential(shard),
                        chain_member=self.chain_member,
                        on_progress=self.on_progress,
                        check_record=record_check(shard),
                        limits=self.limits,
                        on_sent=self.on_sent,
                        throttle=self._throttle(str(info.peer_id)),
                    )
        except (ProtocolViolation, sync.Refused):
            await reset_stream(stream)
            raise
        await close_stream(stream)
        return result
