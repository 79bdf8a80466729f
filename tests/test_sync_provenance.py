"""Proof-carrying sync between real libp2p hosts on 127.0.0.1: provenance travels with the records and is verified
before it is kept or forwarded; forged batches cut the peer off; a 1.0.0 peer is told to upgrade; slow and
flooding peers are cut off within their limits while an honest member's sync completes."""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from client.contribution import prove_pending
from client.identity import Identity
from client.p2p import sync, transfer
from client.p2p.errors import P2PError, ProtocolViolation
from client.p2p.frames import Limits
from client.p2p.host import LEGACY_SYNC_PROTOCOL, SYNC_PROTOCOL, IHost, new_secure_host, peer_info
from client.p2p.reconcile import Reconciler
from tests.test_sync import LISTEN, NAME, Node, _closing, record, running, sync_pair, with_p2p


async def welcome_and_reconcile(stream: object, ids: list[bytes]) -> sync.FrameStream:
    """A scripted peer's start: it admits the honest node's HELLO, then reconciles as if it held `ids`."""
    frames = sync.FrameStream(stream, sync.Counters())
    await frames.expect(sync.HELLO)
    await frames.send(sync.WELCOME)
    reconciler = Reconciler(ids)
    while (reply := reconciler.receive(await frames.expect(sync.RECONCILE))) is not None:
        await frames.send(sync.RECONCILE, reply)
        if reconciler.done:
            break
    return frames


async def cut_off(
    a: Node,
    scripted: IHost,
    handler: Callable[[object], Awaitable[None]],
    *,
    match: str | None = None,
    within: float = 20,
) -> None:
    """`a` syncs with a scripted peer that serves `handler`, and cuts it off (a ProtocolViolation matching
    `match`) within `within` seconds."""
    scripted.set_stream_handler(SYNC_PROTOCOL, handler)
    async with scripted.run(listen_addrs=LISTEN), _closing(scripted):
        a.allow(str(scripted.get_id()))
        with pytest.raises(ProtocolViolation, match=match), trio.fail_after(within):
            await a.service.sync_with(with_p2p(str(scripted.get_addrs()[0]), str(scripted.get_id())), NAME)


def prove(node: Node) -> list[bytes]:
    with node.vault.open_shard(NAME) as shard:
        prove_pending(shard, node.identity, node.vault.data_dir, limit=None)
        return [b.root for b in shard.batches()]


def provenance_of(node: Node, record_id: bytes) -> list[tuple[int, bytes, str | None]]:
    with node.vault.open_shard(NAME) as shard:
        return [(p.commitment, p.root, p.from_peer) for p in shard.provenance.of_record(record_id)]


def test_provenance_travels_with_the_records_is_verified_and_is_forwarded(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, 3) as (a, b, c):
            a.allow(b)
            b.allow(a, c)
            c.allow(b)
            a.add([record(i) for i in range(32)])
            roots = prove(a)  # two batches of 16
            a.add([record(i) for i in range(32, 40)])  # not proved: a has nothing to claim for them
            result = await sync_pair(b, a)
            assert result.received == 40 and result.batches_received == 2 and result.verify_seconds > 0
            with b.vault.open_shard(NAME) as shard:
                assert shard.pending() == []  # a's records are never b's contribution
                assert shard.count_by_origin() == {"own": 0, "peer": 40}
                assert shard.provenance.counts() == {"unverified": 0, "verified": 2}
            commitment = a.identity.public().identity_commitment
            assert provenance_of(b, record(0).record_id) == [(commitment, roots[0], a.peer_id)]
            assert provenance_of(b, record(39).record_id) == []  # a has not proved it: nothing to claim
            forwarded = await sync_pair(c, b)  # b carries a's verified batches on; c checks them again
            assert forwarded.received == 40 and forwarded.batches_received == 2
            assert provenance_of(c, record(17).record_id) == [(commitment, roots[1], b.peer_id)]
            again = await sync_pair(c, b)
            assert (again.received, again.batches_received) == (0, 0)  # nothing is carried twice

    trio.run(main)


