"""A scripted malicious peer on a real libp2p host, for tests/test_hostile.py and bench/hostile.py: every attack a
member or an outsider can make on a node's sync service, each ending when the node cuts it off or refuses it.

Attacks (`ATTACKS`): a plaintext connection; a non-member's HELLO; a HELLO with an admission credential signed for
another chain; garbage where a reconciliation message belongs; a frame header announcing 500 MB; a frame cut off
halfway; a frame dribbled a byte every 25 s (slow loris); forged records (bodies that do not hash to the ids the
peer claimed); a flood of ids it claims and never serves; a WANT storm for records it was never offered; a
reconciliation that never converges; a flood of announcements from a member, and announcements from an outsider,
on the Datanet's GossipSub topic (the node's validator drops them: its metrics count why).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX
from libp2p.stream_muxer.yamux.yamux import Yamux

from client.identity import Identity
from client.p2p import admission, sync, transfer
from client.p2p.frames import Counters, FrameStream, Limits
from client.p2p.host import SYNC_PROTOCOL, IHost, new_secure_host, peer_info
from client.p2p.reconcile import Reconciler
from client.records import canonical_bytes
from storage.shard import ChainBinding

# The node's frame deadline is 30 s, and a Datanet's sessions run one at a time: an attack may wait for two others
# that hold the session to their deadline before its own turn.
ATTACK_TIMEOUT = 120.0


@dataclass
class Outcome:
    attack: str
    ended: str  # how it ended: "refused", "cut off", "cannot connect"
    seconds: float
    peer_id: str  # the identity it used (the node's log names it)


@dataclass
class Attacker:
    """A member identity (listed in the victim's members) and an outsider identity, with their hosts."""

    victim: str  # the victim node's address (/ip4/.../p2p/...)
    datanet: str
    victim_ids: list[bytes] = field(default_factory=list)  # the records the victim holds (a WANT storm asks for them)
    # One identity per attack (the victim lists the members' among its members): attacks at once do not share a
    # peer id, so each reaches the point it attacks instead of the node's per-peer caps.
    identities: dict[str, Identity] = field(default_factory=lambda: {name: Identity.generate() for name in ATTACKS})

    def members(self) -> list[str]:
        """The peer ids the victim must list as members (every attack but the outsiders')."""
        return [self.identities[name].public().peer_id for name in ATTACKS if name not in OUTSIDERS]

    async def _open(self, host: IHost, info: object, credential: bytes | None) -> FrameStream:
        await host.connect(info)  # type: ignore[arg-type]
        stream = await host.new_stream(info.peer_id, [SYNC_PROTOCOL])  # type: ignore[attr-defined]
        frames = FrameStream(stream, Counters(), Limits(frame_deadline=ATTACK_TIMEOUT))
        await frames.send(sync.HELLO, sync.hello(self.datanet, credential))
        return frames

    async def run(self, attack: str) -> Outcome:
        started = time.monotonic()
        with trio.fail_after(ATTACK_TIMEOUT):
            ended = await ATTACKS[attack](self, self.identities[attack])
        return Outcome(attack, ended, time.monotonic() - started, self.identities[attack].public().peer_id)

    async def as_member(self, identity: Identity, behave: Callable[[FrameStream], Awaitable[None]]) -> str:
        """Admitted as a member, then `behave`; returns how the node ended it."""
        host = new_secure_host(identity)
        async with host.run(listen_addrs=[]):
            try:
                frames = await self._open(host, peer_info(self.victim), None)
                await frames.expect(sync.WELCOME)
                await behave(frames)
                await _until_cut_off(frames)
            except Exception as exc:  # what the node's cut-off looks like from here: a reset or closed stream
                return _ended(exc)
            finally:
                await host.close()
        return "cut off"


async def _until_cut_off(frames: FrameStream) -> None:
    while True:
        await frames.receive()


def _ended(exc: Exception) -> str:
    return "refused" if isinstance(exc, sync.Refused) else "cut off"


# --- the attacks ---------------------------------------------------------------------------------------------------


async def plaintext(self: Attacker, identity: Identity) -> str:
    pair = create_new_key_pair()
    host = new_host(
        key_pair=pair, sec_opt={PLAINTEXT_PROTOCOL_ID: InsecureTransport(pair)}, muxer_opt={TProtocol(YAMUX): Yamux}
    )
    async with host.run(listen_addrs=[]):
        try:
            await host.connect(peer_info(self.victim))
        except Exception:
            return "cannot connect"
        finally:
            await host.close()
    raise AssertionError("a plaintext peer connected")


async def _hello_as(self: Attacker, identity: Identity, credential: bytes | None) -> str:
    host = new_secure_host(identity)
    async with host.run(listen_addrs=[]):
        try:
            frames = await self._open(host, peer_info(self.victim), credential)
            await frames.expect(sync.WELCOME)
        except Exception as exc:
            return _ended(exc)
        finally:
            await host.close()
    raise AssertionError("an outsider was admitted")


async def non_member(self: Attacker, identity: Identity) -> str:
    return await _hello_as(self, identity, None)


async def other_chain_credential(self: Attacker, identity: Identity) -> str:
    elsewhere = ChainBinding(chain_id=999_999, registry="0x" + "11" * 20, datanet_id=1)
    credential = admission.make_credential(secrets.token_bytes(32), identity.public().peer_id, elsewhere)
    return await _hello_as(self, identity, credential)


async def garbage(self: Attacker, identity: Identity) -> str:
    return await self.as_member(identity, lambda frames: frames.send(sync.RECONCILE, secrets.token_bytes(300)))


async def oversize(self: Attacker, identity: Identity) -> str:
    async def behave(frames: FrameStream) -> None:
        await frames._stream.write((500 << 20).to_bytes(4, "big") + bytes([sync.RECONCILE]))  # type: ignore[attr-defined]

    return await self.as_member(identity, behave)


async def truncated(self: Attacker, identity: Identity) -> str:
    async def behave(frames: FrameStream) -> None:
        message = Reconciler([]).initiate()
        frame = (len(message) + 1).to_bytes(4, "big") + bytes([sync.RECONCILE]) + message
        await frames._stream.write(frame[: len(frame) // 2])  # type: ignore[attr-defined]
        await frames._stream.close()  # type: ignore[attr-defined]

    return await self.as_member(identity, behave)


async def slow_loris(self: Attacker, identity: Identity) -> str:
    async def behave(frames: FrameStream) -> None:
        message = Reconciler([]).initiate()
        frame = (len(message) + 1).to_bytes(4, "big") + bytes([sync.RECONCILE]) + message
        for byte in frame:
            await frames._stream.write(bytes([byte]))  # type: ignore[attr-defined]
            await trio.sleep(25.0)

    return await self.as_member(identity, behave)


def _fake_ids(count: int) -> list[bytes]:
    return sorted(hashlib.sha256(secrets.token_bytes(16)).digest() for _ in range(count))


async def _reconcile_as_holding(frames: FrameStream, ids: list[bytes]) -> None:
    """Reconcile as the initiator that holds `ids` (whatever it really holds)."""
    reconciler = Reconciler(ids)
    await frames.send(sync.RECONCILE, reconciler.initiate())
    while not reconciler.done:
        reply = reconciler.receive(await frames.expect(sync.RECONCILE))
        if reply is None:
            break
        await frames.send(sync.RECONCILE, reply)


async def forged_records(self: Attacker, identity: Identity) -> str:
    ids = _fake_ids(3)

    async def behave(frames: FrameStream) -> None:
        await _reconcile_as_holding(frames, sorted(set(ids) | set(self.victim_ids)))
        while True:  # the node asks for what it lacks: answer with bodies that are not those records
            kind, payload = await frames.receive()
            if kind == sync.TRANSFER:
                wanted = transfer.decode_want(payload)
                forged = canonical_bytes({"text": "not what was asked", "label": "x"})
                await frames.send(sync.TRANSFER, transfer.encode_records([(w, forged) for w in wanted]))

    return await self.as_member(identity, behave)


async def need_flood(self: Attacker, identity: Identity) -> str:
    async def behave(frames: FrameStream) -> None:  # claims 5,000 records, then serves none of them
        await _reconcile_as_holding(frames, sorted(set(_fake_ids(5000)) | set(self.victim_ids)))
        await trio.sleep_forever()

    return await self.as_member(identity, behave)


async def want_storm(self: Attacker, identity: Identity) -> str:
    async def behave(frames: FrameStream) -> None:  # holds everything, so is offered nothing; asks anyway
        await _reconcile_as_holding(frames, sorted(self.victim_ids))
        for _ in range(50):
            await frames.send(sync.TRANSFER, transfer.encode_want(self.victim_ids[:100]))

    return await self.as_member(identity, behave)


async def _gossip(self: Attacker, identity: Identity, messages: int) -> str:
    """Publish `messages` announcements on the Datanet's topic as fast as GossipSub takes them, then replay the
    first ones: the node's validator drops them (not a member, or over the sender's rate limit) before they are
    delivered or forwarded. Nothing comes back to the sender; the node's metrics count the drops."""
    from libp2p.pubsub.gossipsub import PROTOCOL_ID as GOSSIPSUB
    from libp2p.pubsub.gossipsub import GossipSub
    from libp2p.pubsub.pubsub import Pubsub
    from libp2p.tools.anyio_service import background_trio_service

    from client.node.members import topic

    host = new_secure_host(identity)
    async with host.run(listen_addrs=[]):
        try:
            router = GossipSub(protocols=[GOSSIPSUB], degree=6, degree_low=2, degree_high=12, heartbeat_interval=1)
            pubsub = Pubsub(host, router)
            async with background_trio_service(pubsub), background_trio_service(router):
                await pubsub.wait_until_ready()
                victim = peer_info(self.victim)
                await host.connect(victim)
                with trio.fail_after(15):
                    await pubsub.wait_for_subscription(victim.peer_id, topic(self.datanet))
                for n in range(messages):
                    message = {"v": 1, "records": n, "fp": secrets.token_hex(16)}
                    await pubsub.publish(topic(self.datanet), json.dumps(message).encode())
                await trio.sleep(1.0)  # the node's validator takes them in
        finally:
            await host.close()
    return "dropped"


async def gossip_flood(self: Attacker, identity: Identity) -> str:  # a member, far over its rate limit
    return await _gossip(self, identity, 300)


async def outsider_gossip(self: Attacker, identity: Identity) -> str:  # not a member at all
    return await _gossip(self, identity, 30)


async def endless_reconciliation(self: Attacker, identity: Identity) -> str:
    async def behave(frames: FrameStream) -> None:  # a new random set each round: the ranges never agree
        while True:
            await frames.send(sync.RECONCILE, Reconciler(_fake_ids(200)).initiate())
            await frames.receive()

    return await self.as_member(identity, behave)


OUTSIDERS = ("plaintext", "non-member", "other-chain-credential", "outsider-gossip")

ATTACKS: dict[str, Callable[[Attacker, Identity], Awaitable[str]]] = {
    "plaintext": plaintext,
    "non-member": non_member,
    "other-chain-credential": other_chain_credential,
    "garbage": garbage,
    "oversize-frame": oversize,
    "truncated-frame": truncated,
    "slow-loris": slow_loris,
    "forged-records": forged_records,
    "need-flood": need_flood,
    "want-storm": want_storm,
    "endless-reconciliation": endless_reconciliation,
    "gossip-flood": gossip_flood,
    "outsider-gossip": outsider_gossip,
}


async def attack_forever(attacker: Attacker, done: list[Outcome], names: list[str] | None = None) -> None:
    """Every attack in turn, again and again, several at once (for the benchmark's load)."""
    names = names or list(ATTACKS)
    while True:
        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(_keep, attacker, name, done)


async def _keep(attacker: Attacker, name: str, done: list[Outcome]) -> None:
    with contextlib.suppress(Exception):
        done.append(await attacker.run(name))
