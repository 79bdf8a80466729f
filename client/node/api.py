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

API_VERSION: Final = 5  # 1: the first wave's node (no version in `status`); 2: before the application layer; 3: before
# governance and polls; 4: before federation and shared adapters

# JSON-RPC error codes
PARSE_ERROR, INVALID_REQUEST, UNKNOWN_METHOD, INVALID_PARAMS = -32700, -32600, -32601, -32602
APPLICATION_ERROR = 1


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: str  # "str", "int", "float", "bool", "list" (of strings)
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
_ID = Param("id", "str", "the job id", required=True, nullable=False)
_PROPOSAL = Param("id", "int", "the proposal's number", required=True, nullable=False)
_POLL = Param("id", "int", "the poll's number", required=True, nullable=False)
_ADAPTER = Param("id", "str", "an adapter id, or 8 or more of its first hex digits", required=True, nullable=False)


def _m(name: str, doc: str, result: str, *params: Param) -> Method:
    return Method(name, doc, result, params)


METHODS: Final[dict[str, Method]] = {
    m.name: m
    for m in (
        _m("status", "the node: identity, addresses, uptime, Datanets, peers, jobs by state, chain", "NodeStatus"),
        _m(
            "health",
            "what a monitor asks: peers (an online node), the chain, free disk, failing jobs; each problem's exit code",
            "Health",
            Param("no_peers_minutes", "int", "an online node without a peer this long is a problem (default 30)"),
            Param("disk_free_mb", "int", "less free space than this is a problem (default 1024)"),
        ),
        _m("identity", "the contributor identity's public parts: peer id, EVM address, commitment", "Identity"),
        _m("vault", "the vault's unlock state: unlocked, how, where", "VaultState"),
        _m(
            "datanets",
            "every Datanet in the vault: task, records own and received, bytes, pending, batches, members, "
            "on-chain binding; shard files that cannot be opened",
            "Datanets",
        ),
        _m(
            "create",
            "create a Datanet in the vault, and with on_chain register it on chain and bind it",
            "Created",
            Param("datanet", "str", "the new Datanet's name", required=True, nullable=False),
            Param("task", "str", "what its records are for (default: text)"),
            Param("on_chain", "bool", "also register it on chain (an existing local Datanet is registered)"),
            Param("private", "bool", "on chain: only allow-listed or staking members"),
            Param("policy", "str", "on chain: open, allow-list or stake"),
            Param("join_stake", "int", "on chain: wei a member deposits (policy stake)"),
            Param("batch_stake", "int", "on chain: least wei staked with each batch"),
        ),
        _m(
            "records.count",
            "how many records a Datanet holds: own and received",
            "RecordCount",
            _DATANET,
        ),
        _m(
            "records.list",
            "a page of a Datanet's records: id, source, time, size, origin (no content)",
            "RecordList",
            _DATANET,
            Param("limit", "int", "at most this many (default 20, at most 10,000)"),
            Param("offset", "int", "skip this many first"),
            Param("source", "str", "only records whose source matches this glob"),
        ),
        _m(
            "records.show",
            "one record with its content and provenance (decrypted for this answer only)",
            "RecordShown",
            _DATANET,
            Param("id", "str", "the record id, or 8 or more of its first hex digits", required=True, nullable=False),
        ),
        _m(
            "records.delete",
            "delete records by id, or by source glob and/or import time",
            "Deleted",
            _DATANET,
            Param("ids", "list", "record ids (or prefixes of 8 or more hex digits)"),
            Param("source", "str", "records whose source matches this glob"),
            Param("before_ms", "int", "records imported before this time (Unix milliseconds)"),
        ),
        _m(
            "records.import",
            "queue importing JSONL, CSV or text-folder files the node can read (one transaction a file)",
            "JobInfo",
            _DATANET,
            Param("paths", "list", "absolute paths of the files or folders", required=True, nullable=False),
            Param("format", "str", "jsonl, csv or text (default: from each name)"),
            Param("skip_bad", "bool", "import the good records and list the bad lines"),
            _WAIT,
        ),
        _m(
            "members",
            "the peers allowed to sync a Datanet; add or remove one",
            "Members",
            _DATANET,
            Param("action", "str", "list (default), add or remove"),
            Param("peer", "str", "a peer id (12D3KooW...)"),
        ),
        _m("batches", "a Datanet's own batches (proven, submitted) and its records in none yet", "Batches", _DATANET),
        _m(
            "batches.received",
            "other contributors' verified batches that peers carried here, and how many wait for a check",
            "ReceivedBatches",
            _DATANET,
        ),
        _m("chain.status", "the chain the node uses: id, block, contracts, account, balance", "ChainStatus"),
        _m(
            "chain.datanets",
            "the Datanets registered on chain, and whether this account is a member",
            "list[OnChainDatanet]",
        ),
        _m(
            "chain.fund",
            "embedded devnet only: send ether from its faucet to this account",
            "Funded",
            Param("ether", "int", "how much (default 100)"),
        ),
        _m(
            "chain.deploy",
            "deploy the contracts on the configured RPC chain and remember where",
            "Deployed",
            Param("governance", "str", "the Governor's periods: production (default) or devnet"),
        ),
        _m("chain.reset", "throw the embedded devnet's state away; shards bound to it are unbound", "Reset"),
        _m(
            "join",
            "join a Datanet on chain, create its local shard if need be, and bind it",
            "Joined",
            _DATANET,
            Param("pay_stake", "bool", "agree to deposit the Datanet's join stake"),
        ),
        _m("leave", "leave a Datanet on chain (a join stake is refunded; local records are kept)", "Left", _DATANET),
        _m(
            "allow",
            "owner of a Datanet: allow an account to join it, or remove it",
            "Allowed",
            _DATANET,
            Param("account", "str", "a 0x address", required=True, nullable=False),
            Param("remove", "bool", "remove it from the allow-list instead"),
        ),
        _m(
            "prove",
            "queue proving a Datanet's pending own records in batches of 16",
            "JobInfo",
            _DATANET,
            Param("workers", "int", "processes proving at once"),
            Param("limit", "int", "prove at most this many records"),
            Param("datanet_id", "int", "the on-chain Datanet id (an unbound shard only)"),
            _WAIT,
        ),
        _m(
            "submit",
            "queue proving what is pending and submitting every batch the chain lacks (the chain lane)",
            "JobInfo",
            _DATANET,
            Param("stake", "int", "wei staked with each batch (default: the Datanet's minimum)"),
            Param("workers", "int", "processes proving at once"),
            Param("limit", "int", "prove at most this many pending records first"),
            _WAIT,
        ),
        _m(
            "train",
            "queue a LoRA training run on a Datanet",
            "JobInfo",
            _DATANET,
            Param("base", "str", "base model name"),
            Param("epochs", "int", "passes over the training split"),
            Param("batch_size", "int", "examples a step"),
            Param("learning_rate", "float", "step size"),
            Param("seed", "int", "data order and initialisation"),
            Param("threads", "int", "CPU threads"),
            Param("dp_epsilon", "float", "train with DP-SGD to this epsilon"),
            Param("eval", "str", "a JSONL file of held-out records to evaluate on"),
            Param("fresh", "bool", "start over instead of resuming an interrupted run"),
            _WAIT,
        ),
        _m(
            "federation.serve",
            "coordinate federated rounds of a Datanet: a SuperLink, members admitted, the run, each round's adapter",
            "JobInfo",
            _DATANET,
            Param("members", "int", "members to wait for before the first round (2 or more)", required=True),
            Param("rounds", "int", "rounds to run (default 2)"),
            Param("eval", "str", "a JSONL file of held-out records each round is evaluated on"),
            Param("host", "str", "the address the SuperLink listens on and members dial (default 127.0.0.1)"),
            Param("port", "int", "the SuperLink's port (default: a free one)"),
            Param("epochs", "int", "passes over each member's records a round"),
            Param("learning_rate", "float", "step size"),
            Param("dp_epsilon", "float", "each member trains with DP-SGD to this epsilon a round"),
            Param("min_members", "int", "members a round needs to finish (default: all)"),
            Param(
                "secagg_timeout",
                "float",
                "seconds a secure-aggregation stage waits for members, training included (default 600)",
            ),
            _WAIT,
        ),
        _m(
            "federation.join",
            "take part in a coordinator's federated rounds of a Datanet (a guarded Flower SuperNode)",
            "JobInfo",
            _DATANET,
            Param("coordinator", "str", "the coordinator's peer address", required=True, nullable=False),
            Param("dp_epsilon", "float", "train every round with DP-SGD to this epsilon (wins over the coordinator's)"),
            _WAIT,
        ),
        _m(
            "federation.leave",
            "leave the federated rounds this node takes part in (of one Datanet)",
            "FederationLeft",
            Param("datanet", "str", "only this Datanet's rounds"),
        ),
        _m("federation.status", "the rounds this node coordinates and those it takes part in", "FederationStatus"),
        _m(
            "federation.fit",
            "train one round on this member's shard (its Flower ClientApp asks); answers the queued job",
            "JobInfo",
            Param("federation", "str", "the federation's id", required=True, nullable=False),
            Param("round", "int", "the round's number", required=True, nullable=False),
            Param("weights", "str", "the round's weights, in the federation's folder", required=True, nullable=False),
            Param("names", "list", "the trained tensors' names, in wire order", required=True, nullable=False),
            Param("labels", "list", "the head's labels, in order", required=True, nullable=False),
            Param("a_sha256", "str", "the coordinator's frozen LoRA A", required=True, nullable=False),
            Param("base", "str", "base model name", required=True, nullable=False),
            Param("seed", "int", "initialisation and data order"),
            Param("epochs", "int", "passes over the member's records"),
            Param("learning_rate", "float", "step size"),
            Param("batch_size", "int", "examples a step"),
            Param("dp_epsilon", "float", "DP-SGD to this epsilon (the member's own setting wins)"),
        ),
        _m("adapters.list", "the adapters on this machine with their manifests", "Adapters"),
        _m("adapters.show", "one adapter's provenance manifest, its files checked", "AdapterShown", _ADAPTER),
        _m(
            "adapters.register",
            "record an adapter on chain: content hash, base model, Datanet, batches",
            "AdapterRegistered",
            _ADAPTER,
        ),
        _m(
            "adapters.share",
            "offer an adapter (registered on chain) to the members of its Datanet, or stop offering it",
            "AdapterShared",
            _ADAPTER,
            Param("stop", "bool", "stop sharing it"),
        ),
        _m(
            "adapters.fetch",
            "fetch an adapter a member shares: its files checked against the id, its registration on chain",
            "AdapterFetched",
            Param("id", "str", "the adapter's whole id (its content address)", required=True, nullable=False),
            Param("peer", "str", "the sharing member's peer address", required=True, nullable=False),
        ),
        _m("gov.status", "the Governor's settings, the governed parameters, this account's voting power", "GovStatus"),
        _m(
            "gov.delegate",
            "delegate this account's governance tokens' votes (to itself by default)",
            "Delegated",
            Param("to", "str", "a 0x address"),
        ),
        _m(
            "gov.propose",
            "propose changing a governed parameter (batch-stake-floor, challenge-period, priority)",
            "Proposal",
            Param("parameter", "str", "the parameter's name", required=True, nullable=False),
            Param("value", "int", "its new value (wei, seconds or a priority)", required=True, nullable=False),
            Param("description", "str", "what it changes and why", required=True, nullable=False),
            Param("datanet", "str", "the Datanet (a priority only)"),
        ),
        _m("gov.list", "every proposal on this chain, oldest first", "list[Proposal]"),
        _m("gov.show", "one proposal: actions, state, votes, quorum, eta", "Proposal", _PROPOSAL),
        _m(
            "gov.vote",
            "vote on an active proposal with this account's voting power",
            "GovVoted",
            _PROPOSAL,
            Param("support", "str", "for, against or abstain", required=True, nullable=False),
            Param("reason", "str", "a reason, on chain with the vote"),
        ),
        _m("gov.queue", "queue a passed proposal in the timelock", "GovStep", _PROPOSAL),
        _m("gov.execute", "execute a queued proposal once the timelock's delay is over", "GovStep", _PROPOSAL),
        _m(
            "poll.create",
            "open an anonymous poll in a Datanet (its members answer once each)",
            "Poll",
            _DATANET,
            Param("question", "str", "the question", required=True, nullable=False),
            Param("options", "list", "2 to 16 answers", required=True, nullable=False),
            Param("closes_in", "int", "seconds until it closes", required=True, nullable=False),
        ),
        _m("poll.list", "the polls on this chain, or of one Datanet", "list[Poll]", Param("datanet", "str", "a name")),
        _m("poll.show", "one poll with its tally", "Poll", _POLL),
        _m(
            "poll.enrolment",
            "owner of a Datanet: let members enrol in its contributor tree without contributing, or stop it",
            "Enrolment",
            _DATANET,
            Param("open", "bool", "open (true) or closed (false)", required=True, nullable=False),
        ),
        _m("poll.enrol", "add this identity to a Datanet's contributor tree, so it can vote", "Enrolled", _DATANET),
        _m(
            "poll.vote",
            "queue an anonymous vote: a membership proof, sent from a fresh address (the chain lane)",
            "JobInfo",
            _POLL,
            Param("option", "str", "the option's text, or its number from 1", required=True, nullable=False),
            Param("payer_key_file", "str", "a chain without a faucet: a 0600 file with the key that funds the sender"),
            _WAIT,
        ),
        _m("jobs", "the latest jobs, newest first", "list[JobInfo]", Param("limit", "int", "at most this many")),
        _m("job", "one job", "JobInfo", _ID),
        _m("cancel", "cancel a queued or running job; a finished one is an error", "JobInfo", _ID),
        _m("peers", "every peer seen: address, direct or relayed, connected, latency, last error", "list[PeerInfo]"),
        _m(
            "sync",
            "queue a sync of a Datanet with one peer, or with every connected member",
            "JobInfo | SyncJobs",
            _DATANET,
            Param("peer", "str", "a peer address ending in /p2p/<peer id>"),
            _WAIT,
        ),
        _m(
            "log.tail",
            "the last lines of the node's log (never keys, passphrases or record contents)",
            "LogTail",
            Param("lines", "int", "at most this many (default 100, at most 10,000)"),
            Param("level", "str", "at least this level: DEBUG, INFO, WARNING or ERROR"),
            Param("text", "str", "only lines that contain this text"),
            Param("area", "str", "only one area's lines: vault, import, identity, training, cli, chain, p2p, node"),
        ),
        _m("stop", "stop the node cleanly (running jobs go back to the queue)", "Stopping"),
        _m("subscribe", "turn this connection into a stream of events (see Events)", "Subscribed"),
    )
}

