"""The control API's method handlers (declared in api.py, served by control.py): what the node answers to
`status`, `peers`, `datanets`, `records.count`, `jobs`, `job`, `sync`, `prove`, `train`, `cancel` and `stop`. The
ones that queue a job check its Datanet (and peer address) first, for a clear error at once; the jobs themselves
run in jobs.py. Vault work runs in the node's database thread (`vault_call`), never on the event loop."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from client.errors import ClientError
from client.node import control
from client.node.announce import Announcer
from client.node.api import API_VERSION
from client.node.jobs import Jobs
from client.node.journal import Journal
from client.node.peers import Peers
from client.p2p.host import IHost, peer_info
from storage.vault import BrokenShard, Vault

T = TypeVar("T")
MAX_LIST = 1000  # jobs one `jobs` call lists


class Handlers:
    def __init__(
        self,
        *,
        host: IHost,
        vault: Vault,
        journal: Journal,
        jobs: Jobs,
        peers: Peers,
        announcer: Announcer,
        started: float,
        stop: trio.Event,
    ) -> None:
        self.host = host
        self.vault = vault
        self.journal = journal
        self.jobs = jobs
        self.peers = peers
        self.announcer = announcer
        self.started = started  # time.time() when the node started
        self.stop = stop  # set by `stop`; the node then stops (Node._stop_on_request)
        self._db = trio.CapacityLimiter(1)  # the handlers' database thread: one vault call at a time

    async def vault_call(self, fn: Callable[[], T]) -> T:
        """Run vault work (opening shards, counting, listing) in the database thread, off the event loop."""
        return await trio.to_thread.run_sync(fn, limiter=self._db)

    def methods(self) -> dict[str, control.Handler]:
        return {
            "status": self._status,
            "peers": self._peers,
            "datanets": self._datanets,
            "records.count": self._records_count,
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
        return await self.peers.report(self.host)

    async def _datanets(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        def listed() -> list[dict[str, Any]]:
            out = []
            for item in self.vault.each_shard():
                if isinstance(item, BrokenShard):
                    continue
                with item as shard:
                    out.append({"name": shard.info.name, "records": shard.count(), "members": shard.members()})
            return out

        return await self.vault_call(listed)

    async def _records_count(self, params: dict[str, Any]) -> dict[str, Any]:
        name = str(params["datanet"])

        def counted() -> dict[str, Any]:
            with self.vault.open_shard(name) as shard:
                return {"datanet": name, "records": shard.count(), **shard.count_by_origin()}

        return await self.vault_call(counted)

    async def _members_of(self, name: str) -> set[str]:
        """The members of Datanet `name`; ShardNotFound (a clear error at once) if there is none."""

        def members() -> set[str]:
            with self.vault.open_shard(name) as shard:
                return set(shard.members())

        return await self.vault_call(members)

    async def _jobs(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        limit = int(params.get("limit", 50))
        if not 1 <= limit <= MAX_LIST:
            raise ClientError(f"jobs lists 1 to {MAX_LIST} jobs at a time, not {limit}.")
        return [j.as_dict() for j in self.journal.jobs(limit=limit)]

    async def _job(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.journal.get(str(params["id"])).as_dict()

    async def _sync(self, params: dict[str, Any]) -> dict[str, Any]:
        """Queue a sync of `datanet` with `peer` (an address with /p2p/), or with every connected peer that is one
        of its members when no peer is given; `wait` returns once they ended."""
        name = str(params["datanet"])
        members = await self._members_of(name)  # a clear error now for an unknown Datanet
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
        queued = [self.jobs.add("sync", {"datanet": name, "peer": a}) for a in addresses]
        self.jobs.poke()
        if params.get("wait"):
            for _, ended in queued:
                await ended.wait()
        results = [self.journal.get(job.id).as_dict() for job, _ in queued]
        return results[0] if params.get("peer") else {"jobs": results}

    async def _prove(self, params: dict[str, Any]) -> dict[str, Any]:
        """Queue proving the pending records of `datanet` (a long job: it resumes after a restart)."""
        name = str(params["datanet"])
        await self._members_of(name)  # a clear error now for an unknown Datanet
        workers = int(params.get("workers") or 1)
        if not 1 <= workers <= (os.cpu_count() or 1):
            raise ClientError(f"prove takes 1 to {os.cpu_count() or 1} workers on this machine, not {workers}.")
        job: dict[str, Any] = {"datanet": name, "workers": workers}
        if params.get("datanet_id") is not None:
            job["datanet_id"] = int(params["datanet_id"])
        return await self.jobs.queue("prove", job, bool(params.get("wait")))

    async def _train(self, params: dict[str, Any]) -> dict[str, Any]:
        """Queue training a LoRA adapter on `datanet` (resumes from its checkpoint after a restart)."""
        name = str(params["datanet"])
        await self._members_of(name)  # a clear error now for an unknown Datanet
        allowed = {"base", "epochs", "batch_size", "learning_rate", "seed", "threads", "dp_epsilon", "eval"}
        unknown = set(params) - allowed - {"datanet", "wait"}
        if unknown:
            raise ValueError(f"unknown training settings {sorted(unknown)}")
        job = {k: v for k, v in params.items() if k in allowed and v is not None}
        return await self.jobs.queue("train", {"datanet": name, **job}, bool(params.get("wait")))

    async def _cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        """Cancel a queued job at once, or a running one at its next safe point (see `Jobs.cancel`)."""
        return await self.jobs.cancel(str(params["id"]))

    async def _stop_method(self, params: dict[str, Any]) -> dict[str, Any]:
        """Stop the node as SIGTERM does, once this answer has left (see `Node.run`)."""
        self.stop.set()
        return {"stopping": True}
