"""A coordinator's federated rounds (the node's `coordinate` jobs): a SuperLink for a Datanet, members admitted
over `/datanet/federation/join/1.0.0` until enough have joined, the run (this client's own FAB) followed round by
round, every round's adapter stored with a manifest naming the round, the participants (by peer id), their proven
batches and their DP budgets; then the SuperLink stopped and Flower's state removed. The work runs in the job's
worker thread; a join's slow part (registering the key with the SuperLink) in a thread of its own."""

from __future__ import annotations

import json
import logging
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
from client.federation import fab, flower, join, tls
from client.federation.errors import FederationError, FlowerFailed, NotAdmitted
from client.p2p import sync
from client.p2p.admission import ChainMembership
from client.training import adapters
from storage.errors import ShardNotFound
from storage.vault import Vault

logger = logging.getLogger(__name__)

FOLDER = "federation"
RUN_TIMEOUT = 3600.0  # seconds a round may take, at most, before the coordinator gives up on the run
MAX_MEMBERS = 60  # secure aggregation's integers (2**26 levels each, a 2**32 modulus) hold 64 members' sums
JOIN_TIMEOUT = 3600.0  # seconds a coordinator waits for its members
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


class Coordinator:
    def __init__(self, *, vault: Vault, config: Config, chain_member: ChainMembership | None) -> None:
        self.vault = vault
        self.config = config
        self.data_dir = config.data_dir
        self.chain_member = chain_member
        self.serving: dict[str, Serving] = {}  # Datanet name -> its open federation

    async def decide(self, peer: str, request: join.JoinRequest) -> join.Admission:
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
            progress({"stage": "running", "members": len(serving.members), "expected": members})
            running = time.monotonic()
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
            summary["seconds"] = round(time.monotonic() - running, 2)  # from the last member's admission
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


def _dp_summary(participants: list[dict[str, Any]]) -> dict[str, Any] | None:
    budgets = [p["dp"] for p in participants if p.get("dp")]
    if not budgets:
        return None
    return {
        "per_participant": {p["peer"]: p["dp"] for p in participants},
        "max_epsilon_spent": max(float(b["epsilon_spent"]) for b in budgets),
    }
