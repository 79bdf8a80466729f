"""One chain session (the embedded devnet in the data directory, or the configured RPC endpoint) and everything
that goes through it, as plain calls: status, fund, deploy, reset, the on-chain Datanets, create, join, leave,
allow, submit and registering an adapter.

The node holds one `ChainService` for its life: the session opens at the first call (the devnet's file lock is
then the node's), calls run one at a time (local nonces), and a session that lost its endpoint is opened again at
the next call. web3 is imported only when a session opens.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from client.app import contribution
from client.app import records as records_app
from client.chain.errors import ChainError, ChainUnreachable
from client.chain.types import POLICIES
from client.config import Config
from client.datanet import schema_hash, task_of
from client.errors import ClientError
from client.identity import Identity
from storage.vault import Vault

if TYPE_CHECKING:
    from client.chain.session import ChainSession
    from client.chain.types import ChainStatus, DatanetInfo

ETHER = 10**18
POLICY_DEFAULT = {True: "allow-list", False: "open"}  # by `private`


def datanet_json(d: DatanetInfo) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "owner": d.owner,
        "visibility": d.visibility,
        "policy": d.policy,
        "task": task_of(d.schema_hash),
        "join_stake": d.join_stake,
        "batch_stake": d.batch_stake,
        "members": d.member_count,
    }


def status_json(status: ChainStatus, kind: str) -> dict[str, Any]:
    d = status.deployment
    return {
        "chain": kind,
        "rpc": status.rpc,
        "chain_id": status.chain_id,
        "block": status.block,
        "account": status.account,
        "balance_wei": status.balance,
        "contracts": None
        if d is None
        else {k: v for k, v in dataclasses.asdict(d).items() if k not in ("chain_id", "block")},
    }


class ChainService:
    def __init__(self, config: Config, vault: Vault, identity: Identity) -> None:
        self.config = config
        self.vault = vault
        self.identity = identity
        self._session: ChainSession | None = None
        self._lock = threading.RLock()  # one chain call at a time: the session's nonces are local

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    @contextmanager
    def session(self) -> Iterator[ChainSession]:
        """The open session (opened now if need be), held for the caller alone; a lost endpoint closes it."""
        with self._lock:
            if self._session is None:
                from client.chain.session import KEY_NAME, open_chain

                storage_key = self.vault.key_for(KEY_NAME)
                self._session = open_chain(self.config, self.identity.evm_private_key, storage_key)
            try:
                yield self._session
            except ChainUnreachable:
                self.close()
                raise

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    # --- the chain itself -------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self.session() as session:
            return status_json(session.client.status(), session.kind)

    def fund(self, ether: int) -> dict[str, Any]:
        if self.config.rpc_url is not None:
            raise ClientError("Only the embedded devnet has a faucet; fund your account on that chain yourself.")
        if not 1 <= ether <= 10**6:
            raise ClientError(f"The faucet sends 1 to 1,000,000 ether at a time, not {ether}.")
        from client.chain.session import faucet_transfer

        with self.session() as session:
            assert session.devnet is not None
            faucet_transfer(session.devnet, session.client.deployment, session.client.address, ether * ETHER)
            return {"account": session.client.address, "balance_wei": session.client.status().balance}

    def deploy(self, *, devnet_governance: bool = False) -> dict[str, Any]:
        from client.chain.session import deploy_to_rpc

        with self._lock:
            self.close()  # the next session finds the new deployment
            deployment = deploy_to_rpc(self.config, self.identity.evm_private_key, devnet_governance=devnet_governance)
        return dataclasses.asdict(deployment)

    def reset(self) -> dict[str, Any]:
        """Throw the embedded devnet's state away; shards bound to its Datanets are bound to nothing now."""
        if self.config.rpc_url is not None:
            raise ClientError("Only the embedded devnet can be reset; a real chain keeps its history.")
        from client.chain.devnet import DEVNET_CHAIN_ID
        from client.chain.session import reset_devnet

        with self._lock:
            self.close()
            reset_devnet(self.config)
            unbound = []
            for info in self.vault.list_shards():
                with self.vault.open_shard(info.name) as shard:
                    binding = shard.binding()
                    if binding is not None and binding.chain_id == DEVNET_CHAIN_ID and shard.unbind():
                        unbound.append(info.name)
        return {"reset": True, "unbound": unbound}

    # --- Datanets on chain ------------------------------------------------------------------------------------

    def _find(self, session: ChainSession, name: str) -> DatanetInfo:
        found = session.client.find_datanet(name)
        if found is None:
            raise ClientError(
                f"There is no Datanet named {name!r} on this chain; register yours with "
                f"`datanet create {name} --on-chain`."
            )
        return found

    def datanets(self) -> list[dict[str, Any]]:
        with self.session() as session:
            me = session.client.address
            return [
                {**datanet_json(d), "member": session.client.is_member(d.id, me)} for d in session.client.datanets()
            ]

    def _local_names(self) -> set[str]:
        return {info.name for info in self.vault.list_shards()}

    def create(
        self,
        name: str,
        task: str,
        *,
        on_chain: bool = False,
        private: bool = False,
        policy: str | None = None,
        join_stake: int = 0,
        batch_stake: int = 0,
    ) -> dict[str, Any]:
        """Create the local shard (unless it exists and is being registered now) and, with `on_chain`, register
        the Datanet on chain and bind the shard to it. A failure on chain leaves the local shard, and says so."""
        if not on_chain and (private or policy or join_stake or batch_stake):
            raise ClientError(
                "--private, --policy, --join-stake, --batch-stake describe the on-chain Datanet; add --on-chain."
            )
        if policy is not None and policy not in POLICIES:
            raise ClientError(f"{policy!r} is not a join policy ({', '.join(POLICIES)}).")
        if join_stake < 0 or batch_stake < 0:
            raise ClientError("A stake is a number of wei, 0 or more.")
        if on_chain and name in self._local_names():
            with self.vault.open_shard(name) as shard:
                local = {"datanet": shard.info.name, "task": shard.info.task, "uuid": shard.info.uuid}
        else:
            local = records_app.create(self.vault, name, task)
        chain: dict[str, Any] | None = None
        if on_chain:
            try:
                chain = self._register(name, str(local["task"]), private, policy, join_stake, batch_stake)
            except ClientError as exc:
                raise ClientError(
                    f"Datanet {name!r} is in your vault but not on chain: {exc} Once that is fixed, register "
                    f"it with `datanet create {name} --on-chain`."
                ) from exc
        return {**local, "chain": chain}

    def _register(
        self, name: str, task: str, private: bool, policy: str | None, join_stake: int, batch_stake: int
    ) -> dict[str, Any]:
        with self.session() as session:
            info = session.client.create_datanet(
                name,
                schema_hash(task),
                "private" if private else "public",
                policy or POLICY_DEFAULT[private],  # type: ignore[arg-type]
                join_stake=join_stake,
                batch_stake=batch_stake,
            )
            reproved = self._bind(session, name, info)
        return {**datanet_json(info), "batches_proved_again": reproved}

    def _bind(self, session: ChainSession, name: str, info: DatanetInfo) -> int:
        """Bind the local shard `name` to the on-chain Datanet `info` and prove its earlier batches again for it
        (once); how many were proved again."""
        from client.contribution import prove_for_binding
        from storage.shard import ChainBinding

        binding = ChainBinding(session.client.status().chain_id, session.client.deployment.registry.lower(), info.id)
        with self.vault.open_shard(name) as shard:
            shard.bind(binding)
            return prove_for_binding(shard, self.identity, self.data_dir)

    def join(self, name: str, *, pay_stake: bool = False) -> dict[str, Any]:
        with self.session() as session:
            info = self._find(session, name)
            member = session.client.is_member(info.id, session.client.address)
            local = name in self._local_names()
            local_binding = None
            if local:
                with self.vault.open_shard(name) as shard:
                    local_binding, local_task = shard.binding(), shard.info.task
            if member and local_binding is not None and local_binding.datanet_id == info.id:
                raise ClientError(f"You are already a member of Datanet {name!r}.")
            if not member and info.policy == "stake" and info.join_stake > 0 and not pay_stake:
                raise ClientError(
                    f"Joining {name!r} needs a stake of {info.join_stake} wei (refunded when you leave); re-run "
                    "with --pay-stake to deposit it."
                )
            task = task_of(info.schema_hash)
            if local:  # before any stake is paid: the local shard must fit and be bound to nothing else
                if local_binding is not None and local_binding.datanet_id != info.id:
                    raise ClientError(
                        f"Your Datanet {name!r} is bound to another on-chain Datanet (id {local_binding.datanet_id}); "
                        "nothing was joined."
                    )
                if task != local_task:
                    raise ClientError(
                        f"Your Datanet {name!r} serves the {local_task} task, but the one on chain serves "
                        f"{task or 'a task this version does not know'}; nothing was joined."
                    )
            result = None if member else session.client.join(info.id)  # a member already: binding is what is left
            created = False
            if task is not None and not local:
                records_app.create(self.vault, name, task)
                created = local = True
            reproved = self._bind(session, name, info) if local else 0
            enrolled = self._enrol_if_open(session, info.id)
        return {
            **datanet_json(info),
            "tx": None if result is None else result.tx_hash,
            "was_member": member,
            "local_shard_created": created,
            "bound": local,
            "batches_proved_again": reproved,
            "enrolled": enrolled,
        }

    def _enrol_if_open(self, session: ChainSession, datanet_id: int) -> bool:
        """Where the Datanet's owner opened enrolment, joining also puts this identity in its contributor tree
        (so it can vote in the Datanet's anonymous polls before contributing)."""
        if not session.client.deployment.has_governance:
            return False
        from client.chain.governance import GovernanceClient

        polls = GovernanceClient(session.client)
        if not polls.enrolment_open(datanet_id) or polls.commitment_of(datanet_id) != 0:
            return False
        polls.enrol(datanet_id, self.identity.public().identity_commitment)
        return True

    def leave(self, name: str) -> dict[str, Any]:
        with self.session() as session:
            info = self._find(session, name)
            result = session.client.leave(info.id)
        refund = sum(int(e["refund"]) for e in result.events if e["event"] == "MemberLeft")
        return {"datanet": name, "tx": result.tx_hash, "refund_wei": refund}

    def allow(self, name: str, account: str, *, remove: bool = False) -> dict[str, Any]:
        if not (account.startswith("0x") and len(account) == 42):
            raise ClientError(f"{account!r} is not an account address (0x followed by 40 hex digits).")
        with self.session() as session:
            info = self._find(session, name)
            result = session.client.set_allowed(info.id, account, not remove)
        return {"datanet": name, "account": account, "allowed": not remove, "tx": result.tx_hash}

    # --- contributions and adapters ---------------------------------------------------------------------------

    def submit(
        self,
        name: str,
        *,
        stake: int | None = None,
        workers: int = 1,
        limit: int | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
        stop: threading.Event | None = None,
    ) -> dict[str, Any]:
        """Prove the pending records (in child processes, outside the chain lock) and submit every batch the chain
        does not have yet; a batch is marked submitted only once its receipt is in."""
        from client.submission import submit_pending

        with self.session() as session:  # what would refuse the submission, before anything is proved
            info = self._find(session, name)
            me = session.client.address
            if not session.client.is_member(info.id, me):
                raise ChainError(
                    f"Your account {me} is not a member of Datanet {name!r} on chain; join it with `datanet join "
                    f"{name}` (a private Datanet's owner must allow-list you first)."
                )
        with self.vault.open_shard(name) as shard:
            binding = shard.binding()
        if binding is None or binding.datanet_id != info.id:  # proving now would prove for an id the chain lacks
            raise ChainError(
                f"Datanet {name!r} here is not bound to Datanet {info.id} on this chain; bind it with `datanet join "
                f"{name}` (or `datanet create {name} --on-chain` as its owner)."
            )
        if progress is not None:
            progress({"phase": "proving"})
        proved = contribution.prove(
            self.vault, self.identity, self.data_dir, name, limit=limit, workers=workers, progress=progress, stop=stop
        )
        if stop is not None and stop.is_set():
            return {"datanet": name, "submitted": [], "stopped": True}

        def said(line: str) -> None:
            if progress is not None:
                progress({"phase": "submitting", "step": line})

        with self.vault.open_shard(name) as shard, self.session() as session:
            info = self._find(session, name)
            report = submit_pending(
                shard,
                self.identity,
                self.data_dir,
                session.client,
                session.chain_key,
                info,
                stake=stake,
                limit=0,  # proved above, outside the chain lock (and in child processes)
                workers=workers,
                on_progress=said,
            )
        return {
            "datanet": name,
            "datanet_id": info.id,
            "proved": len(proved["batches"]) + report.proved,
            "submitted": [
                {"root": f"{s.root:064x}", "count": s.count, "tx": s.tx_hash, "gas": s.gas_used}
                for s in report.submitted
            ],
            "already_submitted": report.already,
            "seconds": round(report.seconds, 3),
        }

    def check_adapter(self, adapter_id: str, manifest: dict[str, Any]) -> dict[str, Any]:
        """That an adapter (by its content id) is registered on this chain for the base model its manifest names
        and for the Datanet this vault's shard of that name is bound to; its registration. ClientError (one
        sentence) otherwise: a shared adapter is stored, and shared, only so."""
        name = str(manifest.get("datanet", {}).get("name", ""))
        base = str(manifest.get("base_model", {}).get("weights_sha256", ""))
        with self.vault.open_shard(name) as shard:
            binding = shard.binding()
        if binding is None:
            raise ClientError(
                f"Datanet {name!r} is not bound to an on-chain Datanet here, so a shared adapter of it cannot be "
                f"checked; join it on chain first (`datanet join {name}`)."
            )
        with self.session() as session:
            found = session.client.adapter(bytes.fromhex(adapter_id))
        if found is None:
            raise ClientError(
                f"Adapter {adapter_id[:12]} is not registered on chain; its owner registers it first "
                "(`datanet adapters register`)."
            )
        if found.datanet_id != binding.datanet_id:
            raise ClientError(
                f"Adapter {adapter_id[:12]} is registered on chain for another Datanet than {name!r}; it was not kept."
            )
        if found.base_model.hex() != base:
            raise ClientError(
                f"Adapter {adapter_id[:12]} is registered on chain for another base model than its manifest names; "
                "it was not kept."
            )
        return {"owner": found.owner, "datanet_id": found.datanet_id, "registered_at": found.registered_at}

    def register_adapter(self, adapter_id: str) -> dict[str, Any]:
        """Record an adapter on chain: its content hash, base model weights, Datanet and batches (each must be on
        chain already)."""
        from client.training import adapters

        found = adapters.find(self.data_dir, adapter_id, adapters.manifest_key(self.vault))
        adapters.verify(found)
        manifest = found.manifest
        name = manifest["datanet"]["name"]
        roots = [int(root, 16) for root in manifest["trained_on"]["batch_roots"]]
        with self.session() as session:
            info = self._find(session, name)
            missing = [root for root in roots if session.client.batch(root) is None]
            if missing:
                raise ClientError(
                    f"{len(missing)} of the {len(roots)} batches this adapter was trained on are not on chain yet; "
                    f"run `datanet submit {name}` first."
                )
            result = session.client.register_adapter(
                bytes.fromhex(found.adapter_id),
                bytes.fromhex(manifest["base_model"]["weights_sha256"]),
                info.id,
                roots,
            )
        return {
            "adapter": found.adapter_id,
            "datanet": name,
            "datanet_id": info.id,
            "batches": len(roots),
            "tx": result.tx_hash,
        }
