"""The chain's plain values, free of web3 so that anything may import them: where the contracts are
(`Deployment`, saved as JSON), what the registry and the ledger say about a Datanet and a batch, a transaction's
result with its decoded events, and the chain's status as a command shows it. `VISIBILITIES` and `POLICIES` are
in the order of the contracts' enums.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Visibility = Literal["public", "private"]
JoinPolicy = Literal["open", "allow-list", "stake"]
VISIBILITIES: tuple[Visibility, ...] = ("public", "private")
POLICIES: tuple[JoinPolicy, ...] = ("open", "allow-list", "stake")


@dataclass(frozen=True, slots=True)
class Deployment:
    chain_id: int
    registry: str
    ledger: str
    contribution_check: str
    membership_check: str
    block: int = 0
    # Governance and polls (empty in a deployment made before they existed: `has_governance` is False).
    token: str = ""
    timelock: str = ""
    governor: str = ""
    polls: str = ""

    @property
    def has_governance(self) -> bool:
        return bool(self.token and self.timelock and self.governor and self.polls)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        return cls(**json.loads(text))


@dataclass(frozen=True, slots=True)
class GovernanceParams:
    """The Governor's and the timelock's settings, fixed at deployment. Seconds throughout (timestamp clock)."""

    voting_delay: int  # from a proposal until voting opens (holders can delegate meanwhile)
    voting_period: int
    proposal_threshold: int  # least voting power (token base units) to propose
    quorum_percent: int  # of the total supply at the proposal's snapshot, for + abstain
    timelock_delay: int  # from queueing until execution
    token_supply: int  # minted once to the deployer


DAY = 24 * 3600
TOKEN = 10**18  # DNG has 18 decimals
# As production governors of this kind run (Compound, Uniswap, ENS): two days to prepare, a week to vote, 4%
# quorum, two days' timelock, a threshold of 0.1% of the supply.
PRODUCTION_GOVERNANCE = GovernanceParams(2 * DAY, 7 * DAY, 1_000_000 * TOKEN, 4, 2 * DAY, 10**9 * TOKEN)
# The embedded devnet's (and the tests'): a proposal can be walked through in minutes.
# Voting opens with the next block: the devnet mines one before each call (client/chain/devnet.py).
DEVNET_GOVERNANCE = GovernanceParams(0, 300, 1_000 * TOKEN, 4, 60, 10**9 * TOKEN)

# Governor proposal states, in the order of IGovernor.ProposalState.
PROPOSAL_STATES = ("pending", "active", "canceled", "defeated", "succeeded", "queued", "expired", "executed")
# What `datanet gov propose` can change: name -> (contract, setter, what the value is).
GOVERNED = {
    "batch-stake-floor": ("ledger", "setBatchStakeFloor", "wei"),
    "challenge-period": ("ledger", "setChallengePeriod", "seconds"),
    "priority": ("registry", "setPriority", "a Datanet's priority"),
}


@dataclass(frozen=True, slots=True)
class ProposalInfo:
    id: int
    proposer: str
    description: str
    actions: list[dict[str, Any]]  # target, value, calldata, and `change` (parameter, value, datanet) if known
    state: str
    vote_start: int  # timestamps
    vote_end: int
    votes_for: int
    votes_against: int
    votes_abstain: int
    quorum: int
    eta: int  # when a queued proposal can be executed (0 if not queued)
    block: int


@dataclass(frozen=True, slots=True)
class PollInfo:
    id: int
    datanet_id: int
    creator: str
    question: str
    options: list[str]
    deadline: int
    votes: int
    tally: list[int]
    open: bool


@dataclass(frozen=True, slots=True)
class DatanetInfo:
    id: int
    name: str
    owner: str
    visibility: Visibility
    policy: JoinPolicy
    schema_hash: str
    join_stake: int
    batch_stake: int
    member_count: int
    created_at: int


@dataclass(frozen=True, slots=True)
class BatchInfo:
    root: int
    datanet_id: int
    contributor: str
    count: int
    stake: int
    submitted_at: int
    flagged: bool
    settled: bool


@dataclass(frozen=True, slots=True)
class AdapterOnChain:
    """An adapter's registration in the ledger (its content hash is the key)."""

    content_hash: bytes
    owner: str
    datanet_id: int
    base_model: bytes  # the base model's weights hash
    registered_at: int


@dataclass(frozen=True, slots=True)
class TxResult:
    tx_hash: str
    block: int
    gas_used: int
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ChainStatus:
    rpc: str
    chain_id: int
    block: int
    account: str
    balance: int
    deployment: Deployment | None
