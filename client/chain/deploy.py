"""Deploying the contracts (the two Groth16 verifiers, Poseidon, the registry, the ledger and the two proof-check
wrappers) from one account, in one order, each receipt awaited, into a `Deployment` that says where they are and
from which block; and reading a saved deployment back (`Deployment.to_json` writes it). `session.py` decides when
to deploy (the devnet on first use, `datanet chain deploy`) and where the record is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3

from client.chain import artifacts
from client.chain.errors import ChainError
from client.chain.types import Deployment
from client.chain.web3_chain import RECEIPT_TIMEOUT


def deploy(w3: Web3, private_key: bytes, *, challenge_period: int = 3 * 24 * 3600) -> Deployment:
    """Deploy the verifiers, Poseidon, the registry and the ledger from `private_key`'s account."""
    account = Account.from_key(private_key)
    chain_id = w3.eth.chain_id
    nonce = int(w3.eth.get_transaction_count(account.address, "pending"))
    start_block = w3.eth.block_number

    def create(name: str, *args: Any) -> str:
        nonlocal nonce
        compiled = artifacts.contract(name)
        factory = w3.eth.contract(abi=compiled.abi, bytecode=compiled.bytecode)
        tx = factory.constructor(*args).build_transaction(
            {"from": account.address, "nonce": nonce, "gas": 6_000_000, "chainId": chain_id}
        )
        signed = account.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        nonce += 1
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT, poll_latency=0.05)
        if receipt["status"] != 1 or not receipt["contractAddress"]:
            raise ChainError(f"Deploying {name} failed (transaction {HexBytes(tx_hash).to_0x_hex()}).")
        return str(receipt["contractAddress"])

    contribution_verifier = create("ContributionVerifier")
    membership_verifier = create("MembershipVerifier")
    poseidon = create("PoseidonT3")
    registry = create("DatanetRegistry")
    ledger = create("ContributionLedger", registry, contribution_verifier, poseidon, challenge_period)
    return Deployment(
        chain_id=chain_id,
        registry=registry,
        ledger=ledger,
        contribution_check=create("ContributionProofCheck", contribution_verifier),
        membership_check=create("MembershipProofCheck", membership_verifier),
        block=start_block,
    )


def load_deployment(path: Path) -> Deployment | None:
    """The deployment saved at `path`, or None if there is none."""
    try:
        return Deployment.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
