"""Federation in the node: the coordinator's rounds (client/federation/coordinator.py), a member's part in them
and each round's training (client/federation/member.py), as three kinds of node jobs in lanes of their own
(client/node/jobs.py): `coordinate` (lane `coordinator`), `participate` (lane `member`) and `fit_round` (lane
`heavy`, beside training and proving); the join protocol's handler; the `federation.*` control API methods.
Nothing here holds the node loop: the work runs in the jobs' worker threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client.config import Config
from client.errors import ClientError
from client.federation import join
from client.federation.coordinator import MAX_MEMBERS, Coordinator
from client.federation.errors import FederationError
from client.federation.member import Member
from client.identity import Identity
from client.p2p.admission import ChainMembership
from client.p2p.host import JOIN_PROTOCOL, IHost, peer_info
from storage.errors import ShardNotFound
from storage.vault import Vault

Progress = Callable[[dict[str, Any]], None]


class Federation:
    def __init__(
        self,
        *,
        vault: Vault,
        identity: Identity,
        config: Config,
        host: IHost,
        chain_member: ChainMembership | None,
        queue: Callable[[str, dict[str, Any], bool], Any],
    ) -> None:
        self.vault = vault
        self.queue = queue  # Jobs.queue
        self.coordinator = Coordinator(vault=vault, config=config, chain_member=chain_member)
        self.member = Member(
            vault=vault, identity=identity, config=config, host=host, chain_member=chain_member, queue=queue
        )
        host.set_stream_handler(JOIN_PROTOCOL, self._on_join)

    @property
    def works(self) -> dict[str, Callable[[dict[str, Any], threading.Event, Progress], dict[str, Any] | None]]:
        return {
            "coordinate": self.coordinator.serve,
            "participate": self.member.participate,
            "fit_round": self.member.fit,
        }

    async def _on_join(self, stream: Any) -> None:
        await join.answer(stream, self.coordinator.decide)

    def status(self) -> dict[str, Any]:
        return {
            "serving": [
                {
                    "federation": s.federation,
                    "datanet": s.datanet,
                    "members": sorted(s.members.values()),
                    "expected": s.expected,
                    "rounds": s.rounds,
                    "accepting": s.accepting,
                }
                for s in list(self.coordinator.serving.values())
            ],
            "joined": [
                {"federation": j.federation, "datanet": j.datanet, "rounds": j.rounds, "fitted": list(j.fitted)}
                for j in list(self.member.joined.values())
            ],
        }

    # --- the control API's methods (docs/control-api.md) -----------------------------------------------------

    def methods(
        self, cancel: Callable[[str], Any], jobs: Callable[[], list[Any]]
    ) -> dict[str, Callable[[dict[str, Any]], Any]]:
        """The `federation.*` methods; `cancel(job id)` and `jobs()` (the journal's recent jobs) are the node's."""

        async def serve(params: dict[str, Any]) -> Any:
            name = str(params["datanet"])
            self._check_datanet(name)
            if name in self.coordinator.serving:
                raise FederationError(f"A round of Datanet {name!r} is open already; `federation status` shows it.")
            members, rounds = int(params["members"]), int(params.get("rounds") or 2)
            if not 2 <= members <= MAX_MEMBERS:
                raise ClientError(
                    f"A federated round needs 2 to {MAX_MEMBERS} members (secure aggregation needs 2 at least)."
                )
            if str(params.get("host") or "127.0.0.1") in ("0.0.0.0", "::", ""):  # noqa: S104 - refused, not bound
                raise ClientError("--host is the address members dial (e.g. 10.0.0.5), not a wildcard.")
            if not 1 <= rounds <= 100:
                raise ClientError("A federation runs 1 to 100 rounds.")
            if params.get("eval") is not None and not Path(str(params["eval"])).is_absolute():
                raise ClientError(f"The node reads files by absolute path; {params['eval']!r} is relative.")
            job = {k: v for k, v in params.items() if k != "wait" and v is not None}
            job["rounds"] = rounds
            return await self.queue("coordinate", job, bool(params.get("wait")))

        async def take_part(params: dict[str, Any]) -> Any:
            name = str(params["datanet"])
            self._check_datanet(name)
            check_address(str(params["coordinator"]))
            if any(j.datanet == name for j in self.member.joined.values()):
                raise FederationError(f"This node takes part in a round of {name!r} already.")
            job = {k: v for k, v in params.items() if k != "wait" and v is not None}
            return await self.queue("participate", job, bool(params.get("wait")))

        async def leave(params: dict[str, Any]) -> Any:
            name = params.get("datanet")
            taking_part = [
                job
                for job in jobs()
                if job.kind == "participate"
                and job.state in ("queued", "running")
                and (name is None or job.params.get("datanet") == name)
            ]
            for job in taking_part:
                await cancel(job.id)
            return {"left": sorted(str(job.params["datanet"]) for job in taking_part)}

        async def status(params: dict[str, Any]) -> Any:
            return self.status()

        return {
            "federation.serve": serve,
            "federation.join": take_part,
            "federation.leave": leave,
            "federation.status": status,
            "federation.fit": self.member.fit_method,
        }

    def _check_datanet(self, name: str) -> None:
        try:
            self.vault.open_shard(name).close()
        except ShardNotFound:
            raise ClientError(f"No Datanet named {name!r} in this vault; `datanet list` shows them.") from None


def check_address(address: str) -> None:
    try:
        peer_info(address)
    except ValueError as exc:
        raise ClientError(str(exc)) from None
