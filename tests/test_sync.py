"""Sync between real libp2p hosts on 127.0.0.1 (Noise, yamux) with real vaults: convergence of three nodes,
incremental sync, admission, hostile peers, and plaintext peers."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.exceptions import SwarmException
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX
from libp2p.stream_muxer.yamux.yamux import Yamux

from client.identity import Identity
from client.p2p import sync, transfer
from client.p2p.errors import ProtocolViolation
from client.p2p.host import SYNC_PROTOCOL, IHost, new_secure_host, peer_info
from client.p2p.reconcile import Reconciler
from client.p2p.service import NotAMember, SyncService
from client.records import canonical_bytes
from storage.key_file import Argon2Params
from storage.shard import ChainBinding, NewRecord
from storage.vault import Vault

FAST = Argon2Params(time_cost=1, memory_kib=1024, parallelism=1)
LISTEN = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
NAME = "ward"


def record(n: int, size: int = 200) -> NewRecord:
    body = canonical_bytes({"text": f"note {n} " + "x" * size, "label": f"l{n % 5}"})
    return NewRecord(hashlib.sha256(body).digest(), body, "test")


@dataclass
class Node:
    vault: Vault
    identity: Identity
    host: IHost
    service: SyncService

    @property
    def peer_id(self) -> str:
        return str(self.host.get_id())

    @property
    def address(self) -> str:
        return f"{self.host.get_addrs()[0]}"

    def ids(self) -> set[bytes]:
        with self.vault.open_shard(NAME) as shard:
            return set(shard.ids())

    def add(self, records: list[NewRecord]) -> None:
        with self.vault.open_shard(NAME) as shard:
            shard.add_records(records)

    def allow(self, *others: Node | str) -> None:
        with self.vault.open_shard(NAME) as shard:
            for other in others:
                shard.set_member(other if isinstance(other, str) else other.peer_id, True)


@asynccontextmanager
async def running(tmp_path: Path, count: int) -> AsyncIterator[list[Node]]:
    async with AsyncExitStack() as stack:
        nodes = []
        for i in range(count):
            vault, _ = Vault.create(tmp_path / f"node{i}", keystore=None, passphrase="pw", argon2=FAST)
            vault.create_shard(NAME, "intent-classification").close()
            identity = Identity.generate()
            host = new_secure_host(identity)
            await stack.enter_async_context(host.run(listen_addrs=LISTEN))
            stack.push_async_callback(host.close)  # closes its connections (run() alone leaves sockets open)
            nodes.append(Node(vault, identity, host, SyncService(vault, identity, host)))
        yield nodes


@asynccontextmanager
async def _closing(host: IHost) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await host.close()


def with_p2p(address: str, peer: str) -> str:
    return address if "/p2p/" in address else f"{address}/p2p/{peer}"


async def sync_pair(a: Node, b: Node) -> sync.SyncResult:
    return await a.service.sync_with(with_p2p(b.address, b.peer_id), NAME)


def test_three_nodes_converge_from_different_starting_sets(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, 3) as (a, b, c):
            for node in (a, b, c):
                node.allow(*(other for other in (a, b, c) if other is not node))
            a.add([record(i) for i in range(0, 300)])
            b.add([record(i) for i in range(200, 500)])
            c.add([record(i) for i in range(450, 600)])
            first = await sync_pair(a, b)
            assert (first.received, first.sent) == (200, 200)
            await sync_pair(c, b)
            await sync_pair(a, c)
            union = {record(i).record_id for i in range(600)}
            assert a.ids() == b.ids() == c.ids() == union
            with b.vault.open_shard(NAME) as shard:  # what arrived is byte-identical and checks out
                assert shard.check().ok
                assert shard.get(record(599).record_id).body == record(599).body

    trio.run(main)


def test_incremental_sync_sends_only_the_difference(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, 2) as (a, b):
            a.allow(b)
            b.allow(a)
            a.add([record(i, size=1000) for i in range(3000)])
            full = await sync_pair(b, a)
            assert full.received == 3000 and b.ids() == a.ids()
            changed = [record(10_000 + i, size=1000) for i in range(30)]  # 1%
            a.add(changed)
            again = await sync_pair(b, a)
            assert again.received == 30 and b.ids() == a.ids()
            changed_bytes = sum(len(r.body) for r in changed)
            wire = again.bytes_sent + again.bytes_received
            assert wire <= 2 * changed_bytes, (wire, changed_bytes)
            assert full.progress[-1].phase == "done" and full.progress[-1].records_done == 3000
            nothing = await sync_pair(a, b)  # already equal: one round, no records
            assert (nothing.received, nothing.sent) == (0, 0) and nothing.bytes_sent < 200

    trio.run(main)


def test_a_peer_that_is_not_a_member_gets_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, 2) as (a, outsider):
            a.add([record(i) for i in range(50)])
            outsider.allow(a)  # the outsider trusts a, but a does not list the outsider
            with pytest.raises(sync.Refused, match="not a member"):
                await sync_pair(outsider, a)
            assert outsider.ids() == set()
            with pytest.raises(NotAMember, match="datanet members ward add"):
                await sync_pair(a, outsider)  # and a never even dials a non-member

    trio.run(main)


Hostile = Callable[[sync.FrameStream], Awaitable[None]]


async def hostile_peer(tmp_path: Path, behave: Hostile) -> Node:
    """An honest node `a` that syncs with a member peer behaving as `behave` once the session starts."""
    async with running(tmp_path, 1) as (a,):
        identity = Identity.generate()
        evil = new_secure_host(identity)

        async def handler(stream: object) -> None:
            frames = sync.FrameStream(stream, sync.Counters())
            await frames.expect(sync.HELLO)
            with contextlib.suppress(Exception):  # the honest side hangs up on it
                await frames.send(sync.WELCOME)
                await behave(frames)

        evil.set_stream_handler(SYNC_PROTOCOL, handler)
        async with evil.run(listen_addrs=LISTEN), _closing(evil):
            a.allow(str(evil.get_id()))
            a.add([record(1)])
            with pytest.raises(ProtocolViolation):
                await a.service.sync_with(with_p2p(str(evil.get_addrs()[0]), str(evil.get_id())), NAME)
            assert a.ids() == {record(1).record_id}  # nothing bad stored
            with a.vault.open_shard(NAME) as shard:
                assert shard.check().ok
        return a


def test_a_record_whose_bytes_do_not_match_its_id_is_refused(tmp_path: Path) -> None:
    forged_id = record(2).record_id

    async def behave(frames: sync.FrameStream) -> None:
        liar = Reconciler([forged_id, record(1).record_id])  # claims to hold record 2
        while True:
            reply = liar.receive(await frames.expect(sync.RECONCILE))
            if reply is None:
                break
            await frames.send(sync.RECONCILE, reply)
            if liar.done:
                break
        await frames.expect(sync.TRANSFER)
        forged = canonical_bytes({"text": "not what was asked", "label": "x"})
        await frames.send(sync.TRANSFER, transfer.encode_records([(forged_id, forged)]))
        await trio.sleep(5)

    trio.run(hostile_peer, tmp_path, behave)


def test_an_oversize_frame_is_cut_off(tmp_path: Path) -> None:
    async def behave(frames: sync.FrameStream) -> None:
        await frames._stream.write((500 << 20).to_bytes(4, "big") + b"\x03")  # type: ignore[attr-defined]
        await trio.sleep(5)

    trio.run(hostile_peer, tmp_path, behave)


def test_garbage_is_cut_off(tmp_path: Path) -> None:
    async def behave(frames: sync.FrameStream) -> None:
        await frames.send(sync.RECONCILE, secrets.token_bytes(300))
        await trio.sleep(5)

    trio.run(hostile_peer, tmp_path, behave)


def test_a_plaintext_only_peer_cannot_connect(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, 1) as (a,):
            pair = create_new_key_pair()
            plain = new_host(
                key_pair=pair,
                sec_opt={PLAINTEXT_PROTOCOL_ID: InsecureTransport(pair)},
                muxer_opt={TProtocol(YAMUX): Yamux},
            )
            async with plain.run(listen_addrs=LISTEN), _closing(plain):
                with pytest.raises(SwarmException, match="unable to connect"), trio.fail_after(15):
                    await plain.connect(peer_info(with_p2p(a.address, a.peer_id)))
                assert a.host.get_network().connections.get(plain.get_id()) is None

    trio.run(main)


def test_peer_ids_are_the_identitys(tmp_path: Path) -> None:
    identity = Identity.generate()
    assert str(new_secure_host(identity).get_id()) == identity.public().peer_id
    assert json.dumps(identity.public().as_dict())  # the id shown to users is the one peers see


def test_a_credential_proves_an_account_only_for_its_peer_and_bound_datanet() -> None:
    from client.p2p.admission import credential_account, make_credential

    identity = Identity.generate()
    account = identity.public().evm_address
    ward = ChainBinding(31337, "0x" + "ab" * 20, 7)
    credential = make_credential(identity.evm_private_key, "12D3KooWpeer", ward)
    assert credential_account(credential, "12D3KooWpeer", ward) == account
    assert credential_account(credential, "12D3KooWother", ward) is None  # replayed by another peer
    for other in (  # the same name elsewhere is another Datanet: another id, registry or chain
        ChainBinding(31337, ward.registry, 8),
        ChainBinding(31337, "0x" + "cd" * 20, 7),
        ChainBinding(1, ward.registry, 7),
    ):
        assert credential_account(credential, "12D3KooWpeer", other) is None
    forged = bytes.fromhex("11" * 20) + credential[20:]  # claims another account
    assert credential_account(forged, "12D3KooWpeer", ward) is None
    assert credential_account(credential[:-1], "12D3KooWpeer", ward) is None


def test_on_chain_members_are_admitted_without_a_vault_entry(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, 3) as (a, b, outsider):
            members_on_chain = {a.identity.public().evm_address, b.identity.public().evm_address}
            asked: list[tuple[ChainBinding, str]] = []
            ward = ChainBinding(31337, "0x" + "ab" * 20, 7)

            async def chain_member(binding: ChainBinding, account: str) -> bool:
                asked.append((binding, account))
                return account in members_on_chain

            for node in (a, b, outsider):
                node.service.chain_member = chain_member
                with node.vault.open_shard(NAME) as shard:
                    shard.bind(ward)
            a.add([record(i) for i in range(40)])
            result = await sync_pair(b, a)  # neither lists the other in its vault
            assert result.received == 40 and b.ids() == a.ids()
            assert (ward, a.identity.public().evm_address) in asked  # b checked a's WELCOME
            assert (ward, b.identity.public().evm_address) in asked  # a checked b's HELLO
            with pytest.raises(sync.Refused, match="not a member"):
                await sync_pair(outsider, a)  # a valid credential, but not a member on chain
            assert outsider.ids() == set()

    trio.run(main)