FORGERIES = ("a proof for other records", "another commitment", "a wrong root")


def forge(connection: sqlite3.Connection, how: str, root: bytes) -> None:
    """Edit a proven batch in the forger's own vault so that what it carries no longer checks out."""
    (public,) = connection.execute("SELECT public FROM batches WHERE root = ?", (root,)).fetchone()
    connection.execute("BEGIN IMMEDIATE")
    if how == "a proof for other records":
        connection.execute(
            "UPDATE batches SET proof = (SELECT proof FROM batches WHERE root != ?1) WHERE root = ?1", (root,)
        )
    elif how == "another commitment":
        signals = public.split(",")
        signals[2] = str(int(signals[2]) + 1)
        connection.execute("UPDATE batches SET public = ? WHERE root = ?", (",".join(signals), root))
    else:
        wrong = (int.from_bytes(root, "big") + 1).to_bytes(32, "big")
        connection.execute("UPDATE batches SET root = ? WHERE root = ?", (wrong, root))
        connection.execute("UPDATE records SET batch_root = ? WHERE batch_root = ?", (wrong, root))
    connection.execute("COMMIT")


@pytest.mark.parametrize("how", FORGERIES)
def test_a_peer_carrying_a_forged_batch_is_cut_off_and_no_part_of_it_is_kept(tmp_path: Path, how: str) -> None:
    async def main() -> None:
        async with running(tmp_path, 2) as (evil, b):
            evil.allow(b)
            b.allow(evil)
            evil.add([record(i) for i in range(32)])
            first, _ = prove(evil)
            with evil.vault.open_shard(NAME) as shard:
                forge(shard._connection, how, first)
            with pytest.raises(ProtocolViolation, match="does not check out"):
                await sync_pair(b, evil)
            with b.vault.open_shard(NAME) as shard:
                assert shard.provenance.counts() == {"unverified": 0, "verified": 0}
                assert shard.provenance.shareable_roots() == []
                assert all(not shard.provenance.of_record(record(i).record_id) for i in range(32))
                assert shard.pending() == [] and shard.check().ok  # records that hash to their ids may stay

    trio.run(main)


def test_a_sync_1_0_0_peer_is_refused_with_one_sentence(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, 1) as (a,):
            old = new_secure_host(Identity.generate())
            async with old.run(listen_addrs=LISTEN), _closing(old):
                info = peer_info(with_p2p(a.address, a.peer_id))
                await old.connect(info)
                stream = await old.new_stream(info.peer_id, [LEGACY_SYNC_PROTOCOL])
                frames = sync.FrameStream(stream, sync.Counters())
                await frames.send(sync.HELLO, bytes([1, len(NAME)]) + NAME.encode())
                with pytest.raises(sync.Refused, match="upgrade datanet"), trio.fail_after(10):
                    await frames.expect(sync.WELCOME)

    trio.run(main)


def test_a_slow_loris_member_is_cut_off_at_its_frame_deadline_while_an_honest_member_syncs(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, 2) as (a, honest):
            a.service.limits = Limits(frame_deadline=1.5)
            slow = new_secure_host(Identity.generate())
            async with slow.run(listen_addrs=LISTEN), _closing(slow):
                a.allow(honest, str(slow.get_id()))
                honest.allow(a)
                a.add([record(i) for i in range(300)])
                info = peer_info(with_p2p(a.address, a.peer_id))
                await slow.connect(info)
                stream = await slow.new_stream(info.peer_id, [SYNC_PROTOCOL])
                frames = sync.FrameStream(stream, sync.Counters())
                await frames.send(sync.HELLO, sync.hello(NAME))
                await frames.expect(sync.WELCOME)  # admitted; now it holds the Datanet's session and dribbles

                async def dribble() -> None:  # the attack: a 25-byte frame at one byte a second
                    message = Reconciler([]).initiate()
                    frame = (len(message) + 1).to_bytes(4, "big") + bytes([sync.RECONCILE]) + message
                    with contextlib.suppress(Exception):  # a resets the stream at its frame deadline
                        for byte in frame:
                            await stream.write(bytes([byte]))
                            await trio.sleep(1.0)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(dribble)
                    # the slow member holds the Datanet's session: the honest one gets it only once a cuts it off
                    with trio.fail_after(15):
                        result = await sync_pair(honest, a)
                    assert result.received == 300 and honest.ids() == a.ids()
                    nursery.cancel_scope.cancel()

    trio.run(main)


