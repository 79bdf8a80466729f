"""The control API's method handlers (declared in api.py, served by control.py). Each one checks what it can at
once (an unknown Datanet, a malformed peer address) and then calls the application layer (client/app/): vault
work in the node's database thread, chain work in its chain thread, never on the event loop; long work (import,
prove, submit, train, sync) is queued as a job (jobs.py) and answered with the job."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import trio

from client.app import records as records_app
from client.app.chain import ChainService
from client.app.governance import GovernanceService
from client.config import TRACE_AREAS, Config
from client.errors import ClientError
from client.identity import Identity
from client.log_setup import log_path
from client.node import control, log_tail
from client.node.announce import Announcer
from client.node.api import API_VERSION
from client.node.front import ShardCounts, answer_status
from client.node.jobs import Jobs
from client.node.journal import Journal
from client.node.peers import Peers
from client.p2p.host import IHost, peer_info
from client.training import adapters
from storage.vault import Vault

T = TypeVar("T")
# The methods that change the node loop's state (jobs, dialling, the announcement validator, stopping): they run in
# the node's loop; every other one in the control API's own (control_loop.py).
ON_NODE_LOOP = frozenset(
    {
        *("peers", "sync", "prove", "submit", "train", "records.import", "cancel", "stop", "members", "poll.vote"),
        *("federation.serve", "federation.join", "federation.leave", "federation.fit", "adapters.fetch"),
    }
)
MAX_LIST = 1000  # jobs one `jobs` call lists
MAX_LOG_LINES = 10_000
MAX_RECORDS = 10_000  # records one `records.list` answer holds
LEVELS = log_tail.LEVELS


class Handlers:
    def __init__(
        self,
        *,
        host: IHost,
        vault: Vault,
        identity: Identity,
        config: Config,
        chain: ChainService,
        journal: Journal,
        jobs: Jobs,
        peers: Peers,
        announcer: Announcer,
        events: control.Events,
        started: float,
        online: bool,
        stop: trio.Event,
        addresses: Callable[[], list[str]],
    ) -> None:
        self.host = host
        self.addresses = addresses  # where peers reach the node: its listening addresses, its circuits via relays
        self.vault = vault
        self.identity = identity
        self.config = config
        self.chain = chain
        self.governance = GovernanceService(chain)
        self.journal = journal
        self.jobs = jobs
        self.peers = peers
        self.announcer = announcer
        self.events = events
        self.started = started  # time.time() when the node started
        self.online = online
        self.stop = stop  # set by `stop`; the node then stops (Node._stop_on_request)
        # one database thread and one chain thread per loop that calls (a trio limiter belongs to one loop); the
        # chain session takes its own lock too, so chain calls stay one at a time whichever loop makes them
        self._limiters: dict[tuple[trio.lowlevel.TrioToken, str], trio.CapacityLimiter] = {}
        self._counts = ShardCounts(lambda name: self.vault_call(lambda: self.vault.open_shard(name)))
        self._peer_seen_at = time.monotonic()  # when a peer was last seen connected (by `health`)

    def _limiter(self, kind: str) -> trio.CapacityLimiter:
        key = (trio.lowlevel.current_trio_token(), kind)
        if key not in self._limiters:
            self._limiters[key] = trio.CapacityLimiter(1)
        return self._limiters[key]

    def close(self) -> None:
        self._counts.close()

    async def vault_call(self, fn: Callable[[], T]) -> T:
        """Run vault work (opening shards, counting, listing) in a database thread, off the event loop."""
        return await trio.to_thread.run_sync(fn, limiter=self._limiter("vault"))

    async def chain_call(self, fn: Callable[[], T]) -> T:
        """Run chain work (web3, the embedded devnet's EVM) in the chain thread, off the event loop."""
        return await trio.to_thread.run_sync(fn, limiter=self._limiter("chain"))

    def methods(self) -> dict[str, control.Handler]:
        return {
            "status": self._status,
            "health": self._health,
            "identity": self._identity,
            "vault": self._vault,
            "datanets": self._datanets,
            "create": self._create,
            "records.count": self._records_count,
            "records.list": self._records_list,
            "records.show": self._records_show,
            "records.delete": self._records_delete,
            "records.import": self._records_import,
            "members": self._members,
            "batches": self._batches,
            "batches.received": self._batches_received,
            "chain.status": self._chain_status,
            "chain.datanets": self._chain_datanets,
            "chain.fund": self._chain_fund,
            "chain.deploy": self._chain_deploy,
            "chain.reset": self._chain_reset,
            "join": self._join,
            "leave": self._leave,
            "allow": self._allow,
            "prove": self._prove,
            "submit": self._submit,
            "train": self._train,
            "adapters.list": self._adapters_list,
            "adapters.show": self._adapters_show,
            "adapters.register": self._adapters_register,
            "gov.status": self._gov_status,
            "gov.delegate": self._gov_delegate,
            "gov.propose": self._gov_propose,
            "gov.list": self._gov_list,
            "gov.show": self._gov_show,
            "gov.vote": self._gov_vote,
            "gov.queue": self._gov_queue,
            "gov.execute": self._gov_execute,
            "poll.create": self._poll_create,
            "poll.list": self._poll_list,
            "poll.show": self._poll_show,
            "poll.enrolment": self._poll_enrolment,
            "poll.enrol": self._poll_enrol,
            "poll.vote": self._poll_vote,
            "jobs": self._jobs,
            "job": self._job,
            "cancel": self._cancel,
            "peers": self._peers,
            "sync": self._sync,
            "log.tail": self._log_tail,
            "stop": self._stop_method,
        }

    # --- the node, the identity, the vault ---------------------------------------------------------------------

    def status_snapshot(self) -> dict[str, Any]:
        """`status` with `started` (Unix seconds) in place of the uptime, and without the Datanet count (both are
        added when it is answered: front.answer_status): what the node writes to its control front before every
        event and every second, from any thread. Cheap: nothing is opened or listed."""
        jobs = self.journal.jobs()
        return {
            "api_version": API_VERSION,
            "peer_id": str(self.host.get_id()),
            "addresses": self.addresses(),
            "started": self.started,
            "peers_connected": len(self.host.get_network().connections),
            "jobs": {state: sum(1 for j in jobs if j.state == state) for state in ("queued", "running", "failed")},
            "online": self.online,
            "chain": self.config.rpc_url,
        }

    async def _status(self, params: dict[str, Any]) -> dict[str, Any]:
        """(Clients get it from the front, front.py; this answers on the node's own socket.)"""
        return answer_status(self.status_snapshot(), self.config.data_dir)

    async def _health(self, params: dict[str, Any]) -> dict[str, Any]:
        """What a monitor asks: peers (an online node), the chain, free disk, failing jobs; each problem with the
        exit code `datanet health` ends with (HEALTH_CODES)."""
        minutes = float(params.get("no_peers_minutes", 30))
        free_mb = int(params.get("disk_free_mb", 1024))
        if minutes < 0 or free_mb < 0:
            raise ClientError("health takes minutes and megabytes of 0 or more.")
        now = time.monotonic()
        problems: list[dict[str, Any]] = []
        connected = len(self.host.get_network().connections)
        if connected:
            self._peer_seen_at = now
        alone_for = now - self._peer_seen_at
        if self.online and alone_for > minutes * 60:
            problems.append(
                _problem(
                    "peers",
                    f"No peer has been connected for {alone_for / 60:.0f} minutes; check the network, "
                    "the firewall and the bootstrap peers in the config.",
                )
            )
        try:
            with trio.fail_after(HEALTH_CHAIN_TIMEOUT):
                chain = await self.chain_call(self.chain.status)
        except (ClientError, trio.TooSlowError, OSError) as exc:
            chain = None
            reason = "it did not answer in time" if isinstance(exc, trio.TooSlowError) else str(exc).rstrip(".")
            problems.append(_problem("chain", f"The chain cannot be reached ({reason})."))
        disk = shutil.disk_usage(self.config.data_dir)
        if disk.free < free_mb * 2**20:
            problems.append(
                _problem(
                    "disk",
                    f"Only {disk.free / 2**20:.0f} MB are free where the data directory is (under "
                    f"{free_mb} MB); free some space before a sync or an import stops for it.",
                )
            )
        hour_ago_ms = int(time.time() * 1000) - 3_600_000
        failing = [j for j in self.journal.jobs(limit=MAX_LIST) if j.state == "failed" and j.updated_ms > hour_ago_ms]
        if failing:
            problems.append(
                _problem(
                    "jobs",
                    f"{len(failing)} job(s) failed in the last hour, the latest ({failing[0].kind}): "
                    f"{failing[0].error}",
                )
            )
        return {
            "healthy": not problems,
            "problems": problems,
            "peers_connected": connected,
            "minutes_without_peers": round(alone_for / 60, 1) if not connected else 0.0,
            "chain_block": None if chain is None else chain["block"],
            "disk_free_mb": round(disk.free / 2**20),
            "failed_jobs_last_hour": len(failing),
            "online": self.online,
        }

    async def _identity(self, params: dict[str, Any]) -> dict[str, Any]:
        return dict(self.identity.public().as_dict())

    async def _vault(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"unlocked": True, "unlocked_with": self.vault.unlocked_with, "data_dir": str(self.config.data_dir)}

    # --- Datanets and records --------------------------------------------------------------------------------

    async def _datanets(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.vault_call(lambda: records_app.datanets(self.vault))

    async def _create(self, params: dict[str, Any]) -> dict[str, Any]:
        name, task = str(params["datanet"]), str(params.get("task") or "text")
        options = {k: params[k] for k in ("private", "policy", "join_stake", "batch_stake") if params.get(k)}
        if params.get("on_chain"):
            return await self.chain_call(lambda: self.chain.create(name, task, on_chain=True, **options))
        if options:
            raise ClientError(
                "--private, --policy, --join-stake, --batch-stake describe the on-chain Datanet; add --on-chain."
            )
        return {**await self.vault_call(lambda: records_app.create(self.vault, name, task)), "chain": None}

    async def _records_count(self, params: dict[str, Any]) -> dict[str, Any]:
        """(Clients get it from the front, front.py; this answers on the node's own socket.)"""
        return await self._counts(str(params["datanet"]))

    async def _records_list(self, params: dict[str, Any]) -> dict[str, Any]:
        if not 0 <= int(params.get("limit", 20)) <= MAX_RECORDS:
            raise ClientError(f"records.list gives 0 to {MAX_RECORDS} records at a time.")
        return await self.vault_call(
            lambda: records_app.list_records(
                self.vault,
                str(params["datanet"]),
                limit=int(params.get("limit", 20)),
                offset=int(params.get("offset", 0)),
                source=params.get("source"),
            )
        )

    async def _records_show(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.vault_call(lambda: records_app.show(self.vault, str(params["datanet"]), str(params["id"])))

    async def _records_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        name = str(params["datanet"])
        deleted = await self.vault_call(
            lambda: records_app.delete(
                self.vault,
                name,
                ids=list(params.get("ids") or ()),
                source=params.get("source"),
                before_ms=params.get("before_ms"),
            )
        )
        if deleted["deleted"]:
            self.events.publish({"type": "records.changed", "datanet": name, "count": -int(deleted["deleted"])})
        return deleted

    async def _records_import(self, params: dict[str, Any]) -> dict[str, Any]:
        """Queue importing files the node reads itself (absolute paths: the node's working directory is not the
        client's)."""
        name = str(params["datanet"])
        await self._members_of(name)  # a clear error now for an unknown Datanet
        paths = [str(p) for p in params["paths"]]
        if not paths:
            raise ClientError("Give at least one file or folder to import.")
        relative = [p for p in paths if not Path(p).is_absolute()]
        if relative:
            raise ClientError(f"The node reads files by absolute path; {relative[0]!r} is relative.")
        if params.get("format") not in (None, "jsonl", "csv", "text"):
            raise ClientError(f"{params['format']!r} is not an import format (jsonl, csv or text).")
        job = {
            "datanet": name,
            "paths": paths,
            "format": params.get("format"),
            "skip_bad": bool(params.get("skip_bad")),
        }
        return await self.jobs.queue("import", job, bool(params.get("wait")))

    async def _members_of(self, name: str) -> set[str]:
        """The members of Datanet `name`; ShardNotFound (a clear error at once) if there is none."""

        def members() -> set[str]:
            with self.vault.open_shard(name) as shard:
                return set(shard.members())

        return await self.vault_call(members)

    async def _members(self, params: dict[str, Any]) -> dict[str, Any]:
        action, peer = str(params.get("action") or "list"), params.get("peer")
        name = str(params["datanet"])
        answer = await self.vault_call(lambda: records_app.members(self.vault, name, action, peer))
        if answer["changed"]:  # the announcement validator sees the change now, not at its next vault check
            self.announcer.members.update(name, answer["members"])
        return answer

    async def _batches(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.vault_call(lambda: records_app.batches(self.vault, str(params["datanet"])))

    async def _batches_received(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.vault_call(lambda: records_app.received_batches(self.vault, str(params["datanet"])))

    # --- the chain -----------------------------------------------------------------------------------------------

    async def _chain_status(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.chain_call(self.chain.status)

    async def _chain_datanets(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return await self.chain_call(self.chain.datanets)

    async def _chain_fund(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.chain_call(lambda: self.chain.fund(int(params.get("ether", 100))))

    async def _chain_deploy(self, params: dict[str, Any]) -> dict[str, Any]:
        governance = str(params.get("governance") or "production")
        if governance not in ("production", "devnet"):
            raise ClientError(f"The Governor's periods are production or devnet, not {governance!r}.")
        return await self.chain_call(lambda: self.chain.deploy(devnet_governance=governance == "devnet"))

    async def _chain_reset(self, params: dict[str, Any]) -> dict[str, Any]:
        if any(j.kind == "submit" and j.state in ("queued", "running") for j in self.journal.jobs(limit=MAX_LIST)):
            raise ClientError("A submission is queued or running; wait for it (`datanet jobs`) before a reset.")
        return await self.chain_call(self.chain.reset)

    async def _join(self, params: dict[str, Any]) -> dict[str, Any]:
        name = str(params["datanet"])
        joined = await self.chain_call(lambda: self.chain.join(name, pay_stake=bool(params.get("pay_stake"))))
        if joined["tx"]:
            self.events.publish({"type": "chain.tx", "method": "join", "datanet": name, "tx": joined["tx"]})
        return joined

    async def _leave(self, params: dict[str, Any]) -> dict[str, Any]:
        name = str(params["datanet"])
        left = await self.chain_call(lambda: self.chain.leave(name))
        self.events.publish({"type": "chain.tx", "method": "leave", "datanet": name, "tx": left["tx"]})
        return left

    async def _allow(self, params: dict[str, Any]) -> dict[str, Any]:
        name, account = str(params["datanet"]), str(params["account"])
        allowed = await self.chain_call(lambda: self.chain.allow(name, account, remove=bool(params.get("remove"))))
        self.events.publish({"type": "chain.tx", "method": "setAllowed", "datanet": name, "tx": allowed["tx"]})
        return allowed

    # --- jobs: prove, submit, train ----------------------------------------------------------------------------

    def _workers(self, params: dict[str, Any]) -> int:
        workers = int(params.get("workers") or 1)
        if not 1 <= workers <= (os.cpu_count() or 1):
            raise ClientError(f"Proving takes 1 to {os.cpu_count() or 1} workers on this machine, not {workers}.")
        return workers

    @staticmethod
    def _limit(params: dict[str, Any]) -> dict[str, Any]:
        limit = params.get("limit")
        if limit is None:
            return {}
        if int(limit) < 1:
            raise ClientError(f"limit is a number of records of at least 1, not {limit}.")
        return {"limit": int(limit)}

    async def _prove(self, params: dict[str, Any]) -> dict[str, Any]:
        """Queue proving the pending records of `datanet` (a long job: it resumes after a restart)."""
        name = str(params["datanet"])
        await self._members_of(name)  # a clear error now for an unknown Datanet
        job: dict[str, Any] = {"datanet": name, "workers": self._workers(params), **self._limit(params)}
        if params.get("datanet_id") is not None:
            job["datanet_id"] = int(params["datanet_id"])
        return await self.jobs.queue("prove", job, bool(params.get("wait")))

    async def _submit(self, params: dict[str, Any]) -> dict[str, Any]:
        """Queue proving and submitting a Datanet's batches in the chain lane."""
        name = str(params["datanet"])
        await self._members_of(name)
        job: dict[str, Any] = {"datanet": name, "workers": self._workers(params), **self._limit(params)}
        if params.get("stake") is not None:
            if int(params["stake"]) < 0:
                raise ClientError("A stake is a number of wei, 0 or more.")
            job["stake"] = int(params["stake"])
        return await self.jobs.queue("submit", job, bool(params.get("wait")))

    async def _train(self, params: dict[str, Any]) -> dict[str, Any]:
        """Queue training a LoRA adapter on `datanet` (resumes from its checkpoint after a restart)."""
        name = str(params["datanet"])
        await self._members_of(name)  # a clear error now for an unknown Datanet
        if params.get("eval") is not None and not Path(str(params["eval"])).is_absolute():
            raise ClientError(f"The node reads files by absolute path; {params['eval']!r} is relative.")
        job = {k: v for k, v in params.items() if k != "wait"}
        return await self.jobs.queue("train", job, bool(params.get("wait")))

    # --- adapters ----------------------------------------------------------------------------------------------

    async def _adapters_list(self, params: dict[str, Any]) -> dict[str, Any]:
        found = await self.vault_call(
            lambda: adapters.list_adapters(self.config.data_dir, adapters.manifest_key(self.vault))
        )
        return {"adapters": [info.manifest for info in found]}

    async def _adapters_show(self, params: dict[str, Any]) -> dict[str, Any]:
        def shown() -> dict[str, Any]:
            info = adapters.find(self.config.data_dir, str(params["id"]), adapters.manifest_key(self.vault))
            adapters.verify(info)
            return {"adapter_id": info.adapter_id, "manifest": info.manifest}

        return await self.vault_call(shown)

    async def _adapters_register(self, params: dict[str, Any]) -> dict[str, Any]:
        registered = await self.chain_call(lambda: self.chain.register_adapter(str(params["id"])))
        self.events.publish(
            {"type": "chain.tx", "method": "registerAdapter", "datanet": registered["datanet"], "tx": registered["tx"]}
        )
        return registered

    # --- governance and polls (the chain thread; a vote, which proves, is a job in the chain lane) ---------------

    def _changed(self, kind: str, ident: int, action: str, tx: str, **more: Any) -> None:
        self.events.publish({"type": f"{kind}.changed", "id": ident, "action": action, "tx": tx, **more})
        self.events.publish(
            {"type": "chain.tx", "method": f"{kind}.{action}", "datanet": more.get("datanet"), "tx": tx}
        )

    async def _gov_status(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.chain_call(self.governance.status)

    async def _gov_delegate(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.chain_call(lambda: self.governance.delegate(params.get("to")))

    async def _gov_propose(self, params: dict[str, Any]) -> dict[str, Any]:
        made = await self.chain_call(
            lambda: self.governance.propose(
                str(params["parameter"]), int(params["value"]), str(params["description"]), params.get("datanet")
            )
        )
        self.events.publish({"type": "gov.changed", "id": made["id"], "action": "propose", "state": made["state"]})
        return made

    async def _gov_list(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return await self.chain_call(self.governance.proposals)

    async def _gov_show(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.chain_call(lambda: self.governance.proposal(int(params["id"])))

    async def _gov_vote(self, params: dict[str, Any]) -> dict[str, Any]:
        voted = await self.chain_call(
            lambda: self.governance.vote(int(params["id"]), str(params["support"]), str(params.get("reason") or ""))
        )
        self._changed("gov", int(params["id"]), "vote", voted["tx"], state=voted["proposal"]["state"])
        return voted

    async def _gov_queue(self, params: dict[str, Any]) -> dict[str, Any]:
        queued = await self.chain_call(lambda: self.governance.queue(int(params["id"])))
        self._changed("gov", int(params["id"]), "queue", queued["tx"], state=queued["proposal"]["state"])
        return queued

    async def _gov_execute(self, params: dict[str, Any]) -> dict[str, Any]:
        executed = await self.chain_call(lambda: self.governance.execute(int(params["id"])))
        self._changed("gov", int(params["id"]), "execute", executed["tx"], state=executed["proposal"]["state"])
        return executed

    async def _poll_create(self, params: dict[str, Any]) -> dict[str, Any]:
        closes_in = int(params["closes_in"])
        if not 60 <= closes_in <= 366 * 86400:
            raise ClientError(f"A poll stays open a minute to a year, not {closes_in} seconds.")
        name = str(params["datanet"])
        made = await self.chain_call(
            lambda: self.governance.poll_create(name, str(params["question"]), list(params["options"]), closes_in)
        )
        self.events.publish({"type": "poll.changed", "id": made["id"], "action": "create", "datanet": name})
        return made

    async def _poll_list(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return await self.chain_call(lambda: self.governance.polls(params.get("datanet")))

    async def _poll_show(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.chain_call(lambda: self.governance.poll(int(params["id"])))

    async def _poll_enrolment(self, params: dict[str, Any]) -> dict[str, Any]:
        name = str(params["datanet"])
        changed = await self.chain_call(lambda: self.governance.enrolment(name, bool(params["open"])))
        self.events.publish({"type": "chain.tx", "method": "setEnrolment", "datanet": name, "tx": changed["tx"]})
        return changed

    async def _poll_enrol(self, params: dict[str, Any]) -> dict[str, Any]:
        name = str(params["datanet"])
        enrolled = await self.chain_call(lambda: self.governance.enrol(name))
        self.events.publish({"type": "chain.tx", "method": "enrol", "datanet": name, "tx": enrolled["tx"]})
        return enrolled

    async def _poll_vote(self, params: dict[str, Any]) -> dict[str, Any]:
        poll_id, option = int(params["id"]), str(params["option"])
        await self.chain_call(lambda: self.governance.check_option(poll_id, option))  # a wrong one: no job at all
        private: dict[str, Any] = {"option": option}  # in memory only: the journal is on disk
        payer = params.get("payer_key_file")
        if payer is not None:
            if not Path(str(payer)).is_absolute():
                raise ClientError("--payer-key-file must be an absolute path (the node reads it).")
            private["payer_key_file"] = str(payer)
        return await self.jobs.queue("vote", {"poll": poll_id}, bool(params.get("wait")), private)

    # --- jobs, peers, sync ---------------------------------------------------------------------------------------

    async def _jobs(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        limit = int(params.get("limit", 50))
        if not 1 <= limit <= MAX_LIST:
            raise ClientError(f"jobs lists 1 to {MAX_LIST} jobs at a time, not {limit}.")
        return [j.as_dict() for j in self.journal.jobs(limit=limit)]

    async def _job(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.journal.get(str(params["id"])).as_dict()

    async def _cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        """Cancel a queued job at once, or a running one at its next safe point (see `Jobs.cancel`)."""
        return await self.jobs.cancel(str(params["id"]))

    async def _peers(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return await self.peers.report(self.host)

    async def _sync(self, params: dict[str, Any]) -> dict[str, Any]:
        """Queue a sync of `datanet` with `peer` (an address with /p2p/), or with every connected peer that is one
        of its members when no peer is given; `wait` returns once they ended. An offline node dials only the peer
        it is asked to."""
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

    # --- the log, stopping -----------------------------------------------------------------------------------

    async def _log_tail(self, params: dict[str, Any]) -> dict[str, Any]:
        lines = int(params.get("lines", 100))
        if not 1 <= lines <= MAX_LOG_LINES:
            raise ClientError(f"log.tail gives 1 to {MAX_LOG_LINES} lines, not {lines}.")
        level = str(params.get("level") or "DEBUG").upper()
        if level not in LEVELS:
            raise ClientError(f"{level!r} is not a log level ({', '.join(LEVELS)}).")
        shown = set(LEVELS[LEVELS.index(level) :]) | {"CRITICAL"}
        text = None if params.get("text") is None else str(params["text"])
        area = params.get("area")
        if area is not None and area not in TRACE_AREAS:
            raise ClientError(f"{area!r} is not a log area ({', '.join(TRACE_AREAS)}).")
        prefix = None if area is None else TRACE_AREAS[str(area)]
        path = log_path(self.config)
        found = await trio.to_thread.run_sync(lambda: log_tail.tail(path, lines, shown, text, prefix))
        return {"file": str(path), "lines": found}

    async def _stop_method(self, params: dict[str, Any]) -> dict[str, Any]:
        """Stop the node as SIGTERM does, once this answer has left (see `Node.run`)."""
        self.stop.set()
        return {"stopping": True}


# `datanet health`'s exit codes, by check (docs/hospital-node.md); 0 is healthy, 7 no node (client/failures.py).
HEALTH_CODES = {"peers": 20, "chain": 21, "disk": 22, "jobs": 23}
HEALTH_CHAIN_TIMEOUT = 10.0


def _problem(check: str, sentence: str) -> dict[str, Any]:
    return {"check": check, "exit_code": HEALTH_CODES[check], "problem": sentence}
