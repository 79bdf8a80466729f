"""A member's part in federated rounds (the node's `participate` and `fit_round` jobs): joining a coordinator's
round (a fresh P-256 key registered through the join, the coordinator's CA, a guarded SuperNode that runs only this
client's app), and each round's training on this member's shard, asked for by its ClientApp (`federation.fit`):
the records go to the training child over its pipe, as for `train`, and only the reply's tensors come back."""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from client.config import Config
from client.federation import fab, flower, guard, join, tls
from client.federation.coordinator import FOLDER
from client.federation.errors import CodeRefused, FederationError, FlowerFailed, NotAdmitted
from client.identity import Identity
from client.p2p import sync
from client.p2p.admission import ChainMembership
from client.p2p.host import IHost, peer_info
from client.training import adapters
from storage.vault import Vault

logger = logging.getLogger(__name__)

LINGER = 60.0  # seconds a member's SuperNode stays after its last round's training (the unmasking needs it)
IDLE = 1800.0  # seconds without a round after this member's last one: the coordinator has nothing more for it
FIRST_ROUND_TIMEOUT = 3600.0  # seconds a member waits for its first round
Progress = Callable[[dict[str, Any]], None]


@dataclass
class Joined:
    """A member's part in a federation (its job's thread, the fit handler and the fit jobs share it)."""

    federation: str
    datanet: str
    rounds: int
    folder: Path
    dp_epsilon: float | None
    fitted: list[int] = field(default_factory=list)
    last_fit: float = 0.0


