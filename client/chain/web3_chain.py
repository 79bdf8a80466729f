"""`Web3Chain`, the `ChainClient` over web3: the same code for the embedded devnet and for any JSON-RPC endpoint
(anvil in the tests, an OP-Stack rollup in production). Transactions are signed locally with the identity's EVM
key, carry an explicit gas limit (estimation would run the pairing again, and a snarkjs verifier that runs out of
gas returns false instead of reverting), and are simulated with `eth_call` first, so that a revert is reported
with the contract's decoded error (`reverts.py`) and costs no gas. Nonces are tracked locally. Every receipt's
events go to the client's own `EventIndex`; a receipt that never comes is `TransactionLost`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import requests
from eth_account import Account
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, TimeExhausted, Web3RPCError
from web3.logs import DISCARD

from client.chain import artifacts
from client.chain.errors import (
    ChainError,
    ChainUnreachable,
    InsufficientFunds,
    NotDeployed,
    TransactionLost,
    TransactionReverted,
    WrongChain,
)
from client.chain.index import EventIndex
from client.chain.reverts import ErrorDecoder
from client.chain.types import (
    POLICIES,
    VISIBILITIES,
    AdapterOnChain,
    BatchInfo,
    ChainStatus,
    DatanetInfo,
    Deployment,
    JoinPolicy,
    TxResult,
    Visibility,
)

logger = logging.getLogger(__name__)

# Explicit gas limits (unused gas is not charged). submitBatch's first batch of a contributor also inserts the
# identity commitment into the Datanet's depth-20 contributor tree: 20 Poseidon calls.
GAS = {
    "create": 400_000,
    "join": 150_000,
    "leaveDatanet": 120_000,
    "setAllowed": 120_000,
    "setValidator": 80_000,
    "submitBatch": 1_600_000,
    "flagBatch": 120_000,
    "withdrawStake": 120_000,
    "registerAdapter": 250_000,
    "transfer": 21_000,
}
GAS_PER_ADAPTER_BATCH = 8_000
RECEIPT_TIMEOUT = 120.0


def proof_words(proof: bytes) -> list[int]:
    """The 256-byte proof (snarkjs Solidity calldata order: a, b, c) as the eight uint256 the contracts take."""
    if len(proof) != 256:
        raise ValueError(f"a Groth16 proof is 256 bytes, not {len(proof)}")
    return [int.from_bytes(proof[i : i + 32], "big") for i in range(0, 256, 32)]


class Web3Chain:
    """`ChainClient` over web3. `private_key` signs; `deployment` says where the contracts are."""

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        private_key: bytes,
        *,
        rpc: str = "embedded devnet",
        index: EventIndex | None = None,
        receipt_timeout: float = RECEIPT_TIMEOUT,
    ) -> None:
        self.w3 = w3
        self.receipt_timeout = receipt_timeout
        self.rpc = rpc
        self.deployment = deployment
        self._account = Account.from_key(private_key)
        self._index = index
        self._decoder = ErrorDecoder()
        self._nonce: int | None = None
        chain_id = self._call_node(lambda: w3.eth.chain_id)
        if chain_id != deployment.chain_id:
            raise WrongChain(
                f"{rpc} serves chain {chain_id}, but the contracts were deployed on chain {deployment.chain_id}; "
                "check --rpc-url and the configured addresses."
            )
        self.registry = self._contract("DatanetRegistry", deployment.registry)
        self.ledger = self._contract("ContributionLedger", deployment.ledger)
        self.contribution_check = self._contract("ContributionProofCheck", deployment.contribution_check)
        self.membership_check = self._contract("MembershipProofCheck", deployment.membership_check)
        self._watched: list[Contract] = [self.registry, self.ledger]  # whose events a receipt is read for
        code = self._call_node(lambda: w3.eth.get_code(to_checksum_address(deployment.ledger)))
        if len(code) == 0:
            raise NotDeployed(
                f"There is no ledger contract at {deployment.ledger} on chain {chain_id}; check the configured "
                "addresses (or run `datanet chain reset` for the devnet)."
            )

    # --- plumbing -------------------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return str(self._account.address)

    def _contract(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(address=to_checksum_address(address), abi=artifacts.contract(name).abi)

    def contract(self, name: str, address: str, *, watch: bool = False) -> Contract:
        """The compiled contract `name` at `address`; with `watch`, its events are read from every receipt."""
        contract = self._contract(name, address)
        if watch:
            self._watched.append(contract)
        return contract

    def transact(self, call: Any, what: str, *, gas: int, value: int = 0) -> TxResult:
        """Send a contract call (simulated first, its revert decoded); `what` completes "The chain refused to"."""
        return self._transact(call, what, gas=gas, value=value)

    def view(self, call: Any, what: str) -> Any:
        """A contract read, its revert decoded."""
        return self._view(call, what)

    def call_node(self, fn: Callable[[], Any]) -> Any:
        """Any web3 request, an unreachable node as `ChainUnreachable`."""
        return self._call_node(fn)

    def _call_node(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (requests.ConnectionError, requests.Timeout, ConnectionError, OSError) as exc:
            raise ChainUnreachable(
                f"Cannot reach the chain at {self.rpc} ({type(exc).__name__}); check that the node is running and "
                "--rpc-url is right."
            ) from None

    def _simulate(self, tx: dict[str, Any], what: str) -> None:
        try:
            self._call_node(lambda: self.w3.eth.call(cast(Any, tx)))
        except (ContractCustomError, ContractLogicError) as exc:
            raise self._decoder.reverted(exc, what) from None
        except Web3RPCError as exc:
            message = str(exc)
            if "insufficient funds" in message.lower():
                raise self._funds_error(tx) from None
            raise ChainError(f"The node refused to {what}: {message}") from None

    def _funds_error(self, tx: dict[str, Any]) -> InsufficientFunds:
        balance = self._call_node(lambda: self.w3.eth.get_balance(self._account.address))
        return InsufficientFunds(
            f"The account {self._account.address} holds {balance} wei, not enough for this transaction's value and "
            "gas; fund it (on the embedded devnet: `datanet chain fund`)."
        )

    def _next_nonce(self) -> int:
        on_chain = self._call_node(lambda: self.w3.eth.get_transaction_count(self._account.address, "pending"))
        self._nonce = max(on_chain, self._nonce or 0)
        return self._nonce

    def _transact(self, call: Any, what: str, *, gas: int, value: int = 0) -> TxResult:
        base = {"from": self._account.address, "value": value, "gas": gas, "chainId": self.deployment.chain_id}
        # build_transaction only fills fee fields from the node; ours are set in _send.
        return self._send(self._call_node(lambda: call.build_transaction({**base, "nonce": 0})), what)

    def _send(self, tx: dict[str, Any], what: str) -> TxResult:
        """Simulate, check funds, sign, send, await the receipt."""
        fee = self._fees()
        balance = self._call_node(lambda: self.w3.eth.get_balance(self._account.address))
        if balance < tx["value"] + tx["gas"] * int(fee.get("maxFeePerGas", fee.get("gasPrice", 0))):
            raise self._funds_error(tx)
        self._simulate({k: tx[k] for k in ("from", "to", "data", "value", "gas")}, what)
        tx.update(fee)
        tx["nonce"] = self._next_nonce()
        signed = self._account.sign_transaction(tx)
        try:
            tx_hash = self._call_node(lambda: self.w3.eth.send_raw_transaction(signed.raw_transaction))
        except Web3RPCError as exc:
            if "insufficient funds" in str(exc).lower():
                raise self._funds_error(tx) from None
            if "nonce" in str(exc).lower():
                self._nonce = None
            raise ChainError(f"The node refused to {what}: {exc}") from None
        self._nonce = tx["nonce"] + 1
        return self._await(HexBytes(tx_hash), what, tx)

    def _await(self, tx_hash: HexBytes, what: str, tx: dict[str, Any]) -> TxResult:
        try:
            receipt = self._call_node(
                lambda: self.w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=self.receipt_timeout, poll_latency=0.05
                )
            )
        except (ChainUnreachable, TimeExhausted):
            raise TransactionLost(
                f"Sent the transaction to {what} ({tx_hash.to_0x_hex()}) but got no receipt: the chain went away or "
                "is slow. Nothing was marked done; run the command again once the chain is back."
            ) from None
        if receipt["status"] != 1:
            # Reverted after a successful simulation (state changed in between): replay it for the reason.
            try:
                self.w3.eth.call(
                    cast(Any, {k: tx[k] for k in ("from", "to", "data", "value", "gas")}), receipt["blockNumber"] - 1
                )
            except (ContractCustomError, ContractLogicError) as exc:
                raise self._decoder.reverted(exc, what) from None
            raise TransactionReverted(f"The chain reverted the transaction to {what}.", "Reverted")
        events = self._events(receipt)
        if self._index is not None:
            self._index.add(self.deployment, receipt["blockNumber"], tx_hash.to_0x_hex(), events)
        return TxResult(tx_hash.to_0x_hex(), receipt["blockNumber"], receipt["gasUsed"], events)

    def _fees(self) -> dict[str, int]:
        block = self._call_node(lambda: self.w3.eth.get_block("latest"))
        base_fee = block.get("baseFeePerGas")
        if base_fee is None:
            return {"gasPrice": int(self._call_node(lambda: self.w3.eth.gas_price))}
        tip = 10**9
        return {"maxFeePerGas": int(base_fee) * 2 + tip, "maxPriorityFeePerGas": tip}

    def _events(self, receipt: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for contract in self._watched:
            for item in contract.abi:
                event = cast(dict[str, Any], item)
                if event.get("type") != "event":
                    continue
                for log in contract.events[event["name"]]().process_receipt(receipt, errors=DISCARD):
                    found.append({"event": log["event"], "logIndex": log["logIndex"], **_plain(dict(log["args"]))})
        found.sort(key=lambda e: e["logIndex"])
        return found

    # --- reads ----------------------------------------------------------------------------------------------

    def status(self) -> ChainStatus:
        return ChainStatus(
            rpc=self.rpc,
            chain_id=self._call_node(lambda: self.w3.eth.chain_id),
            block=self._call_node(lambda: self.w3.eth.block_number),
            account=self.address,
            balance=self._call_node(lambda: self.w3.eth.get_balance(self._account.address)),
            deployment=self.deployment,
        )

    def _view(self, call: Any, what: str) -> Any:
        try:
            return self._call_node(call.call)
        except (ContractCustomError, ContractLogicError) as exc:
            raise self._decoder.reverted(exc, what) from None

    def datanet(self, datanet_id: int) -> DatanetInfo:
        d = self._view(self.registry.functions.datanet(datanet_id), f"read Datanet {datanet_id}")
        owner, visibility, policy, created, schema, join_stake, batch_stake, members, name = d
        return DatanetInfo(
            id=datanet_id,
            name=name,
            owner=owner,
            visibility=VISIBILITIES[visibility],
            policy=POLICIES[policy],
            schema_hash="0x" + bytes(schema).hex(),
            join_stake=join_stake,
            batch_stake=batch_stake,
            member_count=members,
            created_at=created,
        )

    def find_datanet(self, name: str) -> DatanetInfo | None:
        found = self._view(self.registry.functions.idByName(Web3.keccak(text=name)), "look up a Datanet")
        return None if found == 0 else self.datanet(found)

    def datanets(self) -> list[DatanetInfo]:
        count = self._view(self.registry.functions.datanetCount(), "count Datanets")
        return [self.datanet(i) for i in range(1, count + 1)]

    def is_member(self, datanet_id: int, account: str) -> bool:
        fn = self.registry.functions.isMember(datanet_id, to_checksum_address(account))
        return bool(self._view(fn, "check membership"))

    def batch(self, batch_root: int) -> BatchInfo | None:
        contributor, submitted, count, flagged, settled, datanet_id, stake, _ends = self._view(
            self.ledger.functions.batches(batch_root), "read a batch"
        )
        if int(contributor, 16) == 0:
            return None
        return BatchInfo(batch_root, datanet_id, contributor, count, stake, submitted, flagged, settled)

    def adapter(self, content_hash: bytes) -> AdapterOnChain | None:
        owner, registered_at, datanet_id, base_model = self._view(
            self.ledger.functions.adapters(content_hash), "read an adapter"
        )
        if int(owner, 16) == 0:
            return None
        return AdapterOnChain(content_hash, owner, int(datanet_id), bytes(base_model), int(registered_at))

    def contributor_root(self, datanet_id: int) -> tuple[int, int]:
        root, size = self._view(self.ledger.functions.contributorRoot(datanet_id), "read the contributor tree")
        return int(root), int(size)

    def check_contribution_proof(self, proof: bytes, public_signals: Sequence[int]) -> bool:
        return self._check(self.contribution_check, proof, public_signals)

    def check_membership_proof(self, proof: bytes, public_signals: Sequence[int]) -> bool:
        return self._check(self.membership_check, proof, public_signals)

    def _check(self, contract: Contract, proof: bytes, public_signals: Sequence[int]) -> bool:
        fn = contract.functions.check(proof_words(proof), list(public_signals))
        try:
            return bool(self._call_node(lambda: fn.call({"gas": 1_000_000})))
        except (ContractCustomError, ContractLogicError):
            return False

    # --- writes ---------------------------------------------------------------------------------------------

    def create_datanet(
        self,
        name: str,
        schema_hash: bytes,
        visibility: Visibility,
        policy: JoinPolicy,
        join_stake: int = 0,
        batch_stake: int = 0,
    ) -> DatanetInfo:
        fn = self.registry.functions.create(
            name, schema_hash, VISIBILITIES.index(visibility), POLICIES.index(policy), join_stake, batch_stake
        )
        result = self._transact(fn, f"create Datanet {name!r}", gas=GAS["create"])
        created = next(e for e in result.events if e["event"] == "DatanetCreated")
        return self.datanet(created["id"])

    def join(self, datanet_id: int) -> TxResult:
        info = self.datanet(datanet_id)
        value = info.join_stake if info.policy == "stake" else 0
        return self._transact(
            self.registry.functions.join(datanet_id), f"join Datanet {datanet_id}", gas=GAS["join"], value=value
        )

    def leave(self, datanet_id: int) -> TxResult:
        fn = self.registry.functions.leaveDatanet(datanet_id)
        return self._transact(fn, f"leave Datanet {datanet_id}", gas=GAS["leaveDatanet"])

    def set_allowed(self, datanet_id: int, account: str, allowed: bool) -> TxResult:
        fn = self.registry.functions.setAllowed(datanet_id, to_checksum_address(account), allowed)
        return self._transact(fn, f"change Datanet {datanet_id}'s allow-list", gas=GAS["setAllowed"])

    def set_validator(self, account: str, enabled: bool) -> TxResult:
        fn = self.registry.functions.setValidator(to_checksum_address(account), enabled)
        return self._transact(fn, "change the validators", gas=GAS["setValidator"])

    def submit_batch(
        self, datanet_id: int, batch_root: int, count: int, commitment: int, proof: bytes, stake: int
    ) -> TxResult:
        fn = self.ledger.functions.submitBatch(datanet_id, batch_root, count, commitment, proof_words(proof))
        return self._transact(fn, f"submit batch {batch_root:#x}", gas=GAS["submitBatch"], value=stake)

    def flag_batch(self, batch_root: int, reason: bytes = b"") -> TxResult:
        fn = self.ledger.functions.flagBatch(batch_root, reason.ljust(32, b"\x00")[:32])
        return self._transact(fn, f"flag batch {batch_root:#x}", gas=GAS["flagBatch"])

    def withdraw_stake(self, batch_root: int) -> TxResult:
        fn = self.ledger.functions.withdrawStake(batch_root)
        return self._transact(fn, f"withdraw the stake of batch {batch_root:#x}", gas=GAS["withdrawStake"])

    def register_adapter(
        self, content_hash: bytes, base_model: bytes, datanet_id: int, batch_roots: Sequence[int]
    ) -> TxResult:
        fn = self.ledger.functions.registerAdapter(content_hash, base_model, datanet_id, list(batch_roots))
        gas = GAS["registerAdapter"] + GAS_PER_ADAPTER_BATCH * len(batch_roots)
        return self._transact(fn, f"register adapter {content_hash.hex()[:16]}", gas=gas)

    def transfer(self, to: str, value: int) -> TxResult:
        tx = {
            "from": self._account.address,
            "to": to_checksum_address(to),
            "data": b"",
            "value": value,
            "gas": GAS["transfer"],
            "chainId": self.deployment.chain_id,
        }
        return self._send(tx, f"send {value} wei to {to}")


def _plain(args: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, bytes | bytearray):
            out[key] = "0x" + bytes(value).hex()
        elif isinstance(value, list | tuple):
            out[key] = [("0x" + bytes(v).hex()) if isinstance(v, bytes | bytearray) else v for v in value]
        else:
            out[key] = value
    return out


def wait_for_rpc(url: str, timeout: float = 10.0) -> Web3:
    """A web3 connected to `url`, once it answers."""
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 30}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            w3.eth.chain_id  # noqa: B018
            return w3
        except (requests.ConnectionError, requests.Timeout, OSError):
            if time.monotonic() > deadline:
                raise ChainUnreachable(
                    f"Cannot reach the chain at {url}; check that the node is running and --rpc-url is right."
                ) from None
            time.sleep(0.05)