# Events: `{"jsonrpc": "2.0", "method": "event", "params": {"type": ..., "seq": n, "at": t, ...}}`. `seq` counts
# every event the node published, `at` is when (Unix seconds); a subscriber that fell behind gets
# {"type": "missed", "count": n} before the next one.
EVENTS: Final[dict[str, str]] = {
    "job": "a job changed state: id, state (queued, running, done, failed, cancelled), kind, and its summary or error",
    "sync.progress": "a sync session's progress: datanet, peer, phase, records and bytes done and left, rate, ETA",
    "records.received": "records arrived from a peer: datanet, peer, count",
    "records.changed": "records were imported or deleted here: datanet, count",
    "peer.up": "a peer connected: peer, how it was found (bootstrap, mdns, dht)",
    "import.progress": "an import job's progress: id, file, done and total bytes of it, rate, ETA",
    "prove.progress": "a prove job's progress: id, batches done, batches, seconds each, rate, ETA",
    "submit.progress": "a submit job's progress: id, phase (proving, submitting), batches done, the step, rate, ETA",
    "train.progress": "a training job's progress: id, step, total steps, epoch, loss, samples/s, ETA, device, "
    "evaluations (before; after at the end), with DP the budget spent and its target",
    "coordinate.progress": "a coordinator's federation: stage (waiting for members, round), members joined and "
    "expected, the round, its participants, whether it produced an update, its evaluation",
    "participate.progress": "this member's part in a federation: stage (joined, round), the federation, round, rounds",
    "fit_round.progress": "a member's round of training: as train.progress",
    "chain.tx": "a transaction this node sent was confirmed: method, datanet, tx (and gas where known)",
    "gov.changed": "a proposal was made, voted on, queued or executed from here: id, action, state, tx",
    "poll.changed": "a poll was opened, enrolled in or voted in from here: id, action, datanet, tx",
    "config.reloaded": "the node read its configuration again (SIGHUP): what changed, what needs a restart",
    "relay.reserved": "a relay holds a reservation for this node: relay (peer id), circuit (the address through it)",
    "missed": "this subscriber fell behind and lost `count` events",
}

