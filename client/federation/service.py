"""Federation in the node: the coordinator's rounds, a member's part in them, and each round's training.

Three kinds of node jobs, each in its own lane (client/node/jobs.py):

- `coordinate` (lane `coordinator`): starts a SuperLink for a Datanet, admits members over
  `/datanet/federation/join/1.0.0` until enough have joined, submits the run (this client's own FAB), follows it
  round by round, and stores every round's adapter with a manifest naming the round, the participants (by peer
  id), their on-chain batches and their DP budgets. Then stops the SuperLink.
- `participate` (lane `member`): joins a coordinator's round: a fresh P-256 key registered through the
  join, the coordinator's CA, a guarded SuperNode (client/federation/guard.py) that runs only this client's app;
  ends after the last round (or on `federation.leave`, which cancels it).
- `fit_round` (lane `heavy`, beside training and proving): one round's training on this member's shard,
  asked for by the member's ClientApp over the control API (`federation.fit`); the records go to the training
  child over its pipe, as for `train`, and only the reply's tensors come back.

Nothing here holds the node loop: the work runs in the jobs' worker threads; the join handler's slow part
(registering the key with the SuperLink) in a thread too.
"""

from __future__ import annotations

import dataclasses
import json
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
from client.errors import ClientError
from client.federation import fab, flower, guard, join, tls
from client.federation.errors import CodeRefused, FederationError, FlowerFailed, NotAdmitted
from client.identity import Identity
from client.p2p import sync
from client.p2p.admission import ChainMembership
from client.p2p.host import JOIN_PROTOCOL, IHost, peer_info
from client.training import adapters
from storage.errors import ShardNotFound
from storage.vault import Vault

logger = logging.getLogger(__name__)

FOLDER = "federation"
LANES = {"coordinate": "coordinator", "participate": "member", "fit_round": "heavy"}
LINGER = 60.0  # seconds a member's SuperNode stays after its last round's training (the unmasking needs it)
IDLE = 1800.0  # seconds without a round after this member's last one: the coordinator has nothing more for it
RUN_TIMEOUT = 3600.0  # seconds a round may take, at most, before the coordinator gives up on the run
MAX_MEMBERS = 60  # secure aggregation's integers (2**26 levels each, a 2**32 modulus) hold 64 members' sums
JOIN_TIMEOUT = 3600.0  # seconds a coordinator waits for its members
FIRST_ROUND_TIMEOUT = 3600.0  # seconds a member waits for its first round
Progress = Callable[[dict[str, Any]], None]


