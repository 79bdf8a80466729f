"""Configuration, read once at the entry point into a frozen value and passed down.

Sources, later ones winning: built-in defaults, the TOML file `<config dir>/config.toml`, `DATANET_*` environment
variables, command-line flags. Secrets are never configuration: they live in the keyring or are given as a
passphrase (DATANET_PASSPHRASE / DATANET_PASSPHRASE_FILE / a prompt) at the moment they are needed.

    data_dir = "/var/lib/datanet"     # DATANET_DATA_DIR, --data-dir
    [vault]
    key_store = "auto"                 # auto | keyring | passphrase; DATANET_KEY_STORE, --key-store
    [log]
    level = "info"                     # debug | info | warning | error
    trace = ["p2p", "chain"]           # DATANET_TRACE=p2p,chain: debug logging for those areas
    format = "text"                    # text | json (one object a line); DATANET_LOG_FORMAT
    rotate_mb = 5                      # the log file is rotated at this size...
    keep = 3                           # ...and this many old files are kept
    [chain]                            # leave out to use the embedded devnet (the default)
    rpc_url = "https://..."            # DATANET_RPC_URL, --rpc-url: any Ethereum JSON-RPC endpoint
    chain_id = 1612                    # optional: refuse an endpoint that serves another chain
    receipt_timeout = 120              # seconds to wait for a transaction's receipt
    registry = "0x..."                 # the contracts' addresses on that chain (or `datanet chain deploy`)
    ledger = "0x..."
    contribution_check = "0x..."
    membership_check = "0x..."
    [node]
    listen = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/tcp/4002/ws"]   # --listen
    bootstrap = ["/ip4/10.0.0.5/tcp/4001/p2p/12D3KooW..."]         # peers to stay connected to
    announce_every = 5                 # seconds between checks for changes to announce
    mdns = false                       # LAN discovery (default: on, off with `node run --headless`)
    discover_every = 60                # seconds between Kademlia rounds (provide, find providers)
    membership_ttl = 30                # seconds an on-chain membership answer is reused (with an RPC chain)
    nice = 10                          # the node's CPU priority, 0-19 (DATANET_NODE_NICE): it yields to what you use
    outbound_only = false              # no listening port at all: reached through `relays` (node run --outbound-only)
    relays = ["/ip4/10.0.0.9/tcp/4001/p2p/12D3KooW..."]            # keep a reservation on these relays
    relay_service = false              # relay circuits for other members (opt-in: it spends this node's bandwidth)
    swarm_key = "/etc/datanet/swarm.key"   # a private swarm: only nodes with this key connect (0600)
    [limits]                           # what the node may take of the machine (enforced)
    min_free_mb = 256                  # a sync or an import stops before the disk has less free than this
    cpu_threads = 2                    # proving workers and training threads at most (default: every core)
    max_connections = 64               # libp2p connections at most, in and out (its resource manager)
    max_connections_per_peer = 4       # connections one peer may hold
    max_syncs_per_peer = 4             # sync sessions (each one stream) one peer may hold open at once
    max_memory_mb_per_peer = 64        # frames a peer's sessions may have us buffer, all together
    max_upload_mbps_per_peer = 0       # MB/s this node sends one peer at most (0: no cap)
    [metrics]                          # leave out for none (the default)
    listen = "127.0.0.1:9464"          # DATANET_METRICS, `node run --metrics`: Prometheus, loopback only
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import platformdirs

from client.errors import ConfigError

KeyStoreChoice = Literal["auto", "keyring", "passphrase"]
KEY_STORES: tuple[KeyStoreChoice, ...] = ("auto", "keyring", "passphrase")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")
TRACE_AREAS = {
    "vault": "storage",
    "import": "client.importers",
    "identity": "client.identity",
    "training": "client.training",
    "cli": "client.cli",
    "chain": "client.chain",
    "p2p": "client.p2p",
    "node": "client.node",
}
# The node runs below normal CPU priority (as Syncthing does by default): it is background work, and the terminal
# UI, the CLI and the user's own programs stay responsive beside a sync and a training run (bench/tui.py: the UI's
# p99 event-loop lag under load fell from 60 ms to 14 ms on 2 cores). Its worker processes go lower still.
NODE_NICE = 10
# A write that would leave less free than this stops (storage/diskspace.py); `datanet health` warns at 1024 MB.
MIN_FREE_MB = 256
CHAIN_ADDRESSES = ("registry", "ledger", "contribution_check", "membership_check")
GOVERNANCE_ADDRESSES = ("token", "timelock", "governor", "polls")  # optional: governance and polls
_ALLOWED = {
    "data_dir": None,
    "vault": {"key_store"},
    "log": {"level", "trace", "format", "rotate_mb", "keep"},
    "chain": {"rpc_url", "chain_id", "receipt_timeout", *CHAIN_ADDRESSES, *GOVERNANCE_ADDRESSES},
    "node": {
        "listen",
        "bootstrap",
        "announce_every",
        "mdns",
        "discover_every",
        "membership_ttl",
        "nice",
        "outbound_only",
        "relays",
        "relay_service",
        "swarm_key",
    },
    "metrics": {"listen"},
    "limits": {
        "min_free_mb",
        "cpu_threads",
        "max_connections",
        "max_connections_per_peer",
        "max_syncs_per_peer",
        "max_memory_mb_per_peer",
        "max_upload_mbps_per_peer",
    },
}


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path
    config_dir: Path
    cache_dir: Path
    key_store: KeyStoreChoice = "auto"
    log_level: str = "info"
    trace: frozenset[str] = frozenset()
    log_format: str = "text"
    log_rotate_mb: int = 5
    log_keep: int = 3
    rpc_url: str | None = None  # None: the embedded devnet
    chain_id: int | None = None
    chain_addresses: tuple[tuple[str, str], ...] = ()  # (name, address) from [chain]
    receipt_timeout: float = 120.0
    node_listen: tuple[str, ...] = ()
    bootstrap: tuple[str, ...] = ()
    announce_every: float = 5.0
    mdns: bool | None = None
    discover_every: float = 60.0
    membership_ttl: float = 30.0
    node_nice: int = NODE_NICE
    metrics: tuple[str, int] | None = None  # the node's Prometheus endpoint (loopback only)
    min_free_mb: int = MIN_FREE_MB
    cpu_threads: int | None = None  # None: every core
    max_connections: int = 64
    max_connections_per_peer: int = 4
    max_syncs_per_peer: int = 4
    max_memory_mb_per_peer: int = 64
    max_upload_mbps_per_peer: float = 0.0  # 0: no cap
    outbound_only: bool = False
    relays: tuple[str, ...] = ()
    relay_service: bool = False
    swarm_key: Path | None = None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            doc = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or remove it.") from None
    except UnicodeDecodeError:  # found by fuzz/ (config target)
        raise ConfigError(f"{path} is not UTF-8 text; fix or remove it.") from None
    for key, value in doc.items():
        if key not in _ALLOWED:
            raise ConfigError(f"{path}: unknown setting {key!r}; known: {', '.join(sorted(_ALLOWED))}.")
        allowed = _ALLOWED[key]
        if allowed is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [{key}] must be a table.")
            for sub in value:
                if sub not in allowed:
                    raise ConfigError(f"{path}: unknown setting {key}.{sub}; known: {', '.join(sorted(allowed))}.")
    return doc


def _choice(value: object, allowed: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise ConfigError(f"{what} must be one of {', '.join(allowed)}, not {value!r}.")
    return value.lower()


def loopback_address(value: str, what: str) -> tuple[str, int]:
    """`127.0.0.1:9464` or `[::1]:9464` into (host, port); any other interface refused in one sentence."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
        raise ConfigError(f"{what} must be an address and port such as 127.0.0.1:9464, not {value!r}.")
    loopback = host == "localhost"
    if not loopback:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
    if not loopback:
        raise ConfigError(
            f"{what}: the metrics endpoint has no authentication and listens on the loopback interface only "
            f"(127.0.0.1 or ::1), not {host!r}; let a local Prometheus agent or an SSH tunnel reach it."
        )
    return host, int(port)