def test_a_peer_flooding_need_with_ids_it_does_not_hold_is_cut_off(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, 2) as (a, honest):
            a.service.limits = Limits(max_need=1000)
            a.allow(honest)
            honest.allow(a)
            honest.add([record(i) for i in range(200)])
            flood = new_secure_host(Identity.generate())
            fake = [bytes([1]) + i.to_bytes(31, "big") for i in range(5000)]

            async def handler(stream: object) -> None:
                try:
                    await welcome_and_reconcile(stream, fake)
                    await trio.sleep_forever()  # holds the stream until a hangs up
                except Exception:  # a cuts it off
                    return

            flood.set_stream_handler(SYNC_PROTOCOL, handler)
            async with flood.run(listen_addrs=LISTEN), _closing(flood):
                a.allow(str(flood.get_id()))
                results = []

                async def honest_sync() -> None:  # an honest member syncs with a meanwhile
                    results.append(await sync_pair(honest, a))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(honest_sync)
                    with pytest.raises(ProtocolViolation, match="over the 1000 a session takes"), trio.fail_after(20):
                        await a.service.sync_with(with_p2p(str(flood.get_addrs()[0]), str(flood.get_id())), NAME)
                (result,) = results
                assert result.sent == 200 and a.ids() == honest.ids()  # a holds the honest records, none of the flood

    trio.run(main)


def test_a_want_for_records_reconciliation_did_not_offer_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, 1) as (a,):
            a.add([record(i) for i in range(20)])
            held = sorted(a.ids())
            greedy = new_secure_host(Identity.generate())

            async def handler(stream: object) -> None:
                try:
                    # it says it holds everything a holds, so a offers it nothing
                    frames = await welcome_and_reconcile(stream, held)
                    await frames.expect(sync.FETCHED)  # a wanted nothing; now it asks anyway
                    await frames.send(sync.TRANSFER, transfer.encode_want(held[:5]))
                    await trio.sleep_forever()  # holds the stream until a hangs up
                except Exception:  # a cuts it off
                    return

            await cut_off(a, greedy, handler, match="did not show it lacks")

    trio.run(main)


def test_sessions_of_two_datanets_do_not_wait_for_each_other(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, 2) as (a, b):
            a.vault.create_shard("other", "text").close()
            b.vault.create_shard("other", "text").close()
            for node, peer in ((a, b), (b, a)):
                node.allow(peer)
                with node.vault.open_shard("other") as shard:
                    shard.set_member(peer.peer_id, True)
            a.add([record(i) for i in range(100)])
            with a.vault.open_shard(NAME) as shard:
                lock = a.service._lock(shard, b.peer_id)
            async with lock:  # b's session of "ward" holds its lock at a: "other" goes on regardless
                with trio.fail_after(20):
                    result = await b.service.sync_with(with_p2p(a.address, a.peer_id), "other")
                assert result.received == 0

    trio.run(main)


def test_sessions_of_two_members_of_one_datanet_do_not_wait_for_each_other(tmp_path: Path) -> None:
    """A member whose session stalls (here: holds its lock) does not hold the Datanet's other members back."""

    async def main() -> None:
        async with running(tmp_path, 3) as (a, b, c):
            a.allow(b, c)
            c.allow(a)
            a.add([record(i) for i in range(100)])
            with a.vault.open_shard(NAME) as shard:
                stalled = a.service._lock(shard, b.peer_id)
            async with stalled:  # b's session of "ward" at a never ends
                with trio.fail_after(20):
                    result = await c.service.sync_with(with_p2p(a.address, a.peer_id), NAME)
                assert result.received == 100 and c.ids() == a.ids()

    trio.run(main)


