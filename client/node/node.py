"""`datanet node run`: the long-running node, the one owner and writer of its data directory. One trio loop owns
the libp2p host (TCP and WebSocket, Noise, yamux), the sync service, the job journal and its lanes (jobs.py),
discovery (discovery.py), announcements, the chain session (client/app/chain.py, opened at its first use), the
control API (handlers.py) and the peer diagnostics (peers.py). It holds the data directory's node lock
(instance.py) for its whole life. SIGTERM, SIGINT or the `stop` method stop it gracefully (running jobs are put
back in the queue and resume at the next start; so are ones a crash left "running"). SIGHUP re-reads the
configuration: the log level and areas, the bootstrap peers, the free disk space kept and the CPU threads for
proving and training change at once; the rest is named in the log as needing a restart. Under systemd it reports
readiness, reloads and stopping, and keeps its watchdog fed (supervisor.py).
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import trio

from client.app import records as records_app
from client.app.chain import ChainService
from client.config import Config
from client.federation.service import Federation
from client.identity import Identity
from client.node import control, instance, journal
from client.node.announce import Announcer
from client.node.audit import AuditWriter
from client.node.control_loop import serve_in_thread
from client.node.discovery import Discovery
from client.node.front import Front, internal_path
from client.node.handlers import ON_NODE_LOOP, Handlers
from client.node.jobs import RESUMABLE, Jobs
from client.node.members import CHAIN_ADMISSION_TTL
from client.node.metrics import ErrorCounter, Gauges, Metrics
from client.node.peers import Peers
from client.node.sharing import Sharing
from client.node.supervisor import Supervisor
from client.p2p import sync
from client.p2p.admission import ChainMembership
from client.p2p.host import ConnectionCaps, listen_addrs, new_secure_host
from client.p2p.relay import Relays
from client.p2p.service import PeerCaps, SyncService
from storage import audit
from storage.vault import Vault

logger = logging.getLogger(__name__)

GAUGES_EVERY = 15.0  # seconds between refreshes of the metrics' gauges (a scrape interval is usually 15-60 s)
_COUNTED_LOGGERS = ("client", "storage", "prover", "libp2p")  # their ERROR lines count in datanet_errors_total

# What a SIGHUP does not change in a running node (its host, vault, chain session and lanes were built with it).
_RESTART_SETTINGS = (
    "data_dir",
    "key_store",
    "rpc_url",
    "chain_id",
    "chain_addresses",
    "receipt_timeout",
    "node_listen",
    "announce_every",
    "mdns",
    "discover_every",
    "membership_ttl",
    "node_nice",
    "metrics",
    "max_connections",
    "max_connections_per_peer",
    "max_syncs_per_peer",
    "max_memory_mb_per_peer",
    "max_upload_mbps_per_peer",
    "outbound_only",
    "relays",
    "relay_service",
    "swarm_key",
)


@dataclass(frozen=True, slots=True)
class NodeSettings:
    listen: tuple[str, ...]
    bootstrap: tuple[str, ...] = ()
    announce_every: float = 5.0  # seconds between checks for changed Datanets to announce
    mdns: bool = False  # find peers on the LAN (desktop default; off on headless nodes unless configured)
    discover_every: float = 60.0  # seconds between DHT rounds (provide our Datanets, look up their providers)
    offline: bool = False  # control socket only: no listening port, no dialling, no discovery or announcements
    idle_exit: float | None = None  # stop after this many seconds with no request, subscriber or job
    metrics: tuple[str, int] | None = None  # the Prometheus endpoint's loopback address and port (opt-in)
    outbound_only: bool = False  # no listening port: reached through `relays` only
    relays: tuple[str, ...] = ()  # relays to keep a reservation on (client/p2p/relay.py)
    relay_service: bool = False  # relay circuits for other peers
    psk: str | None = None  # a private swarm's key (client/p2p/swarm_key.py)
    caps: ConnectionCaps = dataclasses.field(default_factory=ConnectionCaps)
    peer_caps: PeerCaps = dataclasses.field(default_factory=PeerCaps)


class Node:
    def __init__(
        self,
        vault: Vault,
        identity: Identity,
        data_dir: Path,
        settings: NodeSettings,
        *,
        config: Config,
        chain_member: ChainMembership | None = None,
        supervisor: Supervisor | None = None,
        reload_config: Callable[[], Config] | None = None,
        front: Front | None = None,
    ) -> None:
        self.config = config
        self.supervisor = supervisor or Supervisor({})
        self._reload_config = reload_config  # the configuration read again, as the entry point read it
        self.settings = settings
        self.vault = vault
        self.identity = identity
        self.data_dir = data_dir
        # Offline or outbound only: no port at all.
        self.listen = [] if settings.offline or settings.outbound_only else listen_addrs(settings.listen)
        self.host = new_secure_host(identity, self.listen, mdns=settings.mdns, psk=settings.psk, caps=settings.caps)
        self.events = control.Events()
        self.relays = Relays(
            self.host,
            serve=settings.relay_service,
            relays=settings.relays,
            on_reserved=lambda relay, circuit: self.events.publish(
                {"type": "relay.reserved", "relay": relay, "circuit": circuit}
            ),
        )
        self.journal = journal.Journal(data_dir / "node" / journal.FILE, vault.key_for(journal.KEY_NAME))
        self.peers = Peers()
        self.audit = AuditWriter(audit.open_for(vault))  # what left the machine (closed when the node stops)
        self.events.observe(self.audit.event)
        self.metrics = Metrics()
        self._error_counter = ErrorCounter(self.metrics)
        self.events.observe(self.metrics.event)
        self._gauges_stale = True
        self.events.observe(self._gauges_changed)
        self.service = SyncService(
            vault,
            identity,
            self.host,
            on_progress=self._progress,
            on_result=self._served,
            chain_member=chain_member,
            on_sent=self.audit.records_sent,
            on_refused=self.audit.refused,
            caps=settings.peer_caps,
            connect=self.relays.connect,
        )
        self.started = time.time()
        self._stop = trio.Event()
        self.chain = ChainService(config, vault, identity)  # opened at its first use, closed when the node stops
        self.jobs = Jobs(
            self.journal,
            self.events,
            self.service,
            self.peers,
            vault=vault,
            identity=identity,
            data_dir=data_dir,
            config=config,
            chain=self.chain,
            admit=self._admit,
        )
        self.federation = Federation(
            vault=vault,
            identity=identity,
            config=config,
            host=self.host,
            chain_member=chain_member,
            queue=self.jobs.queue,
        )
        self.jobs.extra_work.update(self.federation.works)
        self.sharing = Sharing(
            vault=vault,
            identity=identity,
            data_dir=data_dir,
            host=self.host,
            chain=self.chain,
            chain_member=chain_member,
            on_sent=self.audit.adapter_sent,
        )
        self.announcer = Announcer(
            self.host,
            vault,
            self.jobs.queue_sync,
            check_every=settings.announce_every,
            min_interval=settings.announce_every,
            gossip=not settings.offline,
            on_dropped=lambda _name, _peer, why: self.metrics.dropped.labels(why.name.lower()).inc(),
        )
        self.discovery = Discovery(
            self.host,
            vault,
            self.peers,
            self.events,
            bootstrap=settings.bootstrap,
            discover_every=settings.discover_every,
            on_connected=self.announcer.poke,
            connect=self.relays.connect,
        )
        self.handlers = Handlers(
            host=self.host,
            vault=vault,
            identity=identity,
            config=config,
            chain=self.chain,
            journal=self.journal,
            jobs=self.jobs,
            peers=self.peers,
            announcer=self.announcer,
            events=self.events,
            started=self.started,
            online=not settings.offline,
            stop=self._stop,
            addresses=self.addresses,
        )
        # Clients talk to the front (a process of its own, front.py), spawned by `node run` before it lowered its
        # priority (or here); it is told the node's status before every event is fanned out.
        self.front = front or Front(data_dir, json_log=config.log_format == "json")
        self.events.observe(self.front.event)

    # --- events ---------------------------------------------------------------------------------------------

    def _progress(self, event: sync.SyncProgress) -> None:
        self.events.publish({"type": "sync.progress", **asdict(event)})

    def _served(self, result: sync.SyncResult) -> None:
        self.metrics.served(result)
        self.peers.note(result.peer, None, sync_done=True)
        self._admit(result)
        self.events.publish(
            {"type": "records.received", "datanet": result.datanet, "peer": result.peer, "count": result.received}
        )

    def _admit(self, result: sync.SyncResult) -> None:
        """A peer that finished a session is a member: listed in the vault (then this records nothing) or admitted
        on chain, which the vault does not list: let its announcements through for a while."""
        self.announcer.members.admit(result.datanet, result.peer, time.monotonic() + CHAIN_ADMISSION_TTL)

    def addresses(self) -> list[str]:
        """Where peers reach this node: its listening addresses, then its circuits through relays."""
        return [str(a) for a in self.host.get_addrs()] + self.relays.addresses()

    # --- control API ----------------------------------------------------------------------------------------

    def methods(self) -> dict[str, control.Handler]:
        federation = self.federation.methods(self.jobs.cancel, lambda: self.journal.jobs(limit=1000))
        return {**self.handlers.methods(), **federation, **self.sharing.methods()}

    # --- main -----------------------------------------------------------------------------------------------

    async def run(self, *, ready: Callable[[Node], None] | None = None) -> None:
        """Hold the node lock, then run until SIGTERM, SIGINT or the `stop` method; NodeAlreadyRunning (before
        anything is touched) when another node runs for this data directory."""
        with instance.single_instance(self.data_dir):
            await self._run(ready)

    async def _run(self, ready: Callable[[Node], None] | None) -> None:
        resumed, failed = self.journal.recover(RESUMABLE)
        for job in resumed:
            logger.info("job %s (%s) was interrupted; resuming it", job.id, job.kind)
        for job in failed:
            logger.warning("job %s (%s) was interrupted and cannot resume; marked failed", job.id, job.kind)
        try:
            await self._serve(ready)
        finally:  # whatever ended the node: the chain session closed, every queued journal and audit write written
            self.front.stop()
            self.handlers.close()
            self.chain.close()
            self.journal.close()
            self.audit.close()
            self.metrics.close()
            for name in _COUNTED_LOGGERS:
                logging.getLogger(name).removeHandler(self._error_counter)

    def reload(self) -> None:
        """SIGHUP: the configuration read again. A configuration that no longer reads is logged in one sentence
        and the node goes on with the one it has."""
        if self._reload_config is None:
            logger.info("SIGHUP: nothing to reload (no configuration file)")
            return
        from client import log_setup
        from client.errors import ConfigError

        try:
            new = self._reload_config()
        except ConfigError as exc:
            logger.error("configuration not reloaded, the node keeps the one it has: %s", exc)
            return
        old, changed = self.config, []
        if (new.log_level, new.trace) != (old.log_level, old.trace):
            log_setup.configure(new)
            changed.append("log")
        if new.bootstrap != old.bootstrap:
            self.discovery.bootstrap_peers = new.bootstrap
            changed.append("bootstrap")
        restart = [name for name in _RESTART_SETTINGS if getattr(new, name) != getattr(old, name)]
        if (new.min_free_mb, new.cpu_threads) != (old.min_free_mb, old.cpu_threads):
            self.vault.disk.min_free_bytes = new.min_free_mb << 20
            changed.append("limits")
        self.config = dataclasses.replace(
            old,
            log_level=new.log_level,
            trace=new.trace,
            bootstrap=new.bootstrap,
            min_free_mb=new.min_free_mb,
            cpu_threads=new.cpu_threads,
        )
        self.jobs.config = self.config  # proving workers and training threads at most
        logger.info(
            "configuration reloaded: %s%s",
            ", ".join(changed) or "nothing changed",
            f"; needs a restart to change: {', '.join(restart)}" if restart else "",
        )
        self.events.publish({"type": "config.reloaded", "changed": changed, "restart": restart})

    async def _serve(self, ready: Callable[[Node], None] | None) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async with self.host.run(listen_addrs=self.listen), trio.open_nursery() as nursery:
                if not self.settings.offline:
                    # Pubsub first: a peer that connects before py-libp2p's pubsub service runs (mDNS finds us at
                    # once) makes its stream handler raise, and that takes the whole host down (py-libp2p 0.8.1).
                    nursery.start_soon(self.announcer.run)
                await nursery.start(
                    functools.partial(serve_in_thread, on_node_loop=ON_NODE_LOOP),
                    internal_path(self.data_dir),
                    self.methods(),
                    self.events,
                )
                key, snapshot = self.vault.master_key(), self.handlers.status_snapshot
                await trio.to_thread.run_sync(lambda: self.front.start(key, snapshot))  # node.sock answers from here
                nursery.start_soon(self.front.run, self.events.touch)
                for lane in self.jobs.lanes:
                    nursery.start_soon(self.jobs.run_lane, lane)
                if not self.settings.offline:
                    nursery.start_soon(self.relays.run)
                    nursery.start_soon(self.discovery.bootstrap)
                    if self.settings.mdns:
                        self.discovery.listen_for_mdns(nursery)
                    nursery.start_soon(self.discovery.discover)
                nursery.start_soon(self._stop_on_request, nursery.cancel_scope)
                if self.settings.metrics is not None:
                    self.metrics.start(*self.settings.metrics, started=self.started)
                    for name in _COUNTED_LOGGERS:
                        logging.getLogger(name).addHandler(self._error_counter)
                    nursery.start_soon(self._refresh_gauges)
                if self.settings.idle_exit is not None:
                    nursery.start_soon(self._stop_when_idle, self.settings.idle_exit)
                # What startup built (modules, the host, the vault) lives as long as the node: kept out of the
                # collector's full passes, which otherwise walk it all and stop every thread for ~70 ms (~15 ms
                # after this, measured by bench/control.py's load).
                gc.collect()
                gc.freeze()
                nursery.start_soon(self.supervisor.keep_watchdog)
                if ready is not None:
                    ready(self)
                mode = "offline" if self.settings.offline else "online"
                self.supervisor.ready(f"{mode}, peer id {self.host.get_id()}")
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        self.supervisor.reloading()
                        self.reload()
                        self.supervisor.ready("configuration reloaded")
                        continue
                    logger.info("node stopping (%s)", signal.Signals(signum).name)
                    self.supervisor.stopping(signal.Signals(signum).name)
                    await self.front.aclose()
                    nursery.cancel_scope.cancel()
                    break
            await self.host.close()

    async def _refresh_gauges(self) -> None:
        """The metrics' gauges, read on this loop and in the database thread (a scrape never opens the vault):
        within a second of an event that changes them, and every GAUGES_EVERY seconds."""
        last = -GAUGES_EVERY
        while True:
            if self._gauges_stale or time.monotonic() - last >= GAUGES_EVERY:
                self._gauges_stale, last = False, time.monotonic()
                listed = await self.handlers.vault_call(lambda: records_app.datanets(self.vault))
                jobs = self.journal.jobs(limit=10_000)
                self.metrics.gauges = Gauges(
                    datanets=len(listed["datanets"]),
                    records=sum(int(d["records"]) for d in listed["datanets"]),
                    peers=len(self.host.get_network().connections),
                    jobs_queued=sum(1 for j in jobs if j.state == "queued"),
                    jobs_running=sum(1 for j in jobs if j.state == "running"),
                )
            await trio.sleep(1.0)

    def _gauges_changed(self, event: dict[str, Any]) -> None:
        if event.get("type") in ("job", "records.received", "records.changed", "peer.up"):
            self._gauges_stale = True  # a flag: events are published from several threads

    async def _stop_when_idle(self, idle: float) -> None:
        """A node the CLI started for itself: stop once nothing happened for `idle` seconds (no control request,
        no subscriber, no queued or running job)."""
        while True:
            await trio.sleep(max(0.0, self.events.last_activity + idle - time.monotonic()))
            busy = self.events.subscribers or self.journal.queued() or self.jobs.running
            if busy:
                self.events.touch()
            elif time.monotonic() - self.events.last_activity >= idle:
                logger.info("node stopping (idle for %.0f s)", idle)
                self._stop.set()
                return

    async def _stop_on_request(self, scope: trio.CancelScope) -> None:
        await self._stop.wait()
        logger.info("node stopping (asked over the control API)")
        self.supervisor.stopping("asked over the control API")
        await trio.sleep(0.2)  # the `stop` answer leaves first (a local socket: microseconds)
        await self.front.aclose()  # clients see no node from now on, not one that half answers
        scope.cancel()
