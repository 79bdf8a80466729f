"""The libp2p host: the contributor's persistent Ed25519 peer id, Noise as the ONLY security transport (py-libp2p's
default `new_host()` also accepts plaintext peers: never used here), yamux as the only muxer, TCP listening.

Importing libp2p resets the root logger's handlers (FACTS.md): `new_secure_host` re-attaches ours.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import multiaddr

from client.identity import Identity


def _keep_logging() -> list[logging.Handler]:
    return list(logging.getLogger().handlers)


_handlers = _keep_logging()
with warnings.catch_warnings():
    # py-libp2p 0.8.1's WebSocket transport imports websockets.legacy, which warns on import.
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    import libp2p  # noqa: F401
from libp2p import new_host  # noqa: E402
from libp2p.abc import IHost  # noqa: E402
from libp2p.crypto.ed25519 import Ed25519PrivateKey  # noqa: E402
from libp2p.crypto.keys import KeyPair  # noqa: E402
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519  # noqa: E402
from libp2p.custom_types import TProtocol  # noqa: E402
from libp2p.peer.id import ID  # noqa: E402
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr  # noqa: E402
from libp2p.rcmgr import ResourceLimits, ResourceManager  # noqa: E402
from libp2p.rcmgr.connection_limits import new_connection_limits_with_defaults  # noqa: E402
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE  # noqa: E402
from libp2p.security.noise.transport import Transport as NoiseTransport  # noqa: E402
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX  # noqa: E402
from libp2p.stream_muxer.yamux.yamux import Yamux  # noqa: E402
from libp2p.transport.tcp.tcp import TCP  # noqa: E402
from libp2p.transport.websocket.transport import WebsocketTransport  # noqa: E402

_root = logging.getLogger()
for _handler in _handlers:
    if _handler not in _root.handlers:
        _root.addHandler(_handler)
# libp2p's logger does not propagate and has no handler, so Python's last-resort handler printed its warnings on
# stderr (in the middle of the CLI's one-sentence errors, or a TUI): send them to our log file instead.
_libp2p_logger = logging.getLogger("libp2p")
_libp2p_logger.setLevel(logging.WARNING)
_libp2p_logger.propagate = True

SYNC_PROTOCOL = TProtocol("/datanet/sync/1.1.0")
JOIN_PROTOCOL = TProtocol("/datanet/federation/join/1.0.0")  # client/federation/join.py
ADAPTER_PROTOCOL = TProtocol("/datanet/adapters/1.0.0")  # client/p2p/adapter_share.py
LEGACY_SYNC_PROTOCOL = TProtocol("/datanet/sync/1.0.0")  # answered only to say "upgrade" (sync.refuse_legacy)
DEFAULT_LISTEN = "/ip4/127.0.0.1/tcp/0"


def key_pair(identity: Identity) -> KeyPair:
    private = Ed25519PrivateKey.from_bytes(identity.ed25519_seed)
    return KeyPair(private, private.get_public_key())


@dataclass(frozen=True, slots=True)
class ConnectionCaps:
    """What py-libp2p's resource manager enforces for this host ([limits] in the config)."""

    max_connections: int = 64  # established connections, in and out together
    max_connections_per_peer: int = 4


def resource_manager(caps: ConnectionCaps) -> ResourceManager:
    """py-libp2p's resource manager with our caps: its connection limits refuse a connection past them right after
    the handshake. Its own Prometheus server stays off (it would listen on 0.0.0.0:8000)."""
    limits = new_connection_limits_with_defaults()
    limits.max_established_total = caps.max_connections
    limits.max_established_inbound = caps.max_connections
    limits.max_established_outbound = caps.max_connections
    limits.max_established_per_peer = caps.max_connections_per_peer
    # ResourceLimits counts an inbound connection twice in 0.8.1: its own cap is left well above ours.
    return ResourceManager(
        limits=ResourceLimits(max_connections=4 * caps.max_connections + 16),
        connection_limits=limits,
        enable_prometheus=False,
    )


def new_secure_host(
    identity: Identity,
    listen: Sequence[multiaddr.Multiaddr] = (),
    *,
    mdns: bool = False,
    psk: str | None = None,
    caps: ConnectionCaps | None = None,
) -> IHost:
    """A host that speaks Noise and yamux only: a plaintext peer cannot even finish the handshake. Its transports
    (TCP, and WebSocket for hospital firewalls) listen where `listen` says, and it dials both. With `mdns` it
    announces itself and listens for peers on the LAN (multicast DNS). With `psk` (a private swarm's key,
    swarm_key.py) every connection is first encrypted under it: a node without the key cannot even start the
    Noise handshake."""
    pair = key_pair(identity)
    host = new_host(
        key_pair=pair,
        sec_opt={NOISE: NoiseTransport(pair, new_x25519().private_key)},
        muxer_opt={TProtocol(YAMUX): Yamux},
        listen_addrs=list(listen) or None,
        enable_websocket=True,
        enable_mDNS=mdns,
        psk=psk,
        resource_manager=resource_manager(caps or ConnectionCaps()),
    )
    # py-libp2p picks the transports from the listening addresses alone: a node listening on TCP only could not
    # dial a peer or relay that is reachable over WebSocket only (or the reverse). It dials both.
    network = host.get_network()
    manager = network.transport_manager  # type: ignore[attr-defined]
    present = {type(t) for t in manager.get_transports()}
    if WebsocketTransport not in present:
        manager.add_transport(WebsocketTransport(network.upgrader))  # type: ignore[attr-defined]
    if TCP not in present:
        manager.add_transport(TCP())
    return host


def listen_addrs(addresses: Sequence[str]) -> list[multiaddr.Multiaddr]:
    return [multiaddr.Multiaddr(a) for a in (addresses or [DEFAULT_LISTEN])]


def peer_info(address: str) -> PeerInfo:
    """A dialable peer from `/ip4/.../tcp/.../p2p/<peer id>`."""
    try:
        return info_from_p2p_addr(multiaddr.Multiaddr(address))
    except Exception as exc:
        raise ValueError(f"{address!r} is not a peer address like /ip4/10.0.0.5/tcp/4001/p2p/12D3KooW...") from exc


__all__ = [
    "ID",
    "LEGACY_SYNC_PROTOCOL",
    "SYNC_PROTOCOL",
    "ConnectionCaps",
    "IHost",
    "PeerInfo",
    "key_pair",
    "listen_addrs",
    "new_secure_host",
    "peer_info",
]
