"""The sync service of a node: answers `/datanet/sync/1.0.0` streams for every Datanet in the vault, and starts
sessions with peers. Admission is checked on both ends against the Datanet's members (peer ids) in the vault."""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from client.identity import Identity
from client.p2p import admission, sync
from client.p2p.errors import P2PError, ProtocolViolation
from client.p2p.host import SYNC_PROTOCOL, IHost, peer_info
from storage.errors import ShardNotFound
from storage.shard import Shard
from storage.vault import Vault

logger = logging.getLogger(__name__)
CONNECT_TIMEOUT = 20.0


class NotAMember(P2PError):
    pass


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
    ) -> None:
        self.chain_member = chain_member  # on-chain admission (a shared chain); None: the vault's members only
        self.vault = vault
        self.identity = identity
        self.host = host
        self.on_progress = on_progress
        self.on_result = on_result
        self.lock = trio.Lock()  # one session at a time touches the vault (SQLCipher connections are not shared)
        host.set_stream_handler(SYNC_PROTOCOL, self._handle)

    def _open(self, name: str) -> Shard | None:
        try:
            return self.vault.open_shard(name)
        except ShardNotFound:
            return None

    async def _handle(self, stream: object) -> None:
        peer = str(stream.muxed_conn.peer_id)  # type: ignore[attr-defined]  # authenticated by Noise
        try:
            async with self.lock:
                result = await sync.respond(
                    stream,
                    peer,
                    self._open,
                    credential_for=self._credential,
                    chain_member=self.chain_member,
                    on_progress=self.on_progress,
                )
            if self.on_result is not None:
                self.on_result(result)
            logger.info("sync with %s: %d received, %d sent", peer, result.received, result.sent)
        except sync.Refused as exc:
            logger.warning("%s", exc)
            await _close(stream)
        except ProtocolViolation as exc:
            logger.warning("peer %s cut off: %s", peer, exc)
            await _reset(stream)
        except Exception:  # a storage or stream failure ends this session only; the node goes on
            logger.exception("sync session with %s failed", peer)
            await _reset(stream)
        else:
            await _close(stream)

    def _credential(self, name: str) -> bytes | None:
        """Our proof of on-chain membership, sent only when on-chain admission is on (it names our account)."""
        if self.chain_member is None:
            return None
        return admission.make_credential(self.identity.evm_private_key, str(self.host.get_id()), name)

    async def sync_with(self, address: str, name: str) -> sync.SyncResult:
        """One session with the peer at `address` for Datanet `name`; the peer must be one of its members (in the
        vault, or proven on chain when on-chain admission is on)."""
        info = peer_info(address)
        with self.vault.open_shard(name) as shard:
            local_member = shard.is_member(str(info.peer_id))
            if not local_member and self.chain_member is None:
                raise NotAMember(
                    f"Peer {info.peer_id} is not a member of Datanet {name!r} here; add it with "
                    f"`datanet members {name} add {info.peer_id}` first."
                )
        with trio.fail_after(CONNECT_TIMEOUT):
            await self.host.connect(info)
            stream = await self.host.new_stream(info.peer_id, [SYNC_PROTOCOL])
        try:
            async with self.lock:
                with self.vault.open_shard(name) as shard:
                    result = await sync.initiate(
                        stream,
                        shard,
                        str(info.peer_id),
                        local_member=local_member,
                        credential=self._credential(name),
                        chain_member=self.chain_member,
                        on_progress=self.on_progress,
                    )
        except (ProtocolViolation, sync.Refused):
            await _reset(stream)
            raise
        await _close(stream)
        return result


async def _close(stream: object) -> None:
    try:
        await stream.close()  # type: ignore[attr-defined]
    except Exception:  # the peer may be gone already
        logger.debug("closing a sync stream failed", exc_info=True)


async def _reset(stream: object) -> None:
    try:
        await stream.reset()  # type: ignore[attr-defined]
    except Exception:
        logger.debug("resetting a sync stream failed", exc_info=True)