@dataclass
class Serving:
    """A coordinator's open federation (shared by its job's thread and the join handler)."""

    federation: str
    datanet: str
    expected: int
    rounds: int
    link: flower.SuperLink
    accepting: bool = True
    members: dict[int, str] = field(default_factory=dict)  # Flower node id -> peer id
    lock: threading.Lock = field(default_factory=threading.Lock)
    full: threading.Event = field(default_factory=threading.Event)

    def admit(self, peer: str, public_key: str) -> int:
        with self.lock:
            if not self.accepting or len(self.members) >= self.expected:
                raise NotAdmitted("its round has all the members it waits for.")
            if peer in self.members.values():
                raise NotAdmitted("this node has joined that round already.")
            node_id = self.link.register(public_key, peer[-16:])
            self.members[node_id] = peer
            if len(self.members) >= self.expected:
                self.full.set()
            return node_id


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
        self.identity = identity
        self.config = config
        self.data_dir = config.data_dir
        self.host = host
        self.chain_member = chain_member
        self.queue = queue  # Jobs.queue
        self.serving: dict[str, Serving] = {}  # Datanet name -> its open federation
        self.joined: dict[str, Joined] = {}  # federation id -> this member's part
        host.set_stream_handler(JOIN_PROTOCOL, self._on_join)

    @property
    def works(self) -> dict[str, Callable[[dict[str, Any], threading.Event, Progress], dict[str, Any] | None]]:
        return {"coordinate": self.serve, "participate": self.member, "fit_round": self.fit}

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
                for s in list(self.serving.values())
            ],
            "joined": [
                {"federation": j.federation, "datanet": j.datanet, "rounds": j.rounds, "fitted": list(j.fitted)}
                for j in list(self.joined.values())
            ],
        }

    # --- the coordinator ------------------------------------------------------------------------------------

    async def _on_join(self, stream: Any) -> None:
        await join.answer(stream, self._decide)

    async def _decide(self, peer: str, request: join.JoinRequest) -> join.Admission:
        serving = self.serving.get(request.datanet)
        if serving is None or not serving.accepting:
            raise NotAdmitted("no round of that Datanet is open for members here.")
        try:
            shard = self.vault.open_shard(request.datanet)
        except ShardNotFound:
            raise NotAdmitted("no round of that Datanet is open for members here.") from None
        with shard:
            admitted = shard.is_member(peer) or (
                await sync.admitted_on_chain(peer, shard, request.credential, self.chain_member) is not None
            )
        if not admitted:
            raise NotAdmitted("this node is not a member of that Datanet there.")
        node_id = await trio.to_thread.run_sync(serving.admit, peer, request.public_key)
        logger.info("federation %s: peer %s admitted as Flower node %d", serving.federation, peer, node_id)
        return join.Admission(
            superlink=serving.link.address,
            ca=serving.link.ca.read_text(),
            fab_sha256=fab.sha256(),
            federation=serving.federation,
            rounds=serving.rounds,
        )

    def serve(self, params: dict[str, Any], stop: threading.Event, progress: Progress) -> dict[str, Any] | None:
        name = str(params["datanet"])
        members, rounds = int(params["members"]), int(params["rounds"])
        host, port = str(params.get("host") or "127.0.0.1"), int(params.get("port") or flower.free_port())
        eval_path = str(params["eval"]) if params.get("eval") else ""
        with self.vault.open_shard(name) as shard:
            info = shard.info
            labels = _labels(shard, eval_path)
        if info.task != "intent-classification":
            raise FederationError(f"Datanet {name!r} serves {info.task!r}; federated rounds train classifiers only.")
        federation = secrets.token_hex(8)
        folder = self.data_dir / FOLDER / f"serve-{federation}"
        folder.mkdir(mode=0o700, parents=True)
        flower.quiet_flower(self.data_dir / FOLDER / "flwr-cli")
        link = flower.SuperLink(folder, host, port, tls.make_server_tls(folder / "tls", host))
        serving = Serving(federation, name, members, rounds, link)
        try:
            link.wait_ready(stop.is_set)
            self.serving[name] = serving
            progress({"stage": "waiting for members", "members": 0, "expected": members, "superlink": link.address})
            deadline = time.monotonic() + float(params.get("join_timeout") or JOIN_TIMEOUT)
            seen = 0
            while not serving.full.wait(0.5):
                if stop.is_set():
                    return None
                link.check_alive()
                if time.monotonic() > deadline:
                    raise FederationError(
                        f"Only {len(serving.members)} of {members} members joined in time; start the round again."
                    )
                if len(serving.members) != seen:
                    seen = len(serving.members)
                    progress({"stage": "waiting for members", "members": seen, "expected": members})
            serving.accepting = False
            overrides = {
                "federation": federation,
                "out-dir": str(folder),
                "cache-dir": str(self.config.cache_dir),
                "base": str(params.get("base") or "minilm-l6"),
                "labels": json.dumps(labels),
                "rounds": rounds,
                "min-members": int(params.get("min_members") or members),
                "members": json.dumps({str(k): v for k, v in serving.members.items()}),
                "epochs": int(params.get("epochs") or 3),
                "learning-rate": float(params.get("learning_rate") or 0.01),
                "dp-epsilon": float(params.get("dp_epsilon") or 0.0),
                "eval": eval_path,
                "secagg-timeout": float(params.get("secagg_timeout") or fab.RUN_CONFIG["secagg-timeout"]),
            }
            run_id = link.submit(fab.build(), overrides)
            deadline = time.monotonic() + float(params.get("run_timeout") or rounds * RUN_TIMEOUT)
            reports = self._follow(link, run_id, folder, rounds, stop, progress, deadline)
            if reports is None:
                return None
            updated = [r for r in reports if r.get("update")]
            summary = self._store_rounds(updated, info.name, info.uuid, federation, eval_path, overrides)
            # a round whose members dropped out before its sum could be unmasked has no update (Flower's SecAgg+)
            summary["without_update"] = sorted({*range(1, rounds + 1)} - {int(r["round"]) for r in updated})
            return summary
        finally:
            self.serving.pop(name, None)
            link.close()
            _tidy(folder)

    def _follow(
        self,
        link: flower.SuperLink,
        run_id: int,
        folder: Path,
        rounds: int,
        stop: threading.Event,
        progress: Progress,
        deadline: float,
    ) -> list[dict[str, Any]] | None:
        """Each round's report as the ServerApp writes it; None when stopped. A run that ends otherwise than
        completed (or outlasts `deadline`) keeps the rounds it finished, if any."""
        reported: dict[int, dict[str, Any]] = {}
        while True:
            for number in range(1, rounds + 1):
                path = folder / f"round-{number}.json"
                if number not in reported and path.exists():
                    reported[number] = json.loads(path.read_text())
                    report = reported[number]
                    progress(
                        {
                            "stage": "round",
                            "round": number,
                            "rounds": rounds,
                            "participants": len(report.get("participants", [])),
                            "update": report.get("update", False),
                            "evaluation": report.get("evaluation", {}),
                        }
                    )
            status, sub_status, details = link.run_status(run_id)
            if status == "finished":
                break
            if stop.is_set():
                return None
            link.check_alive()
            if time.monotonic() > deadline:
                status, sub_status, details = "finished", "timed out", "the run outlasted its deadline"
                break
            time.sleep(0.5)
        if sub_status != "completed":
            logger.warning("federated run %d ended %s: %s", run_id, sub_status, details[:300])
        if not any(report.get("update") for report in reported.values()):
            if sub_status != "completed":
                raise FlowerFailed(
                    f"The federated run ended {sub_status} before any round's update; the federation's folder "
                    "has Flower's log."
                )
            raise FlowerFailed(
                "The federated run finished without any round's update (members dropped out before the "
                "aggregation could be unmasked); start the round again."
            )
        return [reported[n] for n in sorted(reported)]

    def _store_rounds(
        self,
        reports: list[dict[str, Any]],
        name: str,
        uuid: str,
        federation: str,
        eval_path: str,
        overrides: dict[str, Any],
    ) -> dict[str, Any]:
        key = adapters.manifest_key(self.vault)
        stored: list[dict[str, Any]] = []
        previous: str | None = None
        for report in reports:
            participants = report["participants"]
            evaluation = report.get("evaluation", {})
            manifest = {
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "task": "intent-classification",
                "labels": report["labels"],
                "base_model": report["base_model"],
                "datanet": {"name": name, "uuid": uuid},
                "trained_on": {
                    "records": sum(int(p["records"]) for p in participants),
                    "record_set_sha256": None,  # no one party knows every record
                    "batch_roots": sorted({r for p in participants for r in p["batch_roots"]}),
                },
                "evaluation": {
                    "source": f"file {Path(eval_path).name}" if eval_path else "not evaluated",
                    "records": evaluation.get("records", 0),
                    "before": {},
                    "after": {k: v for k, v in evaluation.items() if k != "records"},
                },
                "federation": {
                    "id": federation,
                    "round": report["round"],
                    "rounds": overrides["rounds"],
                    "previous_round_adapter": previous,
                    "participants": participants,
                    "failures": report.get("failures", 0),
                    "aggregation": "FedAvg under SecAgg+ (Flower): FFA-LoRA's B, the head by label",
                    "hyperparameters": {
                        k: overrides[k] for k in ("epochs", "learning-rate", "dp-epsilon", "min-members")
                    },
                },
                "dp": _dp_summary(participants),
            }
            staging = Path(report["folder"])
            info = adapters.store(staging, self.data_dir, manifest, key)
            previous = info.adapter_id
            stored.append(
                {
                    "round": report["round"],
                    "adapter_id": info.adapter_id,
                    "participants": len(participants),
                    "accuracy": evaluation.get("accuracy"),
                }
            )
        return {"federation": federation, "datanet": name, "rounds": stored, "adapter_id": previous}

    # --- a member -------------------------------------------------------------------------------------------

    def member(self, params: dict[str, Any], stop: threading.Event, progress: Progress) -> dict[str, Any] | None:
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

    def methods(
        self, cancel: Callable[[str], Any], jobs: Callable[[], list[Any]]
    ) -> dict[str, Callable[[dict[str, Any]], Any]]:
        """The `federation.*` methods; `cancel(job id)` and `jobs()` (the journal's recent jobs) are the node's."""

        async def serve(params: dict[str, Any]) -> Any:
            name = str(params["datanet"])
            self._check_datanet(name)
            if name in self.serving:
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
            if any(j.datanet == name for j in self.joined.values()):
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
            "federation.fit": self.fit_method,
        }

    def _check_datanet(self, name: str) -> None:
        try:
            self.vault.open_shard(name).close()
        except ShardNotFound:
            raise ClientError(f"No Datanet named {name!r} in this vault; `datanet list` shows them.") from None

    # --- a member's round -----------------------------------------------------------------------------------

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


