"""Adapters shared with a Datanet's members, in the node: which adapters are offered (`adapters.share`), the
sharer's side of `/datanet/adapters/1.0.0` (an adapter shared, to a member of its Datanet only; the audit log
records it leaving), and fetching one (`adapters.fetch`): content-checked by the protocol, checked against its
on-chain registration here, then stored with its manifest sealed under this vault's key and where it came from."""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from client.app.chain import ChainService
from client.errors import ClientError
from client.identity import Identity
from client.p2p import adapter_share, sync
from client.p2p.admission import ChainMembership
from client.p2p.host import ADAPTER_PROTOCOL, IHost, peer_info
from client.training import adapters
from storage.errors import ShardNotFound
from storage.vault import Vault

logger = logging.getLogger(__name__)
_ID = re.compile(r"^[0-9a-f]{64}$")
FETCH_TIMEOUT = 300.0


class Sharing:
    def __init__(
        self,
        *,
        vault: Vault,
        identity: Identity,
        data_dir: Path,
        host: IHost,
        chain: ChainService,
        chain_member: ChainMembership | None,
        on_sent: Callable[[str, str, str], None],
    ) -> None:
        self.vault = vault
        self.identity = identity
        self.data_dir = data_dir
        self.host = host
        self.chain = chain
        self.chain_member = chain_member
        self.on_sent = on_sent  # (peer, adapter id, Datanet): the audit log
        for stale in (data_dir / adapters.ADAPTERS_DIR).glob(".fetch-*"):  # a fetch a crash interrupted
            shutil.rmtree(stale, ignore_errors=True)
        host.set_stream_handler(ADAPTER_PROTOCOL, self._on_stream)

    def _key(self) -> bytes:
        return adapters.manifest_key(self.vault)

    async def _on_stream(self, stream: Any) -> None:
        await adapter_share.serve(stream, self._decide, self.on_sent)

    async def _decide(self, peer: str, adapter_id: str, credential: bytes | None) -> adapter_share.Offer:
        def find() -> adapters.AdapterInfo | None:
            if adapter_id not in adapters.shared_ids(self.data_dir, self._key()):
                return None
            return adapters.find(self.data_dir, adapter_id, self._key())

        info = await trio.to_thread.run_sync(find)
        if info is None:
            raise adapter_share.NotShared("that adapter is not shared here.")
        try:
            shard = self.vault.open_shard(str(info.manifest["datanet"]["name"]))
        except ShardNotFound:
            raise adapter_share.NotShared("that adapter is not shared here.") from None
        with shard:
            member = shard.is_member(peer) or (
                await sync.admitted_on_chain(peer, shard, credential, self.chain_member) is not None
            )
        if not member:
            logger.warning("adapter %s refused to peer %s: not a member", adapter_id[:12], peer)
            raise adapter_share.NotShared("this node is not a member of the adapter's Datanet there.")
        return adapter_share.Offer(info.manifest, info.path)

    def methods(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        async def share(params: dict[str, Any]) -> Any:
            def work() -> dict[str, Any]:
                info = adapters.find(self.data_dir, str(params["id"]), self._key())
                adapters.verify(info)
                stop = bool(params.get("stop"))
                if not stop:
                    self.chain.check_adapter(info.adapter_id, info.manifest)
                adapters.set_shared(self.data_dir, self._key(), info.adapter_id, not stop)
                return {"adapter_id": info.adapter_id, "shared": not stop}

            return await trio.to_thread.run_sync(work)

        async def fetch(params: dict[str, Any]) -> Any:
            adapter_id = str(params["id"]).lower()
            if not _ID.match(adapter_id):
                raise ClientError("Fetching needs the adapter's whole id (64 hex digits): its content address.")
            try:
                info = peer_info(str(params["peer"]))
            except ValueError as exc:
                raise ClientError(str(exc)) from None
            if (self.data_dir / adapters.ADAPTERS_DIR / adapter_id).exists():
                raise ClientError(f"Adapter {adapter_id[:12]} is here already; `datanet adapters show` shows it.")
            staging = self.data_dir / adapters.ADAPTERS_DIR / f".fetch-{secrets.token_hex(6)}"
            try:
                with trio.fail_after(FETCH_TIMEOUT):
                    await self.host.connect(info)
                    manifest = await adapter_share.fetch(self.host, info.peer_id, adapter_id, None, staging)
            except trio.TooSlowError:
                shutil.rmtree(staging, ignore_errors=True)
                raise ClientError("The peer did not send the adapter in time.") from None
            except adapter_share.NotShared as exc:
                raise ClientError(str(exc)) from None
            except Exception as exc:  # py-libp2p's dial errors share no base class
                shutil.rmtree(staging, ignore_errors=True)
                if type(exc).__module__.startswith("libp2p"):
                    raise ClientError(f"Cannot reach the peer at {params['peer']} ({type(exc).__name__}).") from exc
                raise

            def keep() -> dict[str, Any]:
                try:
                    registration = self.chain.check_adapter(adapter_id, manifest)
                    received = {
                        **manifest,
                        "received": {
                            "from": str(info.peer_id),
                            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "registration": registration,
                            # checked: the files (the id) and, on chain, the Datanet and base model; the rest of
                            # the manifest (labels, what it was trained on, evaluation, DP) is the sharer's word
                            "checked": ["files", "datanet", "base_model"],
                        },
                    }
                    for field in ("format", "adapter_id", "files"):  # the store writes its own
                        received.pop(field, None)
                    stored = adapters.store(staging, self.data_dir, received, self._key())
                except BaseException:
                    shutil.rmtree(staging, ignore_errors=True)
                    raise
                return {
                    "adapter_id": stored.adapter_id,
                    "datanet": manifest["datanet"]["name"],
                    "peer": str(info.peer_id),
                }

            return await trio.to_thread.run_sync(keep)

        return {"adapters.share": share, "adapters.fetch": fetch}