class Member:
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
        self.identity = identity
        self.config = config
        self.data_dir = config.data_dir
        self.host = host
        self.chain_member = chain_member
        self.queue = queue  # Jobs.queue
        self.joined: dict[str, Joined] = {}  # federation id -> this member's part

    def participate(self, params: dict[str, Any], stop: threading.Event, progress: Progress) -> dict[str, Any] | None:
        name, address = str(params["datanet"]), str(params["coordinator"])
        with self.vault.open_shard(name) as shard:
            credential = (
                sync.credential_for(shard, self.identity.evm_private_key, str(self.host.get_id()))
                if self.chain_member is not None
                else None
            )
        folder = self.data_dir / FOLDER / f"member-{secrets.token_hex(6)}"
        folder.mkdir(mode=0o700, parents=True)
        try:
            public_key = tls.make_node_key(folder / "node.key")
            request = join.JoinRequest(name, public_key, credential)
            admission = trio.from_thread.run(self._ask, address, request)
            own = fab.sha256()
            if admission.fab_sha256 != own:
                raise CodeRefused(
                    "The coordinator runs another version of the federation's app than this client; nothing of it "
                    "ran here (update both to the same version)."
                )
            (folder / "ca.crt").write_text(admission.ca)
            joined = Joined(admission.federation, name, admission.rounds, folder, _float(params.get("dp_epsilon")))
            self.joined[joined.federation] = joined
            progress({"stage": "joined", "federation": joined.federation, "rounds": joined.rounds})
            process = flower.start_supernode(
                folder,
                admission.superlink,
                folder / "ca.crt",
                folder / "node.key",
                data_dir=self.data_dir,
                federation=joined.federation,
                fab_sha256=own,
            )
            try:
                return self._take_part(joined, process, folder, stop, progress)
            finally:
                flower.stop(process)
                self.joined.pop(joined.federation, None)
        finally:
            for item in folder.glob("round-*.safetensors"):  # the rounds' weights are not kept
                item.unlink(missing_ok=True)
            (folder / "node.key").unlink(missing_ok=True)  # this federation's key: no use after it
            shutil.rmtree(folder / "flwr-node", ignore_errors=True)

    async def _ask(self, address: str, request: join.JoinRequest) -> join.Admission:
        info = peer_info(address)
        try:
            with trio.fail_after(join.DEADLINE):
                await self.host.connect(info)
        except trio.TooSlowError:
            raise NotAdmitted(f"The coordinator at {address} did not answer in time.") from None
        except Exception as exc:  # py-libp2p's dial errors share no base class
            if type(exc).__module__.startswith("libp2p"):
                raise NotAdmitted(f"Cannot reach the coordinator at {address} ({type(exc).__name__}).") from exc
            raise
        return await join.ask(self.host, info.peer_id, request)

    def _take_part(
        self, joined: Joined, process: Any, folder: Path, stop: threading.Event, progress: Progress
    ) -> dict[str, Any] | None:
        started = time.monotonic()
        reported = 0
        while True:
            if stop.is_set():
                return None
            code = process.poll()
            if code is not None:
                logger.warning("SuperNode exited %s: %s", code, flower.log_tail(folder / "supernode.log"))
                if code == guard.REFUSED_EXIT:
                    raise CodeRefused(
                        "The coordinator sent Flower app code that is not this client's own; it was refused before "
                        "any of it ran, and this node left the round."
                    )
                if "Failed to activate SuperNode" in flower.log_tail(folder / "supernode.log", 40):
                    raise NotAdmitted("The coordinator's SuperLink refused this node's key; join the round again.")
                raise FlowerFailed(f"This node's Flower SuperNode stopped (exit code {code}); join the round again.")
            if len(joined.fitted) != reported:
                reported = len(joined.fitted)
                progress({"stage": "round", "round": joined.fitted[-1], "rounds": joined.rounds})
            last = max(joined.fitted, default=0)
            quiet = time.monotonic() - joined.last_fit
            if joined.fitted and ((last >= joined.rounds and quiet > LINGER) or quiet > IDLE):
                return {"federation": joined.federation, "datanet": joined.datanet, "rounds": sorted(joined.fitted)}
            if not joined.fitted and time.monotonic() - started > FIRST_ROUND_TIMEOUT:
                raise FederationError("The coordinator started no round within an hour; this node left.")
            time.sleep(0.5)

    # --- the control API's methods (docs/control-api.md) -----------------------------------------------------

    async def fit_method(self, params: dict[str, Any]) -> Any:
        """`federation.fit`, from this member's ClientApp: queue the round's training (heavy lane)."""
        federation = str(params["federation"])
        joined = self.joined.get(federation)
        if joined is None:
            raise FederationError(f"This node has not joined federation {federation}.")
        round_no = int(params["round"])
        if not 1 <= round_no <= joined.rounds:
            raise FederationError(f"Federation {federation} has {joined.rounds} rounds, not {round_no}.")
        if round_no in joined.fitted:  # each round's training once: a member's DP budget has a bound
            raise FederationError(f"This member trained round {round_no} of federation {federation} already.")
        _check_fit(params)
        job: dict[str, Any] = {
            "datanet": joined.datanet,
            "federation": federation,
            "round": round_no,
            "weights": str(params["weights"]),
            "update": str(joined.folder / f"round-{round_no}.update.safetensors"),
            **{k: params[k] for k in ("names", "labels", "a_sha256", "base", "seed", "epochs") if k in params},
            "learning_rate": params.get("learning_rate"),
            "batch_size": params.get("batch_size"),
            # the member's own DP setting wins over the coordinator's
            "dp_epsilon": joined.dp_epsilon if joined.dp_epsilon is not None else params.get("dp_epsilon"),
        }
        return await self.queue("fit_round", job, False)

    def fit(self, params: dict[str, Any], stop: threading.Event, progress: Progress) -> dict[str, Any] | None:
        from client.training.job import RoundFit, make_request, run
        from client.training.settings import TrainConfig

        joined = self.joined.get(str(params["federation"]))
        if joined is None:
            raise FederationError("This node left the federation before the round's training started.")
        if Path(os.path.realpath(params["weights"])).parent != Path(os.path.realpath(joined.folder)):
            raise FederationError("A round's weights are read from the federation's own folder only.")
        settings = {
            k: params[k]
            for k in ("seed", "epochs", "learning_rate", "batch_size", "dp_epsilon")
            if params.get(k) is not None
        }
        train_config = TrainConfig(base=str(params["base"]), threads=1, **settings)
        round_fit = RoundFit(
            round=int(params["round"]),
            labels=tuple(params["labels"]),
            names=tuple(params["names"]),
            a_sha256=str(params["a_sha256"]),
            initial=Path(params["weights"]),
            update=Path(params["update"]),
        )
        with self.vault.open_shard(joined.datanet) as shard:
            request = make_request(self.config, shard, train_config, None, adapters.manifest_key(self.vault))
        request = dataclasses.replace(request, round_fit=round_fit)
        result = run(request, progress, stop=stop)
        joined.fitted.append(round_fit.round)
        joined.last_fit = time.monotonic()
        return {**result.manifest, "federation": joined.federation, "round": round_fit.round, "datanet": joined.datanet}


def _check_fit(params: dict[str, Any]) -> None:
    """The coordinator's settings for a round, within what a member lends its machine for."""
    bounds = {"epochs": (1, 100), "batch_size": (1, 1024), "seed": (0, 2**31)}
    for key, (low, high) in bounds.items():
        value = params.get(key)
        if value is not None and not low <= int(value) <= high:
            raise FederationError(f"The round asks for {key} {value}; this member trains with {low} to {high}.")
    rate = params.get("learning_rate")
    if rate is not None and not 0 < float(rate) <= 1:
        raise FederationError(f"The round asks for learning rate {rate}; this member trains with (0, 1].")
    labels, names = params.get("labels") or [], params.get("names") or []
    if not 2 <= len(set(labels)) == len(labels) <= 1000 or not 1 <= len(names) <= 10_000:
        raise FederationError("The round's labels or weights are not a classifier this member can train.")


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