def _tidy(folder: Path) -> None:
    """What a finished (or failed) federation leaves in its folder: the SuperLink's log (0600) and the federation's
    CA certificate. Flower's state (its SQLite file: registered keys, the run and its config, the labels among it),
    the round reports, the apps Flower unpacked and the TLS keys go: the rounds' adapters are in the store."""
    for pattern in ("superlink.db*", "round-*.json", "round-*/"):
        for item in folder.glob(pattern):
            if item.is_dir():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)
    shutil.rmtree(folder / "flwr-link", ignore_errors=True)
    for name in ("server.key", "server.crt"):
        (folder / "tls" / name).unlink(missing_ok=True)


def _labels(shard: Any, eval_path: str) -> list[str]:
    """The head's labels: those of the held-out file, or of the coordinator's own records."""
    from client.importers import read_rows

    rows = read_rows(Path(eval_path), task=shard.info.task) if eval_path else list(shard.iter_bodies())
    labels = sorted({str(json.loads(body).get("label")) for _, body in rows})
    if len(labels) < 2:
        raise FederationError("A federated round needs at least two labels; give --eval FILE with the held-out set.")
    return labels


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


def _dp_summary(participants: list[dict[str, Any]]) -> dict[str, Any] | None:
    budgets = [p["dp"] for p in participants if p.get("dp")]
    if not budgets:
        return None
    return {
        "per_participant": {p["peer"]: p["dp"] for p in participants},
        "max_epsilon_spent": max(float(b["epsilon_spent"]) for b in budgets),
    }


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def check_address(address: str) -> None:
    try:
        peer_info(address)
    except ValueError as exc:
        raise ClientError(str(exc)) from None
