"""The Flower app of a federation: the ServerApp the coordinator's SuperLink runs, and the ClientApp each member's
SuperNode runs (both in processes Flower starts; the FAB names this module, client/federation/fab.py).

Server: Flower's legacy FedAvg under `SecAggPlusWorkflow`, so the coordinator only ever opens the weighted mean
of the members' replies, never one member's update. Each round it finishes the head (weights.finish_head),
evaluates the round's model on the coordinator's held-out file, and writes the round's adapter folder and report
(participants by peer id, their batches and DP budgets) under `out-dir`, where the coordinator's node stores it.

Client: a thin proxy. `fit` writes the round's weights into the member's federation folder and asks the member's
node (control API `federation.fit`) to train on its shard; the node runs the training job, which never hands
records to this process, and the reply is the job's tensors. `secaggplus_mod` masks them before they leave.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.client import ClientApp, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.common import (
    ArrayRecord,
    Context,
    FitRes,
    Message,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

from client.federation import weights
from client.federation.errors import FederationError

logger = logging.getLogger(__name__)
_ROOT = re.compile(r"^[0-9a-f]{64}$")
MAX_ROOTS = 100_000  # batch roots one member may name in a round
GRID_POLL = 0.25  # seconds between the ServerApp's pulls for replies (Flower's 3 s, capped: guard._Poll)
FIT_TIMEOUT = 3600.0  # seconds a member's node may take to train one round
NO_DP = -1.0  # the "dp-epsilon" metric of a member that trained without DP


# --- the server --------------------------------------------------------------------------------------------


class RoundStrategy(FedAvg):
    """FedAvg whose aggregate is finished (head rows by label), evaluated and written out each round."""

    def __init__(self, run: dict[str, Any], **kwargs: Any) -> None:
        from client.federation.model import RoundModel
        from client.training.settings import TrainConfig

        self.run = run
        self.out = Path(str(run["out-dir"]))
        self.labels = tuple(json.loads(str(run["labels"])))
        self.members: dict[str, str] = json.loads(str(run["members"]))
        config = TrainConfig(base=str(run["base"]), seed=int(run["seed"]), threads=int(run["threads"]))
        self.model = RoundModel(str(run["base"]), self.labels, config, Path(str(run["cache-dir"])))
        self.current = dict(self.model.initial)
        self.eval_rows = _read_eval(str(run["eval"]))
        initial = [self.current[n] for n in self.model.names] + [np.zeros(len(self.labels), np.float32)]
        super().__init__(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=int(run["min-members"]),
            min_available_clients=int(run["min-members"]),
            initial_parameters=ndarrays_to_parameters(initial),
            on_fit_config_fn=self.fit_config,
            accept_failures=True,
        )

    def fit_config(self, server_round: int) -> dict[str, Scalar]:
        run = self.run
        return {
            "federation": str(run["federation"]),
            "round": server_round,
            "base": str(run["base"]),
            "labels": json.dumps(self.labels),
            "names": json.dumps(self.model.names),
            "a-sha256": self.model.a_sha256,
            "seed": int(run["seed"]),
            "epochs": int(run["epochs"]),
            "learning-rate": float(run["learning-rate"]),
            "batch-size": int(run["batch-size"]),
            "dp-epsilon": float(run["dp-epsilon"]),
        }

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        started = time.monotonic()
        unknown = [proxy.node_id for proxy, _ in results if str(proxy.node_id) not in self.members]
        if not results or unknown:  # a node nobody admitted: its share of the sum cannot be taken out again
            self._no_update(server_round, len(failures), "unknown nodes" if unknown else "no member replied")
            return None, {}
        mean, _ = super().aggregate_fit(server_round, results, failures)
        if mean is None:
            self._no_update(server_round, len(failures), "no aggregate")
            return None, {}
        try:
            finished, _ = weights.finish_head(
                parameters_to_ndarrays(mean), self.model.names, len(self.labels), self.current
            )
        except FederationError as exc:  # a member's reply broke the round's sum: this round has no update
            logger.warning("round %d has no update: %s", server_round, exc)
            self._no_update(server_round, len(failures), "the aggregate does not add up")
            return None, {}
        self.current = finished
        folder = self.out / f"round-{server_round}"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.model.save(finished, folder)
        evaluation = {**self.model.evaluate(self.eval_rows), "records": len(self.eval_rows)} if self.eval_rows else {}
        participants = [self._participant(proxy, res) for proxy, res in results]
        _write_json(
            self.out / f"round-{server_round}.json",
            {
                "round": server_round,
                "update": True,
                "folder": str(folder),
                "participants": sorted(participants, key=lambda p: str(p["peer"])),
                "failures": len(failures),
                "evaluation": evaluation,
                "base_model": self.model.describe_base(),
                "labels": list(self.labels),
                "seconds_aggregating": round(time.monotonic() - started, 3),
            },
        )
        wire = [finished[n] for n in self.model.names] + [np.zeros(len(self.labels), np.float32)]
        return ndarrays_to_parameters(wire), {"participants": len(results)}

    def _no_update(self, server_round: int, failures: int, reason: str) -> None:
        _write_json(
            self.out / f"round-{server_round}.json",
            {"round": server_round, "update": False, "failures": failures, "reason": reason},
        )

    def _participant(self, proxy: ClientProxy, res: FitRes) -> dict[str, Any]:
        """Who took part, by the peer id its node was admitted as (the SuperNode's key was registered for it),
        with what its member says of itself, shape-checked (a bad value is left out, never trusted)."""
        metrics = res.metrics
        epsilon, delta = _number(metrics.get("dp-epsilon")), _number(metrics.get("dp-delta"))
        roots = str(metrics.get("batches", "")).split(",")
        return {
            "peer": self.members[str(proxy.node_id)],
            "records": int(res.num_examples),
            "batch_roots": sorted({r for r in roots if _ROOT.match(r)})[:MAX_ROOTS],
            "dp": None if epsilon is None or epsilon < 0 else {"epsilon_spent": epsilon, "delta": delta or 0.0},
        }


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _read_eval(path: str) -> list[tuple[bytes, bytes]]:
    if not path:
        return []
    from client.importers import read_rows

    return read_rows(Path(path), task="intent-classification")


def _write_json(path: Path, value: Any) -> None:
    from client.federation.model import write_json

    write_json(path, value)


server_app = ServerApp()


@server_app.main()
def serve(grid: Any, context: Context) -> None:
    import flwr.superlink.grid.http_grid as http_grid

    from client.federation.guard import poll_faster

    poll_faster(http_grid, GRID_POLL)
    run = dict(context.run_config)
    strategy = RoundStrategy(run)
    members = int(run["min-members"])
    workflow = DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(
            # every member holds a share of every other's mask key; any `members - 1` of them unmask a member
            # that dropped out after sharing its keys (Flower needs 3 shares at least: a float means "all")
            num_shares=1.0 if members < 3 else members,
            reconstruction_threshold=max(2, members - 1),
            max_weight=float(2**16),
            timeout=float(run["secagg-timeout"]),
        )
    )
    context_ = LegacyContext(context=context, config=ServerConfig(num_rounds=int(run["rounds"])), strategy=strategy)
    workflow(grid, context_)


# --- the client --------------------------------------------------------------------------------------------


class MemberClient(NumPyClient):
    """Forwards a round to the member's node, which trains on its shard and returns the reply's tensors."""

    def __init__(self, data_dir: Path, work_dir: Path, federation: str) -> None:
        self.data_dir = data_dir
        self.work_dir = work_dir
        self.federation = federation

    def fit(
        self, parameters: list[np.ndarray[Any, Any]], config: dict[str, Scalar]
    ) -> tuple[list[np.ndarray[Any, Any]], int, dict[str, Scalar]]:
        from safetensors.numpy import load_file, save_file

        from client.node.control import ControlClient

        if str(config.get("federation")) != self.federation:
            raise FederationError("The round belongs to another federation than the one this member joined.")
        round_no = int(config["round"])
        names = json.loads(str(config["names"]))
        if len(parameters) != len(names) + 1:
            raise FederationError("The round's weights do not match the names it gives.")
        initial = self.work_dir / f"round-{round_no}.initial.safetensors"
        save_file({n: np.ascontiguousarray(p) for n, p in zip(names, parameters, strict=False)}, str(initial))
        os.chmod(initial, 0o600)
        client = ControlClient(self.data_dir, timeout=60.0)
        job = client.call(
            "federation.fit",
            federation=self.federation,
            round=round_no,
            weights=str(initial),
            names=names,
            labels=json.loads(str(config["labels"])),
            a_sha256=str(config["a-sha256"]),
            base=str(config["base"]),
            seed=int(config["seed"]),
            epochs=int(config["epochs"]),
            learning_rate=float(config["learning-rate"]),
            batch_size=int(config["batch-size"]),
            dp_epsilon=float(config["dp-epsilon"]) or None,
        )
        done = client.wait_job(job["id"], timeout=FIT_TIMEOUT)
        if done["state"] != "done":  # the reason stays in the member's own jobs: Flower sends this text back
            raise FederationError(f"This member did not train round {round_no}.")
        summary = done["progress"]
        tensors = load_file(str(summary["update"]))
        reply = [tensors[key] for key in sorted(tensors)]
        epsilon = summary.get("dp_epsilon_spent")
        metrics: dict[str, Scalar] = {
            "batches": ",".join(summary.get("batch_roots", [])),
            "dp-epsilon": float(epsilon) if epsilon is not None else NO_DP,
            "dp-delta": float(summary.get("dp_delta") or 0.0),
        }
        return reply, int(summary["examples"]), metrics


def _member(context: Context) -> Any:
    node = context.node_config
    return MemberClient(Path(str(node["data-dir"])), Path(str(node["work-dir"])), str(node["federation"])).to_client()


def _recording_mod(message: Message, context: Context, call_next: Any) -> Message:
    """With `DATANET_FEDERATION_RECORD=<folder>` (a diagnostic, for audits and tests): every message this member
    receives and every reply it sends, as Flower holds them (arrays as their bytes, configs and metrics as text),
    appended to `<folder>/messages.bin`. Outermost: what it records of a reply is what leaves, masked."""
    reply: Message = call_next(message, context)
    folder = os.environ.get("DATANET_FEDERATION_RECORD")
    if folder:
        with open(Path(folder) / "messages.bin", "ab") as out:
            for direction, msg in (("in", message), ("out", reply)):
                if not msg.has_content():
                    continue
                for name, record in msg.content.items():
                    out.write(f"\n== {direction} {msg.metadata.message_type} {name}\n".encode())
                    if isinstance(record, ArrayRecord):
                        for key, array in record.items():
                            out.write(key.encode() + b"\n" + array.data)
                    else:
                        out.write(repr(dict(record)).encode())
    return reply


def _mods() -> list[Any]:
    mods: list[Any] = [secaggplus_mod]
    if os.environ.get("DATANET_FEDERATION_RECORD"):
        mods.insert(0, _recording_mod)
    return mods


client_app = ClientApp(client_fn=_member, mods=_mods())
