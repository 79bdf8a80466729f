"""`datanet node run`: the long-running node. One trio loop owns the libp2p host (TCP and WebSocket, Noise,
yamux), the sync service, the job journal, the control API and the peer diagnostics. It holds the data
directory's node lock (instance.py) for its whole life. Jobs run in lanes, one job at a time in each: `network`
(syncs) and `heavy` (proving and training, whose work runs in child processes), so a long training run never
holds a sync back; any job can be cancelled. SIGTERM, SIGINT or the `stop` method stop it gracefully (running
jobs are put back in the queue and resume at the next start; so are ones a crash left "running").
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import trio

from client import failures
from client.config import Config
from client.errors import ClientError
from client.identity import Identity
from client.node import control, instance
from client.node.announce import Announcer
from client.node.api import API_VERSION
from client.node.journal import Journal
from client.node.members import CHAIN_ADMISSION_TTL
from client.p2p import sync
from client.p2p.admission import ChainMembership
from client.p2p.errors import P2PError
from client.p2p.host import PeerInfo, listen_addrs, new_secure_host, peer_info
from client.p2p.service import SyncService
from storage.vault import BrokenShard, Vault

logger = logging.getLogger(__name__)

# Kinds a restart queues again: a sync keeps what it committed and asks for the rest; proving keeps every batch
# it stored and proves the rest; training resumes from its last checkpoint (same job id, same inputs).
RESUMABLE = {"sync", "prove", "train"}
LANES = {"sync": "network", "prove": "heavy", "train": "heavy"}  # each lane runs its jobs one at a time


class JobEnded(ClientError):
    """Cancelling a job that already ended."""


@dataclass
class PeerState:
    peer_id: str
    address: str
    transport: str  # "direct" (TCP or WebSocket) or "relayed" (a /p2p-circuit address)
    connected: bool = False
    last_sync: float | None = None
    last_error: str | None = None
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class NodeSettings:
    listen: tuple[str, ...]
    bootstrap: tuple[str, ...] = ()
    announce_every: float = 5.0  # seconds between checks for changed Datanets to announce
    mdns: bool = False  # find peers on the LAN (desktop default; off on headless nodes unless configured)
    discover_every: float = 60.0  # seconds between DHT rounds (provide our Datanets, look up their providers)


class Node:
    def __init__(
        self,
        vault: Vault,
        identity: Identity,
        data_dir: Path,
        settings: NodeSettings,
        *,
        chain_member: ChainMembership | None = None,
        config: Config | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        listen = settings.listen
        self.vault = vault
        self.identity = identity
        self.data_dir = data_dir
        self.listen = listen_addrs(listen)
        self.host = new_secure_host(identity, self.listen, mdns=settings.mdns)
        self.events = control.Events()
        self.journal = Journal(data_dir / "node" / "jobs.sqlite")
        self.service = SyncService(
            vault, identity, self.host, on_progress=self._progress, on_result=self._served, chain_member=chain_member
        )
        self.peers: dict[str, PeerState] = {}
        self.started = time.time()
        self._wakes = {lane: trio.Event() for lane in set(LANES.values())}
        self._ended: dict[str, trio.Event] = {}  # job id -> set when the job stops running
        self._running: dict[str, trio.CancelScope] = {}  # job id -> the scope that cancels it
        self._cancelled: set[str] = set()  # jobs cancelled by a client (not by a stop of the node)
        self._stop = trio.Event()
        self.announcer = Announcer(
            self.host,
            vault,
            self._queue_sync,
            check_every=settings.announce_every,
            min_interval=settings.announce_every,
        )

    # --- events ---------------------------------------------------------------------------------------------

    def _progress(self, event: sync.SyncProgress) -> None:
        self.events.publish({"type": "sync.progress", **asdict(event)})

    def _served(self, result: sync.SyncResult) -> None:
        self._note_peer(result.peer, None, sync_done=True)
        self._admit(result)
        self.events.publish(
            {"type": "records.received", "datanet": result.datanet, "peer": result.peer, "count": result.received}
        )

    def _admit(self, result: sync.SyncResult) -> None:
        """A peer that finished a session is a member: listed in the vault (then this records nothing) or admitted
        on chain, which the vault does not list: let its announcements through for a while."""
        self.announcer.members.admit(result.datanet, result.peer, time.monotonic() + CHAIN_ADMISSION_TTL)

    def _note_peer(self, peer: str, address: str | None, *, error: str | None = None, sync_done: bool = False) -> None:
        state = self.peers.get(peer)
        if state is None:
            where = address or ""
            state = self.peers[peer] = PeerState(peer, where, "relayed" if "p2p-circuit" in where else "direct")
        if address:
            state.address = address
        if error is not None:
            state.last_error = error
        if sync_done:
            state.last_sync = time.time()
            state.last_error = None

    # --- control API ----------------------------------------------------------------------------------------

    def methods(self) -> dict[str, control.Handler]:
        return {
            "status": self._status,
            "peers": self._peers,
            "datanets": self._datanets,
            "jobs": self._jobs,
            "job": self._job,
            "sync": self._sync,
            "prove": self._prove,
            "train": self._train,
            "cancel": self._cancel,
            "stop": self._stop_method,
        }

    async def _status(self, params: dict[str, Any]) -> dict[str, Any]:
        jobs = self.journal.jobs()
        return {
            "api_version": API_VERSION,
            "peer_id": str(self.host.get_id()),
            "addresses": [str(a) for a in self.host.get_addrs()],
            "uptime_s": round(time.time() - self.started, 1),
            "datanets": len(await self._datanets({})),
            "peers_connected": len(self.host.get_network().connections),
            "jobs": {state: sum(1 for j in jobs if j.state == state) for state in ("queued", "running", "failed")},
        }

    async def _peers(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        from libp2p.host.ping import PingService

        connected = {str(p): p for p in self.host.get_network().connections}
        for peer in connected:
            self._note_peer(peer, None)
        pinger = PingService(self.host)
        for state in self.peers.values():
            state.connected = state.peer_id in connected
            if state.connected:  # latency: one libp2p ping, at most a second
                with trio.move_on_after(1.0), contextlib.suppress(Exception):
                    rtts = await pinger.ping(connected[state.peer_id], ping_amt=1)
                    state.latency_ms = float(rtts[0]) if rtts else None
        return [asdict(p) for p in sorted(self.peers.values(), key=lambda p: p.peer_id)]

    async def _datanets(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for item in self.vault.each_shard():
            if isinstance(item, BrokenShard):
                continue
            with item as shard:
                out.append({"name": shard.info.name, "records": shard.count(), "members": shard.members()})
        return out

    async def _jobs(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [j.as_dict() for j in self.journal.jobs(limit=int(params.get("limit", 50)))]

    async def _job(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.journal.get(str(params["id"])).as_dict()

    async def _sync(self, params: dict[str, Any]) -> dict[str, Any]:
        """Queue a sync of `datanet` with `peer` (an address with /p2p/), or with every connected peer that is one
        of its members when no peer is given; `wait` returns once they ended."""
        name = str(params["datanet"])
        with self.vault.open_shard(name) as shard:  # a clear error now for an unknown Datanet
            members = set(shard.members())
        if params.get("peer"):
            address = str(params["peer"])
            peer_info(address)  # a clear error now for a malformed address
            addresses = [address]
        else:
            addresses = [a for p in members if (a := self.announcer.address_of(p)) is not None]
            if not addresses:
                raise ClientError(
                    f"No member of {name!r} is connected; give one with --peer, or add bootstrap peers to the config."
                )
        jobs = [self.journal.add("sync", {"datanet": name, "peer": a}) for a in addresses]
        ended = [self._ended.setdefault(job.id, trio.Event()) for job in jobs]
        self._poke()
        if params.get("wait"):
            for event in ended:
                await event.wait()
        results = [self.journal.get(job.id).as_dict() for job in jobs]
        return results[0] if params.get("peer") else {"jobs": results}

    async def _queue(self, kind: str, params: dict[str, Any], wait: bool) -> dict[str, Any]:
        job = self.journal.add(kind, params)
        ended = self._ended.setdefault(job.id, trio.Event())
        self.events.publish({"type": "job", "id": job.id, "state": "queued", "kind": kind, "params": params})
        self._poke()
        if wait:
            await ended.wait()
        return self.journal.get(job.id).as_dict()

    async def _prove(self, params: dict[str, Any]) -> dict[str, Any]:
        """Queue proving the pending records of `datanet` (a long job: it resumes after a restart)."""
        name = str(params["datanet"])
        with self.vault.open_shard(name):
            pass  # a clear error now for an unknown Datanet
        job: dict[str, Any] = {"datanet": name, "workers": int(params.get("workers") or 1)}
        if params.get("datanet_id") is not None:
            job["datanet_id"] = int(params["datanet_id"])
        return await self._queue("prove", job, bool(params.get("wait")))

    async def _train(self, params: dict[str, Any]) -> dict[str, Any]:
        """Queue training a LoRA adapter on `datanet` (resumes from its checkpoint after a restart)."""
        name = str(params["datanet"])
        with self.vault.open_shard(name):
            pass
        allowed = {"base", "epochs", "batch_size", "learning_rate", "seed", "threads", "dp_epsilon", "eval"}
        unknown = set(params) - allowed - {"datanet", "wait"}
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}")
        job = {k: v for k, v in params.items() if k in allowed and v is not None}
        return await self._queue("train", {"datanet": name, **job}, bool(params.get("wait")))

    async def _cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        """Cancel a queued job at once, or a running one at its next safe point (a sync between frames, proving
        between batches, training at its next step); what it committed stays."""
        job = self.journal.get(str(params["id"]))
        if job.state in ("done", "failed", "cancelled"):
            raise JobEnded(f"Job {job.id} ({job.kind}) already ended ({job.state}); there is nothing to cancel.")
        self._cancelled.add(job.id)
        scope = self._running.get(job.id)
        if scope is not None:
            scope.cancel()
            await self._ended.setdefault(job.id, trio.Event()).wait()
        elif self.journal.get(job.id).state == "queued":
            self.journal.set_state(job.id, "cancelled")
            self.events.publish({"type": "job", "id": job.id, "state": "cancelled", "kind": job.kind})
        return self.journal.get(job.id).as_dict()

    async def _stop_method(self, params: dict[str, Any]) -> dict[str, Any]:
        """Stop the node as SIGTERM does, once this answer has left (see `run`)."""
        self._stop.set()
        return {"stopping": True}

    def _poke(self) -> None:
        for event in self._wakes.values():
            event.set()

    def _queue_sync(self, name: str, address: str) -> None:
        """An announcement says a member has something else: sync with it (unless one is queued already)."""
        for job in self.journal.queued():
            if job.params == {"datanet": name, "peer": address}:
                return
        job = self.journal.add("sync", {"datanet": name, "peer": address})
        self._ended[job.id] = trio.Event()
        self.events.publish({"type": "job", "id": job.id, "state": "queued", "params": job.params, "cause": "gossip"})
        self._poke()

    async def _dial_discovered(self, receive: trio.MemoryReceiveChannel[PeerInfo]) -> None:
        """mDNS finds peers on a thread of its own and dials nobody: dial what it found, once each."""
        async for info in receive:
            if info.peer_id != self.host.get_id() and info.peer_id not in self.host.get_network().connections:
                await self._dial(PeerInfo(info.peer_id, [a for a in info.addrs if "/ws" not in str(a)]), "mdns")

    def _listen_for_mdns(self, nursery: trio.Nursery) -> None:
        from libp2p.discovery.events.peerDiscovery import peerDiscovery

        send, receive = trio.open_memory_channel[PeerInfo](64)
        token = trio.lowlevel.current_trio_token()

        def found(info: PeerInfo) -> None:  # called on zeroconf's thread
            with contextlib.suppress(trio.RunFinishedError):  # the node is stopping
                token.run_sync_soon(lambda: _offer(send, info))

        peerDiscovery.register_peer_discovered_handler(found)
        nursery.start_soon(self._dial_discovered, receive)

    async def _discover(self) -> None:
        """Kademlia: every round, put each Datanet's provider record (key: a hash of its name) and dial the
        providers found that are its members here; announcements then bring the sync."""
        from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
        from libp2p.tools.anyio_service import background_trio_service

        dht = KadDHT(self.host, DHTMode.SERVER)
        async with background_trio_service(dht):
            while True:
                for peer in list(self.host.get_network().connections):
                    with contextlib.suppress(Exception):  # a peer that went away meanwhile
                        await dht.routing_table.add_peer(peer)
                for item in self.vault.each_shard():
                    if isinstance(item, BrokenShard):
                        continue
                    with item as shard:
                        name, members = shard.info.name, set(shard.members())
                    key = hashlib.sha256(f"datanet:{name}".encode()).hexdigest()
                    try:
                        with trio.move_on_after(20):
                            await dht.provide(key)
                            providers = await dht.find_providers(key)
                    except Exception:  # the DHT is best effort: the next round tries again
                        logger.debug("DHT round for %r failed", name, exc_info=True)
                        continue
                    for info in providers:
                        if str(info.peer_id) in members and info.peer_id not in self.host.get_network().connections:
                            await self._dial(info, "dht")
                await trio.sleep(self.settings.discover_every)

    async def _dial(self, info: PeerInfo, via: str) -> None:
        peer = str(info.peer_id)
        address = next((f"{a}" if "/p2p/" in str(a) else f"{a}/p2p/{peer}" for a in info.addrs), "")
        self._note_peer(peer, address)
        try:
            with trio.fail_after(10):
                await self.host.connect(info)
        except Exception as exc:  # py-libp2p's dial errors share no base class
            self._note_peer(peer, address, error=f"cannot connect ({type(exc).__name__})")
            return
        logger.info("connected to %s (found by %s)", peer, via)
        self.events.publish({"type": "peer.up", "peer": peer, "via": via})
        self.announcer.poke()

    async def _bootstrap(self) -> None:
        """Keep a connection to every bootstrap peer from the config (dialled at start, then every minute)."""
        while True:
            for address in self.settings.bootstrap:
                try:
                    info = peer_info(address)
                except ValueError as exc:
                    logger.warning("bootstrap peer skipped: %s", exc)
                    continue
                if info.peer_id not in self.host.get_network().connections:
                    await self._dial(info, "bootstrap")
            await trio.sleep(60)

    # --- jobs -----------------------------------------------------------------------------------------------

    async def _run_lane(self, lane: str) -> None:
        """Run the queued jobs of one lane, oldest first, one at a time."""
        while True:
            for job in self.journal.queued():
                if LANES.get(job.kind) == lane and job.id not in self._cancelled:
                    await self._run_job(job.id, job.kind, job.params)
            self._wakes[lane] = trio.Event()
            with trio.move_on_after(1.0):
                await self._wakes[lane].wait()

    async def _run_job(self, job_id: str, kind: str, params: dict[str, Any]) -> None:
        try:
            with trio.CancelScope() as scope:
                self._running[job_id] = scope
                if kind == "sync":
                    await self._sync_job(job_id, params)
                else:
                    await self._local_job(job_id, kind, params)
        finally:
            self._running.pop(job_id, None)
            self._ended.pop(job_id, trio.Event()).set()

    def _interrupted(self, job_id: str, kind: str) -> None:
        """A running job stopped before its end: cancelled by a client, or back in the queue (the node stops)."""
        if self.journal.get(job_id).state != "running":
            return
        if job_id in self._cancelled:
            self.journal.set_state(job_id, "cancelled")
            self.events.publish({"type": "job", "id": job_id, "state": "cancelled", "kind": kind})
        else:
            self.journal.set_state(job_id, "queued")

    def _failed(self, job_id: str, kind: str, exc: Exception) -> str:
        message = failures.describe(exc, log="the node's log").message
        self.journal.set_state(job_id, "failed", error=message)
        self.events.publish({"type": "job", "id": job_id, "state": "failed", "kind": kind, "error": message})
        return message

    async def _local_job(self, job_id: str, kind: str, params: dict[str, Any]) -> None:
        """Proving or training: blocking work in a worker thread (the heavy part in child processes), told to
        stop at its next batch or checkpoint when the job is cancelled or the node stops."""
        self.journal.set_state(job_id, "running")
        self.events.publish({"type": "job", "id": job_id, "state": "running", "kind": kind, "params": params})
        stop = threading.Event()
        token = trio.lowlevel.current_trio_token()

        def progress(update: dict[str, Any]) -> None:  # from the worker thread
            def publish() -> None:
                self.journal.set_progress(job_id, update)
                self.events.publish({"type": f"{kind}.progress", "id": job_id, **update})

            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(publish)

        work = self._prove_work if kind == "prove" else self._train_work
        summary: dict[str, Any] | None = None
        interrupted = True
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_set_on_cancel, stop)
                summary = await trio.to_thread.run_sync(work, params, stop, progress)
                interrupted = stop.is_set()  # read before cancelling the watcher (which sets it)
                nursery.cancel_scope.cancel()
        except Exception as exc:
            self._failed(job_id, kind, exc)
            return
        finally:
            stopped = summary is None or interrupted
            if stopped:
                self._interrupted(job_id, kind)
        if stopped:
            return
        self.journal.set_progress(job_id, summary)
        self.journal.set_state(job_id, "done")
        self.events.publish({"type": "job", "id": job_id, "state": "done", "kind": kind, **summary})

    def _prove_work(
        self, params: dict[str, Any], stop: threading.Event, progress: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        from client.contribution import prove_for_binding, prove_pending

        with self.vault.open_shard(params["datanet"]) as shard:
            bound = shard.binding() is not None  # a bound shard proves for its on-chain id, whatever was asked
            prove_for_binding(shard, self.identity, self.data_dir)
            done = prove_pending(
                shard,
                self.identity,
                self.data_dir,
                limit=None,
                datanet_id=None if bound else params.get("datanet_id"),
                workers=int(params.get("workers", 1)),
                on_batch=lambda batch, n, total: progress({"batches_done": n, "batches": total}),
                stop=stop,
            )
            pending = len(shard.pending())
        return {"batches": len(done), "records": sum(b.count for b in done), "pending": pending}

    def _train_work(
        self, params: dict[str, Any], stop: threading.Event, progress: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        from client.training.base_models import DEFAULT_FOR_TASK
        from client.training.job import make_request, run
        from client.training.settings import Cancelled, TrainConfig

        if self.config is None:
            raise ClientError("This node was started without a configuration; it cannot train.")
        with self.vault.open_shard(params["datanet"]) as shard:
            base = params.get("base") or DEFAULT_FOR_TASK.get(shard.info.task)
            if base is None:
                raise ClientError(f"No base model serves the {shard.info.task!r} task yet.")
            settings = {
                k: params[k]
                for k in ("epochs", "batch_size", "learning_rate", "seed", "threads", "dp_epsilon")
                if k in params
            }
            request = make_request(self.config, shard, TrainConfig(base=base, **settings), _path(params.get("eval")))
        try:
            result = run(
                request,
                lambda event: progress({k: event[k] for k in ("step", "total_steps", "loss") if k in event}),
                stop=stop,
            )
        except Cancelled:
            return {}
        return {"adapter_id": result.adapter_id, "reused": result.reused, "training_job": result.job_id}

    async def _sync_job(self, job_id: str, params: dict[str, Any]) -> None:
        self.journal.set_state(job_id, "running")
        self.events.publish({"type": "job", "id": job_id, "state": "running", "kind": "sync", "params": params})
        name, address = params["datanet"], params["peer"]
        peer = str(peer_info(address).peer_id)
        self._note_peer(peer, address)
        done = False
        try:
            try:
                result = await self.service.sync_with(address, name)
            except trio.TooSlowError as exc:
                raise P2PError(f"Peer {peer} did not answer in time.") from exc
            done = True
        except Exception as exc:  # a failed job is reported in the journal, whatever failed
            message = self._failed(job_id, "sync", exc)
            self._note_peer(peer, address, error=message)
            logger.warning("sync job %s failed: %s", job_id, message)
            return
        finally:
            if not done:
                self._interrupted(job_id, "sync")
        self._note_peer(peer, address, sync_done=True)
        self._admit(result)
        summary = {"received": result.received, "sent": result.sent, "seconds": round(result.seconds, 3)}
        self.journal.set_progress(job_id, summary)
        self.journal.set_state(job_id, "done")
        if result.received:
            self.events.publish({"type": "records.received", "datanet": name, "peer": peer, "count": result.received})
        self.events.publish({"type": "job", "id": job_id, "state": "done", "kind": "sync", **summary})

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
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with self.host.run(listen_addrs=self.listen), trio.open_nursery() as nursery:
                await nursery.start(control.serve, control.socket_path(self.data_dir), self.methods(), self.events)
                for lane in self._wakes:
                    nursery.start_soon(self._run_lane, lane)
                nursery.start_soon(self._bootstrap)
                if self.settings.mdns:
                    self._listen_for_mdns(nursery)
                nursery.start_soon(self._discover)
                nursery.start_soon(self.announcer.run)
                nursery.start_soon(self._stop_on_request, nursery.cancel_scope)
                if ready is not None:
                    ready(self)
                async for signum in signals:
                    logger.info("node stopping (%s)", signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    break
            await self.host.close()
        self.journal.close()

    async def _stop_on_request(self, scope: trio.CancelScope) -> None:
        await self._stop.wait()
        logger.info("node stopping (asked over the control API)")
        await trio.sleep(0.2)  # the `stop` answer leaves first (a local socket: microseconds)
        scope.cancel()


def _offer(send: trio.MemorySendChannel[PeerInfo], info: PeerInfo) -> None:
    # A burst of discoveries may fill the queue: such a peer is announced again soon.
    with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
        send.send_nowait(info)


async def _set_on_cancel(stop: threading.Event) -> None:
    try:
        await trio.sleep_forever()
    finally:
        stop.set()


def _path(value: Any) -> Path | None:
    return None if value is None else Path(str(value))
