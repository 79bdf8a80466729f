"""The control API's declarations: every method with its parameters and its result, and every event, as typed
values shared by the node (which checks each request against them before a handler runs) and its clients
(`control.ControlClient` for the CLI, `control.AsyncControlClient` for the TUI). docs/control-api.md lists the same
methods and events; a test keeps the two equal.

A request whose method is not declared, that names a parameter the method does not take, lacks a required one or
gives one of the wrong JSON type is refused (JSON-RPC -32601 or -32602) with one sentence, before anything runs.
Errors of a method that ran carry JSON-RPC code 1, the sentence, and `data.exit_code` (client/failures.py), so a
client exits as the same command run locally would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TypedDict

API_VERSION: Final = 2  # 1: the first wave's node (no version in `status`)

# JSON-RPC error codes
PARSE_ERROR, INVALID_REQUEST, UNKNOWN_METHOD, INVALID_PARAMS = -32700, -32600, -32601, -32602
APPLICATION_ERROR = 1


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: str  # "str", "int", "float", "bool"
    doc: str
    required: bool = False
    nullable: bool = True  # null is the same as leaving it out


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    doc: str
    result: str  # the result's type, by name (a TypedDict below, or a JSON type)
    params: tuple[Param, ...] = ()


_DATANET = Param("datanet", "str", "the Datanet's exact name", required=True, nullable=False)
_WAIT = Param("wait", "bool", "answer only once the job ended")

METHODS: Final[dict[str, Method]] = {
    m.name: m
    for m in (
        Method("status", "the node: identity, addresses, uptime, Datanets, peers, jobs by state", "NodeStatus"),
        Method(
            "peers", "every peer seen: address, direct or relayed, connected, latency, last error", "list[PeerInfo]"
        ),
        Method("datanets", "every Datanet in the vault: records and members", "list[DatanetInfo]"),
        Method("records.count", "how many records a Datanet holds: own and received", "RecordCount", (_DATANET,)),
        Method("jobs", "the latest jobs, newest first", "list[JobInfo]", (Param("limit", "int", "at most this many"),)),
        Method("job", "one job", "JobInfo", (Param("id", "str", "the job id", required=True, nullable=False),)),
        Method(
            "sync",
            "queue a sync of a Datanet with one peer, or with every connected member",
            "JobInfo | SyncJobs",
            (_DATANET, Param("peer", "str", "a peer address ending in /p2p/<peer id>"), _WAIT),
        ),
        Method(
            "prove",
            "queue proving a Datanet's pending own records in batches of 16",
            "JobInfo",
            (
                _DATANET,
                Param("workers", "int", "processes proving at once"),
                Param("datanet_id", "int", "the on-chain Datanet id (an unbound shard only)"),
                _WAIT,
            ),
        ),
        Method(
            "train",
            "queue a LoRA training run on a Datanet",
            "JobInfo",
            (
                _DATANET,
                Param("base", "str", "base model name"),
                Param("epochs", "int", "passes over the training split"),
                Param("batch_size", "int", "examples a step"),
                Param("learning_rate", "float", "step size"),
                Param("seed", "int", "data order and initialisation"),
                Param("threads", "int", "CPU threads"),
                Param("dp_epsilon", "float", "train with DP-SGD to this epsilon"),
                Param("eval", "str", "a JSONL file of held-out records to evaluate on"),
                _WAIT,
            ),
        ),
        Method(
            "cancel",
            "cancel a queued or running job; a finished one is an error",
            "JobInfo",
            (Param("id", "str", "the job id", required=True, nullable=False),),
        ),
        Method("stop", "stop the node cleanly (running jobs go back to the queue)", "Stopping"),
        Method("subscribe", "turn this connection into a stream of events (see Events)", "Subscribed"),
    )
}

# Events: `{"jsonrpc": "2.0", "method": "event", "params": {"type": ..., "seq": n, "at": t, ...}}`. `seq` counts
# every event the node published, `at` is when (Unix seconds); a subscriber that fell behind gets
# {"type": "missed", "count": n} before the next one.
EVENTS: Final[dict[str, str]] = {
    "job": "a job changed state: id, state (queued, running, done, failed, cancelled), kind, and its summary or error",
    "sync.progress": "a sync session's progress: datanet, peer, phase, records and bytes done and left, rate, ETA",
    "records.received": "records arrived from a peer: datanet, peer, count",
    "peer.up": "a peer connected: peer, how it was found (bootstrap, mdns, dht)",
    "prove.progress": "a prove job's progress: id, batches done, batches",
    "train.progress": "a training job's progress: id, step, total steps, loss",
    "missed": "this subscriber fell behind and lost `count` events",
}

_JSON_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
}


class InvalidParams(ValueError):
    """A request the declarations refuse; the message is the sentence for the client."""


def check_params(method: Method, params: dict[str, Any]) -> dict[str, Any]:
    """The request's parameters with nulls left out, or InvalidParams saying what is wrong with them."""
    declared = {p.name: p for p in method.params}
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise InvalidParams(f"{method.name} takes no parameter {', '.join(map(repr, unknown))}.")
    given = {k: v for k, v in params.items() if v is not None}
    for param in method.params:
        if param.name not in given:
            if param.required:
                raise InvalidParams(f"{method.name} needs the parameter {param.name!r}.")
            continue
        value = given[param.name]
        wrong_bool = isinstance(value, bool) and param.kind in ("int", "float")
        if wrong_bool or not isinstance(value, _JSON_TYPES[param.kind]):
            raise InvalidParams(f"{method.name}: {param.name!r} must be a JSON {param.kind}.")
    return given


# Results -------------------------------------------------------------------------------------------------------


class NodeStatus(TypedDict):
    api_version: int
    peer_id: str
    addresses: list[str]
    uptime_s: float
    datanets: int
    peers_connected: int
    jobs: dict[str, int]


class PeerInfo(TypedDict):
    peer_id: str
    address: str
    transport: str  # "direct" or "relayed"
    connected: bool
    last_sync: float | None
    last_error: str | None
    latency_ms: float | None


class DatanetInfo(TypedDict):
    name: str
    records: int
    members: list[str]


class RecordCount(TypedDict):
    datanet: str
    records: int
    own: int
    peer: int


class JobInfo(TypedDict):
    id: str
    kind: str  # "sync" | "prove" | "train"
    params: dict[str, Any]
    state: str  # "queued" | "running" | "done" | "failed" | "cancelled"
    progress: dict[str, Any]
    error: str | None
    created_ms: int
    updated_ms: int


class SyncJobs(TypedDict):
    jobs: list[JobInfo]


class Stopping(TypedDict):
    stopping: bool


class Subscribed(TypedDict):
    subscribed: bool