def _whole(value: object, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _trace(value: object, what: str) -> frozenset[str]:
    areas = value.split(",") if isinstance(value, str) else value
    if not isinstance(areas, list | tuple) or not all(isinstance(a, str) for a in areas):
        raise ConfigError(f"{what} must be a list of areas such as vault,import.")
    cleaned = frozenset(a.strip().lower() for a in areas if a.strip())
    unknown = cleaned - set(TRACE_AREAS) - {"all"}
    if unknown:
        raise ConfigError(
            f"{what}: unknown area(s) {', '.join(sorted(unknown))}; known: all, {', '.join(TRACE_AREAS)}."
        )
    return cleaned


def load(
    env: Mapping[str, str],
    *,
    data_dir: str | None = None,
    key_store: str | None = None,
    rpc_url: str | None = None,
) -> Config:
    config_dir = Path(env.get("DATANET_CONFIG_DIR") or platformdirs.user_config_dir("datanet")).expanduser()
    config_path = config_dir / "config.toml"
    doc = _read_toml(config_path)
    vault = doc.get("vault", {})
    log = doc.get("log", {})

    chosen_dir = data_dir or env.get("DATANET_DATA_DIR") or doc.get("data_dir") or platformdirs.user_data_dir("datanet")
    if not isinstance(chosen_dir, str) or not chosen_dir:
        raise ConfigError(f"{config_path}: data_dir must be a path.")
    store = _choice(
        key_store or env.get("DATANET_KEY_STORE") or vault.get("key_store", "auto"), KEY_STORES, "key_store"
    )
    level = _choice(log.get("level", "info"), LOG_LEVELS, "log.level")
    trace = (
        _trace(env["DATANET_TRACE"], "DATANET_TRACE")
        if "DATANET_TRACE" in env
        else _trace(log.get("trace", []), "log.trace")
    )
    log_format = _choice(env.get("DATANET_LOG_FORMAT") or log.get("format", "text"), LOG_FORMATS, "log.format")
    rotate_mb, keep = log.get("rotate_mb", 5), log.get("keep", 3)
    if not _whole(rotate_mb, 1) or not _whole(keep, 0):
        raise ConfigError(f"{config_path}: log.rotate_mb must be a whole number of at least 1, log.keep at least 0.")
    cache_dir = Path(env.get("DATANET_CACHE_DIR") or platformdirs.user_cache_dir("datanet")).expanduser()
    chain = doc.get("chain", {})
    url = rpc_url or env.get("DATANET_RPC_URL") or chain.get("rpc_url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise ConfigError(f"rpc_url must be an http:// or https:// URL, not {url!r}.")
    chain_id = chain.get("chain_id")
    if chain_id is not None and (not isinstance(chain_id, int) or chain_id <= 0):
        raise ConfigError(f"{config_path}: chain.chain_id must be a positive whole number.")
    receipt_timeout = chain.get("receipt_timeout", 120)
    if not isinstance(receipt_timeout, int | float) or receipt_timeout <= 0:
        raise ConfigError(f"{config_path}: chain.receipt_timeout must be a positive number of seconds.")
    addresses = []
    for name in (*CHAIN_ADDRESSES, *GOVERNANCE_ADDRESSES):
        value = chain.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
            raise ConfigError(f"{config_path}: chain.{name} must be a 0x-prefixed 20-byte address.")
        addresses.append((name, value))
    node = doc.get("node", {})
    lists = {}
    for key in ("listen", "bootstrap"):
        value = node.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.startswith("/") for v in value):
            raise ConfigError(
                f'{config_path}: node.{key} must be a list of multiaddrs such as "/ip4/0.0.0.0/tcp/4001".'
            )
        lists[key] = tuple(value)
    announce_every = node.get("announce_every", 5)
    discover_every = node.get("discover_every", 60)
    membership_ttl = node.get("membership_ttl", 30)
    for key, value in (
        ("announce_every", announce_every),
        ("discover_every", discover_every),
        ("membership_ttl", membership_ttl),
    ):
        if not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{config_path}: node.{key} must be a positive number of seconds.")
    nice: Any = node.get("nice", NODE_NICE)
    if env.get("DATANET_NODE_NICE"):
        nice = int(env["DATANET_NODE_NICE"]) if env["DATANET_NODE_NICE"].isdigit() else env["DATANET_NODE_NICE"]
    if not isinstance(nice, int) or isinstance(nice, bool) or not 0 <= nice <= 19:
        raise ConfigError(f"{config_path}: node.nice must be a whole number from 0 (normal) to 19 (lowest).")
    mdns = node.get("mdns")
    if mdns is not None and not isinstance(mdns, bool):
        raise ConfigError(f"{config_path}: node.mdns must be true or false.")
    metrics_listen = env.get("DATANET_METRICS") or doc.get("metrics", {}).get("listen")
    if metrics_listen is not None and not isinstance(metrics_listen, str):
        raise ConfigError(f"{config_path}: metrics.listen must be an address such as 127.0.0.1:9464.")
    metrics = None if not metrics_listen else loopback_address(metrics_listen, "metrics.listen")
    limits = doc.get("limits", {})
    for key, least in (
        ("min_free_mb", 0),
        ("cpu_threads", 1),
        ("max_connections", 1),
        ("max_connections_per_peer", 1),
        ("max_syncs_per_peer", 1),
        ("max_memory_mb_per_peer", 1),
    ):
        if key in limits and not _whole(limits[key], least):
            raise ConfigError(f"{config_path}: limits.{key} must be a whole number of at least {least}.")
    upload = limits.get("max_upload_mbps_per_peer", 0)
    if not isinstance(upload, int | float) or isinstance(upload, bool) or upload < 0:
        raise ConfigError(f"{config_path}: limits.max_upload_mbps_per_peer must be a number of MB/s (0: no cap).")
    relays = node.get("relays", [])
    if not isinstance(relays, list) or not all(isinstance(v, str) and "/p2p/" in v for v in relays):
        raise ConfigError(
            f'{config_path}: node.relays must be a list of peer addresses such as "/ip4/.../p2p/12D3KooW...".'
        )
    for key in ("outbound_only", "relay_service"):
        if not isinstance(node.get(key, False), bool):
            raise ConfigError(f"{config_path}: node.{key} must be true or false.")
    swarm_key = node.get("swarm_key")
    if swarm_key is not None and (not isinstance(swarm_key, str) or not swarm_key):
        raise ConfigError(f"{config_path}: node.swarm_key must be the path of a swarm key file.")
    return Config(
        data_dir=Path(chosen_dir).expanduser().absolute(),
        config_dir=config_dir,
        cache_dir=cache_dir.absolute(),
        key_store=cast(KeyStoreChoice, store),
        log_level=level,
        trace=trace,
        log_format=log_format,
        log_rotate_mb=rotate_mb,
        log_keep=keep,
        rpc_url=url or None,
        chain_id=chain_id,
        chain_addresses=tuple(addresses),
        receipt_timeout=float(receipt_timeout),
        node_listen=lists["listen"],
        bootstrap=lists["bootstrap"],
        announce_every=float(announce_every),
        mdns=mdns,
        discover_every=float(discover_every),
        membership_ttl=float(membership_ttl),
        node_nice=nice,
        metrics=metrics,
        min_free_mb=limits.get("min_free_mb", MIN_FREE_MB),
        cpu_threads=limits.get("cpu_threads"),
        max_connections=limits.get("max_connections", 64),
        max_connections_per_peer=limits.get("max_connections_per_peer", 4),
        max_syncs_per_peer=limits.get("max_syncs_per_peer", 4),
        max_memory_mb_per_peer=limits.get("max_memory_mb_per_peer", 64),
        max_upload_mbps_per_peer=float(upload),
        outbound_only=node.get("outbound_only", False),
        relays=tuple(relays),
        relay_service=node.get("relay_service", False),
        swarm_key=None if swarm_key is None else Path(swarm_key).expanduser(),
    )