def test_records_known_to_be_needed_are_asked_for_while_reconciliation_goes_on(tmp_path: Path) -> None:
    held = sorted(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(200_000))  # over one message's ids
    seen: list[int] = []

    async def main() -> None:
        async with running(tmp_path, 1) as (a,):
            peer = new_secure_host(Identity.generate())

            async def handler(stream: object) -> None:
                frames = sync.FrameStream(stream, sync.Counters())
                await frames.expect(sync.HELLO)
                await frames.send(sync.WELCOME)
                other = Reconciler(held)
                with contextlib.suppress(Exception):
                    while True:
                        kind, payload = await frames.receive()
                        seen.append(kind)
                        if kind == sync.RECONCILE:
                            reply = other.receive(payload)
                            if reply is None:
                                break
                            await frames.send(sync.RECONCILE, reply)
                            if other.done:
                                break
                await stream.reset()  # type: ignore[attr-defined]  # it has none of the records it listed

            await cut_off(a, peer, handler, within=60)

    trio.run(main)
    last_reconcile = max(i for i, kind in enumerate(seen) if kind == sync.RECONCILE)
    first_want = seen.index(sync.TRANSFER)
    assert first_want < last_reconcile  # the first WANT went out before reconciliation was over


def test_syncing_with_a_1_0_0_only_peer_is_one_sentence(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, 1) as (a,):
            old = new_secure_host(Identity.generate())
            old.set_stream_handler(LEGACY_SYNC_PROTOCOL, lambda stream: stream.close())
            async with old.run(listen_addrs=LISTEN), _closing(old):
                a.allow(str(old.get_id()))
                with pytest.raises(P2PError, match="older datanet"), trio.fail_after(30):
                    await a.service.sync_with(with_p2p(str(old.get_addrs()[0]), str(old.get_id())), NAME)

    trio.run(main)


def test_a_want_for_records_already_sent_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, 1) as (a,):
            a.add([record(i) for i in range(20)])
            held = sorted(a.ids())
            greedy = new_secure_host(Identity.generate())

            async def handler(stream: object) -> None:
                try:
                    frames = await welcome_and_reconcile(stream, [])  # holds nothing: a offers it everything, once
                    for _ in range(2):  # the second time is the attack: a sends the same records again and again
                        await frames.send(sync.TRANSFER, transfer.encode_want(held[:5]))
                        while (await frames.receive())[0] != sync.TRANSFER:
                            pass
                    await trio.sleep_forever()
                except Exception:  # a cuts it off
                    return

            await cut_off(a, greedy, handler, match="asked again")

    trio.run(main)


def test_records_verified_before_a_bad_one_are_kept_and_the_bad_frame_is_not(tmp_path: Path) -> None:
    """Records are committed in groups; a session cut off by a bad record still keeps every record verified
    before it, and nothing of the frame that held it."""
    valid = {r.record_id: r.body for r in (record(n) for n in range(700))}
    not_canonical = b'{"label": "x", "text": "spaced out"}'
    forged_id = hashlib.sha256(not_canonical).digest()
    held = {**valid, forged_id: not_canonical}
    first_answer: list[bytes] = []

    async def main() -> set[bytes]:
        async with running(tmp_path, 1) as (a,):
            evil = new_secure_host(Identity.generate())

            async def handler(stream: object) -> None:
                frames = await welcome_and_reconcile(stream, list(held))
                with contextlib.suppress(ProtocolViolation):  # a hangs up on it
                    while True:  # every WANT answered; the first without the bad record
                        asked = transfer.decode_want(await frames.expect(sync.TRANSFER))
                        if not first_answer:
                            asked = [i for i in asked if i != forged_id]
                            first_answer.extend(asked)
                        await frames.send(sync.TRANSFER, transfer.encode_records([(i, held[i]) for i in asked]))

            await cut_off(a, evil, handler, match="not a valid record")
            with a.vault.open_shard(NAME) as shard:
                assert shard.check().ok
                assert shard.count_by_origin().get("peer", 0) == len(a.ids())
            return a.ids()

    stored = trio.run(main)
    assert forged_id not in stored
    assert len(first_answer) > 0 and set(first_answer) <= stored <= set(valid)
