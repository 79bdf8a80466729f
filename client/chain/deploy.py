"""Deploying the contracts (the two Groth16 verifiers, Poseidon, the governance token, timelock and Governor, the
registry, the ledger, the two proof-check wrappers and the member polls) from one account, in one order, each
receipt awaited, into a `Deployment` that says where they are and from which block; and reading a saved
deployment back (`Deployment.to_json` writes it). `session.py` decides when to deploy (the devnet on first use,
`datanet chain deploy`) and where the record is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3

from client.chain import artifacts
from client.chain.errors import ChainError
from client.chain.types import PRODUCTION_GOVERNANCE, Deployment, GovernanceParams
from client.chain.web3_chain import RECEIPT_TIMEOUT

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


def deploy(
    w3: Web3,
    private_key: bytes,
    *,
    challenge_period: int = 3 * 24 * 3600,
    governance: GovernanceParams = PRODUCTION_GOVERNANCE,
) -> Deployment:
    """Deploy everything from `private_key`'s account, which receives the governance token's supply. The
    timelock ends up administering itself: the Governor proposes and cancels, anyone executes, and the deployer
    gives its admin role up before this returns."""
    account = Account.from_key(private_key)
    chain_id = w3.eth.chain_id
    nonce = int(w3.eth.get_transaction_count(account.address, "pending"))
    start_block = w3.eth.block_number

    def send(tx: dict[str, Any], what: str) -> Any:
        nonlocal nonce
        signed = account.sign_transaction({**tx, "nonce": nonce, "chainId": chain_id})
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        nonce += 1
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT, poll_latency=0.05)
        if receipt["status"] != 1:
            raise ChainError(f"{what} failed (transaction {HexBytes(tx_hash).to_0x_hex()}).")
        return receipt

    def create(name: str, *args: Any) -> str:
        compiled = artifacts.contract(name)
        factory = w3.eth.contract(abi=compiled.abi, bytecode=compiled.bytecode)
        tx = factory.constructor(*args).build_transaction({"from": account.address, "nonce": 0, "gas": 6_000_000})
        receipt = send(dict(tx), f"Deploying {name}")
        if not receipt["contractAddress"]:
            raise ChainError(f"Deploying {name} created no contract.")
        return str(receipt["contractAddress"])

    contribution_verifier = create("ContributionVerifier")
    membership_verifier = create("MembershipVerifier")
    poseidon = create("PoseidonT3")
    g = governance
    token = create("DatanetToken", account.address, g.token_supply)
    timelock = create("TimelockController", g.timelock_delay, [], [ZERO_ADDRESS], account.address)
    governor = create(
        "DatanetGovernor", token, timelock, g.voting_delay, g.voting_period, g.proposal_threshold, g.quorum_percent
    )
    lock = w3.eth.contract(address=Web3.to_checksum_address(timelock), abi=artifacts.contract("TimelockController").abi)

    def call(fn: Any, what: str) -> None:
        send(dict(fn.build_transaction({"from": account.address, "nonce": 0, "gas": 200_000})), what)

    for role in ("PROPOSER_ROLE", "CANCELLER_ROLE"):
        call(lock.functions.grantRole(lock.functions[role]().call(), governor), f"Granting the Governor {role}")
    call(lock.functions.renounceRole(lock.functions.DEFAULT_ADMIN_ROLE().call(), account.address), "Renouncing admin")
    registry = create("DatanetRegistry", timelock)
    ledger = create("ContributionLedger", registry, contribution_verifier, poseidon, challenge_period, timelock)
    return Deployment(
        chain_id=chain_id,
        registry=registry,
        ledger=ledger,
        contribution_check=create("ContributionProofCheck", contribution_verifier),
        membership_check=create("MembershipProofCheck", membership_verifier),
        block=start_block,
        token=token,
        timelock=timelock,
        governor=governor,
        polls=create("MemberPolls", registry, ledger, membership_verifier),
    )


def load_deployment(path: Path) -> Deployment | None:
    """The deployment saved at `path`, or None if there is none."""
    try:
        return Deployment.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
