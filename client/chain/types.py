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

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        return cls(**json.loads(text))


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
