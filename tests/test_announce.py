"""Announcements from members only: the member set and its rate limit as pure logic (time passed in), then the
GossipSub topic validator on real libp2p hosts over 127.0.0.1 (a non-member's announcement is neither delivered
nor forwarded; a member's, and a peer's admitted on chain, are)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import multiaddr
import trio
from hypothesis import given
from hypothesis import strategies as st
from libp2p.abc import ISubscriptionAPI
from libp2p.pubsub.gossipsub import PROTOCOL_ID, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from client.identity import Identity
from client.node.announce import Announcer
from client.node.members import MemberSet, RateLimit, Verdict, topic
from client.p2p.host import ID, IHost, new_secure_host, peer_info
from storage.key_file import Argon2Params
from storage.vault import Vault

NAME = "ward"
T = topic(NAME)
ALICE, BOB, CAROL = "12D3KooWAlice", "12D3KooWBob", "12D3KooWCarol"  # opaque strings to the member set

# --- the member set (pure) ------------------------------------------------------------------------------------


def test_only_listed_members_may_announce_and_only_on_their_datanet() -> None:
    members = MemberSet()
    members.update(NAME, [ALICE])
    assert members.check(T, ALICE, 0.0) is Verdict.ACCEPTED
    assert members.check(T, BOB, 0.0) is Verdict.NOT_A_MEMBER
    assert members.check(topic("other"), ALICE, 0.0) is Verdict.UNKNOWN_TOPIC
    assert members.name_of(T) == NAME and members.name_of(topic("other")) is None
    assert not members._by_topic[T].buckets.keys() - {ALICE}  # a non-member costs no memory


def test_the_rate_limit_is_a_token_bucket_per_sender_and_topic() -> None:
    members = MemberSet(RateLimit(per_minute=6, burst=3))  # a burst of 3, then one every 10 s
    members.update(NAME, [ALICE, BOB])
    members.update("other", [ALICE])
    assert [members.check(T, ALICE, 0.0) for _ in range(4)] == [Verdict.ACCEPTED] * 3 + [Verdict.RATE_LIMITED]
    assert members.check(T, BOB, 0.0) is Verdict.ACCEPTED  # another sender: its own bucket
    assert members.check(topic("other"), ALICE, 0.0) is Verdict.ACCEPTED  # another topic: its own bucket
    assert members.check(T, ALICE, 9.9) is Verdict.RATE_LIMITED
    assert members.check(T, ALICE, 10.0) is Verdict.ACCEPTED
    assert members.check(T, ALICE, 10.0) is Verdict.RATE_LIMITED
    assert [members.check(T, ALICE, 3600.0) for _ in range(4)] == [Verdict.ACCEPTED] * 3 + [Verdict.RATE_LIMITED]
    assert members.check(T, ALICE, 0.0) is Verdict.RATE_LIMITED  # a clock read out of order refills nothing


@given(st.lists(st.floats(min_value=0.0, max_value=600.0, allow_nan=False), max_size=300))
def test_replayed_or_not_a_sender_gets_at_most_burst_plus_rate_times_time(times: list[float]) -> None:
    # Whoever sends them (the member, or someone replaying its signed announcements once GossipSub's seen-cache
    # forgot them), a sender's announcements that pass are bounded over any span of time.
    limit = RateLimit(per_minute=6, burst=3)
    members = MemberSet(limit)
    members.update(NAME, [ALICE])
    times.sort()
    accepted = [t for t in times if members.check(T, ALICE, t) is Verdict.ACCEPTED]
    span = (times[-1] - times[0]) if times else 0.0
    assert len(accepted) <= limit.burst + span * limit.per_minute / 60


def test_update_replaces_the_list_cheaply_and_a_removed_member_is_out() -> None:
    members = MemberSet(RateLimit(per_minute=6, burst=1))
    assert members.update(NAME, [ALICE, BOB]) is True
    assert members.update(NAME, (p for p in [BOB, ALICE])) is False  # same members: nothing changes
    assert members.check(T, ALICE, 0.0) is Verdict.ACCEPTED
    assert members.check(T, ALICE, 0.0) is Verdict.RATE_LIMITED
    assert members.update(NAME, [BOB]) is True
    assert members.check(T, ALICE, 0.0) is Verdict.NOT_A_MEMBER and not members.is_member(T, ALICE, 0.0)
    assert ALICE not in members._by_topic[T].buckets
    members.update(NAME, [])
    assert members.check(T, BOB, 0.0) is Verdict.NOT_A_MEMBER


def test_a_peer_admitted_on_chain_may_announce_until_its_deadline() -> None:
    members = MemberSet()
    members.update(NAME, [ALICE])
    members.admit(NAME, CAROL, until=100.0)
    assert members.is_member(T, CAROL, 50.0) and members.check(T, CAROL, 50.0) is Verdict.ACCEPTED
    members.update(NAME, [ALICE, BOB])  # the vault's list changes: an admission is not in it, and stays
    assert members.check(T, CAROL, 60.0) is Verdict.ACCEPTED
    members.admit(NAME, CAROL, until=80.0)  # an earlier deadline does not shorten the admission
    assert members.check(T, CAROL, 99.0) is Verdict.ACCEPTED
    assert members.check(T, CAROL, 100.0) is Verdict.NOT_A_MEMBER
    assert CAROL not in members._by_topic[T].admitted and CAROL not in members._by_topic[T].buckets

    members.admit(NAME, ALICE, until=1e9)  # listed: the vault decides, so removing her there still counts
    members.update(NAME, [BOB])
    assert members.check(T, ALICE, 200.0) is Verdict.NOT_A_MEMBER

    members.admit("other", CAROL, until=10.0)  # a Datanet not read from the vault yet
    assert members.check(topic("other"), CAROL, 0.0) is Verdict.ACCEPTED
    assert members.check(topic("other"), ALICE, 0.0) is Verdict.NOT_A_MEMBER


def test_admissions_are_capped_and_the_one_that_ends_first_goes() -> None:
    members = MemberSet(max_admitted=2)
    members.admit(NAME, ALICE, until=30.0)
    members.admit(NAME, BOB, until=10.0)
    members.admit(NAME, CAROL, until=20.0)
    assert [members.is_member(T, p, 0.0) for p in (ALICE, BOB, CAROL)] == [True, False, True]
    members.admit(NAME, ALICE, until=40.0)  # renewing one already there evicts nobody
    assert members.is_member(T, CAROL, 0.0)


# --- the validator on real hosts -------------------------------------------------------------------------------

FAST = Argon2Params(time_cost=1, memory_kib=1024, parallelism=1)
LISTEN = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]


def address(host: IHost) -> str:
    text = str(host.get_addrs()[0])
    return text if "/p2p/" in text else f"{text}/p2p/{host.get_id()}"


def announcement(records: int) -> bytes:
    return json.dumps({"v": 1, "records": records, "fp": "ab" * 16}).encode()


@asynccontextmanager
async def plain_pubsub(host: IHost) -> AsyncIterator[Pubsub]:
    """GossipSub with no validator: a publisher, or a probe that shows what a peer forwarded."""
    router = GossipSub(protocols=[PROTOCOL_ID], degree=6, degree_low=2, degree_high=12, heartbeat_interval=1)
    pubsub = Pubsub(host, router)
    async with background_trio_service(pubsub), background_trio_service(router):
        await pubsub.wait_until_ready()
        yield pubsub


def test_the_validator_drops_a_non_members_announcement_before_delivery_and_forwarding(tmp_path: Path) -> None:
    """alice (a member) and carol (not one) publish to bob's Datanet topic; dave listens behind bob with no
    validator, so whatever bob forwards reaches him. Only alice's arrives at bob's handler and at dave, until bob
    admits carol (as the sync service does after an on-chain admission): then hers does too."""

    async def main() -> None:
        async with AsyncExitStack() as stack:
            hosts = []
            for _ in range(4):
                host = new_secure_host(Identity.generate())
                await stack.enter_async_context(host.run(listen_addrs=LISTEN))
                stack.push_async_callback(host.close)
                hosts.append(host)
            alice, bob, carol, dave = hosts
            vault, _ = Vault.create(tmp_path / "bob", keystore=None, passphrase="pw", argon2=FAST)
            with vault.create_shard(NAME, "intent-classification") as shard:
                shard.set_member(str(alice.get_id()), True)  # bob's vault lists alice only

            queued: list[tuple[str, str]] = []
            dropped: list[tuple[str, str, Verdict]] = []
            got_sync, got_drop = trio.Event(), trio.Event()

            def queue_sync(name: str, peer_address: str) -> None:
                queued.append((name, peer_address))
                got_sync.set()

            def on_dropped(name: str, peer: str, why: Verdict) -> None:
                dropped.append((name, peer, why))
                got_drop.set()

            announcer = Announcer(bob, vault, queue_sync, check_every=0.05, min_interval=0.05, on_dropped=on_dropped)
            a_pubsub = await stack.enter_async_context(plain_pubsub(alice))
            c_pubsub = await stack.enter_async_context(plain_pubsub(carol))
            d_pubsub = await stack.enter_async_context(plain_pubsub(dave))
            heard_by_dave = await d_pubsub.subscribe(T)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(announcer.run)
                with trio.fail_after(15):
                    for other in (alice, carol, dave):  # bob dials: his peerstore has their addresses
                        await bob.connect(peer_info(address(other)))
                    await a_pubsub.wait_for_subscription(bob.get_id(), T)
                    await c_pubsub.wait_for_subscription(bob.get_id(), T)
                    await announcer.gossipsub.wait_for_mesh(dave.get_id(), T)  # bob forwards to dave

                    await c_pubsub.publish(T, announcement(7))  # alice and carol publish without subscribing
                    await got_drop.wait()
                    await a_pubsub.publish(T, announcement(5))
                    await got_sync.wait()
                    senders = [await next_from(heard_by_dave, {alice, carol})]

                    got_sync = trio.Event()
                    announcer.members.admit(NAME, str(carol.get_id()), until=time.monotonic() + 60)
                    await c_pubsub.publish(T, announcement(9))
                    await got_sync.wait()
                    senders.append(await next_from(heard_by_dave, {alice, carol}))
                nursery.cancel_scope.cancel()

            assert dropped == [(NAME, str(carol.get_id()), Verdict.NOT_A_MEMBER)]
            assert queued == [(NAME, address(alice)), (NAME, address(carol))]
            assert senders == [alice.get_id(), carol.get_id()]  # dave never got carol's first one
            assert announcer.received == 2 and announcer.dropped == 1

    trio.run(main)


async def next_from(subscription: ISubscriptionAPI, hosts: set[IHost]) -> ID:
    """The originator of the next message on `subscription` from one of `hosts` (bob's own are skipped)."""
    wanted = {h.get_id() for h in hosts}
    while True:
        sender = ID((await subscription.get()).from_id)
        if sender in wanted:
            return sender