_JSON_TYPES: Final[dict[str, tuple[type[Any], ...]]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
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
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            raise InvalidParams(f"{method.name}: {param.name!r} must be a list of strings.")
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
    online: bool  # False: a node the CLI started (control socket only, stops when idle)
    chain: str | None  # the RPC endpoint the node's chain commands use; None: the embedded devnet


class Health(TypedDict):
    healthy: bool
    problems: list[dict[str, Any]]  # check (peers, chain, disk, jobs), exit_code, problem (one sentence)
    peers_connected: int
    minutes_without_peers: float
    chain_block: int | None
    disk_free_mb: int
    failed_jobs_last_hour: int
    online: bool


class Identity(TypedDict):
    peer_id: str
    evm_address: str
    identity_commitment: str


class VaultState(TypedDict):
    unlocked: bool
    unlocked_with: str
    data_dir: str


class Datanets(TypedDict):
    datanets: list[dict[str, Any]]  # name, task, uuid, created_at, records, own, peer, bytes, pending, batches...
    unreadable: list[str]


class Created(TypedDict):
    datanet: str
    task: str
    uuid: str
    chain: dict[str, Any] | None


class RecordCount(TypedDict):
    datanet: str
    records: int
    own: int
    peer: int


class RecordList(TypedDict):
    datanet: str
    total: int
    records: list[dict[str, Any]]


class RecordShown(TypedDict):
    id: str
    source: str
    imported_at: str
    size: int
    origin: str
    received_from: str | None
    provenance: list[dict[str, Any]]
    record: dict[str, Any]


class Deleted(TypedDict):
    datanet: str
    deleted: int
    records: int


class Members(TypedDict):
    datanet: str
    members: list[str]
    changed: bool


class Batches(TypedDict):
    datanet: str
    batches: list[dict[str, Any]]
    pending: int


class ReceivedBatches(TypedDict):
    datanet: str
    received_batches: list[dict[str, Any]]
    unverified: int


class ChainStatus(TypedDict):
    chain: str  # "devnet" | "rpc"
    rpc: str
    chain_id: int
    block: int
    account: str
    balance_wei: int
    contracts: dict[str, str] | None


class OnChainDatanet(TypedDict):
    id: int
    name: str
    owner: str
    visibility: str
    policy: str
    task: str | None
    join_stake: int
    batch_stake: int
    members: int
    member: bool


class Funded(TypedDict):
    account: str
    balance_wei: int


class Deployed(TypedDict):
    chain_id: int
    registry: str
    ledger: str
    contribution_check: str
    membership_check: str
    block: int
    token: str
    timelock: str
    governor: str
    polls: str


class Reset(TypedDict):
    reset: bool
    unbound: list[str]


class Joined(TypedDict):
    id: int
    name: str
    owner: str
    visibility: str
    policy: str
    task: str | None
    join_stake: int
    batch_stake: int
    members: int
    tx: str | None
    was_member: bool
    local_shard_created: bool
    bound: bool
    batches_proved_again: int
    enrolled: bool  # joining put this identity in the contributor tree (its owner opened enrolment)


class Left(TypedDict):
    datanet: str
    tx: str
    refund_wei: int


class Allowed(TypedDict):
    datanet: str
    account: str
    allowed: bool
    tx: str


class Adapters(TypedDict):
    adapters: list[dict[str, Any]]  # each adapter's manifest


class AdapterShown(TypedDict):
    adapter_id: str
    manifest: dict[str, Any]


class AdapterRegistered(TypedDict):
    adapter: str
    datanet: str
    datanet_id: int
    batches: int
    tx: str


class GovStatus(TypedDict):
    settings: dict[str, int]  # voting delay and period, threshold, quorum %, timelock delay, supply, parameters
    power: dict[str, Any]  # account, balance, votes, delegate


class Delegated(TypedDict):
    tx: str
    power: dict[str, Any]


class Proposal(TypedDict):
    id: int
    proposer: str
    description: str
    actions: list[dict[str, Any]]  # target, value, calldata, change (parameter, value, datanet_id)
    state: str  # pending, active, canceled, defeated, succeeded, queued, expired, executed
    vote_start: int
    vote_end: int
    votes_for: int
    votes_against: int
    votes_abstain: int
    quorum: int
    eta: int
    block: int


class GovVoted(TypedDict):
    proposal: Proposal
    tx: str
    support: str


class GovStep(TypedDict):
    proposal: Proposal
    tx: str


class Poll(TypedDict):
    id: int
    datanet_id: int
    creator: str
    question: str
    options: list[str]
    deadline: int
    votes: int
    tally: list[int]
    open: bool
    datanet: str | None


class Enrolment(TypedDict):
    datanet: str
    enrolment_open: bool
    tx: str


class Enrolled(TypedDict):
    datanet: str
    tx: str


class PeerInfo(TypedDict):
    peer_id: str
    address: str
    transport: str  # "direct" or "relayed"
    connected: bool
    last_sync: float | None
    last_error: str | None
    latency_ms: float | None


class AdapterShared(TypedDict):
    adapter_id: str
    shared: bool


class AdapterFetched(TypedDict):
    adapter_id: str
    datanet: str
    peer: str


class FederationServing(TypedDict):
    federation: str
    datanet: str
    members: list[str]
    expected: int
    rounds: int
    accepting: bool


class FederationJoined(TypedDict):
    federation: str
    datanet: str
    rounds: int
    fitted: list[int]


class FederationStatus(TypedDict):
    serving: list[FederationServing]
    joined: list[FederationJoined]


class FederationLeft(TypedDict):
    left: list[str]


class JobInfo(TypedDict):
    id: str
    kind: str  # "sync" | "import" | "prove" | "submit" | "train" | "vote" | "coordinate" | "participate" | "fit_round"
    params: dict[str, Any]
    state: str  # "queued" | "running" | "done" | "failed" | "cancelled"
    progress: dict[str, Any]
    error: str | None
    created_ms: int
    updated_ms: int


class SyncJobs(TypedDict):
    jobs: list[JobInfo]


class LogTail(TypedDict):
    file: str
    lines: list[str]


class Stopping(TypedDict):
    stopping: bool


class Subscribed(TypedDict):
    subscribed: bool
