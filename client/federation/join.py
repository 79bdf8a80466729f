"""`/datanet/federation/join/1.0.0`: a member asks a coordinator to let its SuperNode into a round.

    member -> coordinator   HELLO    {"datanet": name, "public_key": OpenSSH P-256 line, "credential": hex | null}
    coordinator -> member   WELCOME  {"superlink": "host:port", "ca": PEM, "fab_sha256": hex, "federation": id,
                                      "rounds": n}
                         or REFUSED  one sentence

The stream is libp2p's (Noise): the coordinator knows the member's peer id for certain, checks it is a member of
that Datanet (the vault's members, or proven on chain with the same credential as sync), and registers the public
key with its SuperLink, so the Flower node that key signs for is that member. The member learns the CA to trust
and the hash of the Flower app it will be sent, which must be the one it builds itself (client/federation/fab.py).
Each message is one frame of at most `MAX_MESSAGE` bytes of JSON, checked field by field.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from client.federation.errors import NotAdmitted
from client.federation.tls import check_public_key
from client.p2p import admission
from client.p2p.errors import P2PError, ProtocolViolation
from client.p2p.frames import (
    HELLO,
    REFUSED,
    WELCOME,
    Counters,
    FrameStream,
    Limits,
    Refused,
    close_stream,
    reset_stream,
)
from client.p2p.host import JOIN_PROTOCOL

logger = logging.getLogger(__name__)

MAX_MESSAGE = 16 << 10
DEADLINE = 30.0  # seconds for the whole exchange (the coordinator registers the key with its SuperLink)
_HEX = re.compile(r"^[0-9a-f]{64}$")
_ADDRESS = re.compile(r"^[A-Za-z0-9.\-\[\]:]{1,200}:[0-9]{1,5}$")


@dataclass(frozen=True, slots=True)
class JoinRequest:
    datanet: str
    public_key: str
    credential: bytes | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    superlink: str
    ca: str
    fab_sha256: str
    federation: str
    rounds: int


def _load(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_MESSAGE:
        raise ProtocolViolation(f"The peer's join message is over {MAX_MESSAGE} bytes.")
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        raise ProtocolViolation("The peer's join message is not JSON.") from None
    if not isinstance(value, dict):
        raise ProtocolViolation("The peer's join message is not a JSON object.")
    return value


def _text(value: dict[str, Any], key: str, limit: int) -> str:
    field = value.get(key)
    if not isinstance(field, str) or not field or len(field) > limit:
        raise ProtocolViolation(f"The peer's join message has no valid {key!r}.")
    return field


def encode_request(request: JoinRequest) -> bytes:
    return json.dumps(
        {
            "datanet": request.datanet,
            "public_key": request.public_key,
            "credential": request.credential.hex() if request.credential else None,
        }
    ).encode()


def parse_request(payload: bytes) -> JoinRequest:
    value = _load(payload)
    datanet = _text(value, "datanet", 200)
    public_key = _text(value, "public_key", 1000)
    if not check_public_key(public_key):
        raise ProtocolViolation("The peer's join message carries no OpenSSH P-256 public key.")
    credential = value.get("credential")
    if credential is not None:
        if not isinstance(credential, str) or len(credential) != 2 * admission.CREDENTIAL_BYTES:
            raise ProtocolViolation("The peer's join message carries a malformed credential.")
        try:
            return JoinRequest(datanet, public_key, bytes.fromhex(credential))
        except ValueError:
            raise ProtocolViolation("The peer's join message carries a malformed credential.") from None
    return JoinRequest(datanet, public_key, None)


def encode_admission(answer: Admission) -> bytes:
    return json.dumps(
        {
            "superlink": answer.superlink,
            "ca": answer.ca,
            "fab_sha256": answer.fab_sha256,
            "federation": answer.federation,
            "rounds": answer.rounds,
        }
    ).encode()


def parse_admission(payload: bytes) -> Admission:
    value = _load(payload)
    superlink = _text(value, "superlink", 210)
    if not _ADDRESS.match(superlink):
        raise ProtocolViolation("The coordinator's answer names no valid SuperLink address.")
    ca = _text(value, "ca", 8000)
    if not ca.startswith("-----BEGIN CERTIFICATE-----"):
        raise ProtocolViolation("The coordinator's answer carries no PEM certificate.")
    fab = _text(value, "fab_sha256", 64)
    if not _HEX.match(fab):
        raise ProtocolViolation("The coordinator's answer carries no app hash.")
    federation = _text(value, "federation", 64)
    if not re.match(r"^[0-9a-f]{8,64}$", federation):
        raise ProtocolViolation("The coordinator's answer names no valid federation.")
    rounds = value.get("rounds")
    if not isinstance(rounds, int) or isinstance(rounds, bool) or not 1 <= rounds <= 1000:
        raise ProtocolViolation("The coordinator's answer gives no valid number of rounds.")
    return Admission(superlink, ca, fab, federation, rounds)


Decide = Callable[[str, JoinRequest], Awaitable[Admission]]


async def answer(stream: Any, decide: Decide) -> None:
    """The coordinator's side of one join stream: `decide(peer, request)` admits (an Admission) or refuses
    (NotAdmitted, whose sentence the member sees)."""
    peer = str(stream.muxed_conn.peer_id)  # authenticated by Noise
    frames = FrameStream(stream, Counters(), Limits(frame_deadline=DEADLINE))
    try:
        with trio.fail_after(DEADLINE):
            request = parse_request(await frames.expect(HELLO))
        try:
            admitted = await decide(peer, request)
        except NotAdmitted as exc:
            logger.warning("federation join of peer %s refused: %s", peer, type(exc).__name__)
            await frames.send(REFUSED, str(exc).encode()[:500])
        else:
            await frames.send(WELCOME, encode_admission(admitted))
    except (ProtocolViolation, P2PError, trio.TooSlowError) as exc:
        logger.warning("federation join of peer %s cut off: %s", peer, type(exc).__name__)
        await reset_stream(stream)
        return
    except Exception:  # anything else ends this stream only: an exception out of a handler takes the host down
        logger.exception("federation join of peer %s failed", peer)
        await reset_stream(stream)
        return
    await close_stream(stream)


async def ask(host: Any, peer_id: Any, request: JoinRequest) -> Admission:
    """The member's side: one join exchange with a connected coordinator."""
    stream = await host.new_stream(peer_id, [JOIN_PROTOCOL])
    frames = FrameStream(stream, Counters(), Limits(frame_deadline=DEADLINE))
    try:
        with trio.fail_after(DEADLINE):
            await frames.send(HELLO, encode_request(request))
            return parse_admission(await frames.expect(WELCOME))
    except Refused as exc:
        raise NotAdmitted(f"The coordinator refused to admit this node: {str(exc).split(': ', 1)[-1]}") from None
    except trio.TooSlowError:
        raise NotAdmitted("The coordinator did not answer the join request in time.") from None
    finally:
        await close_stream(stream)
