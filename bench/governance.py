"""Benchmark: what governance and anonymous polls cost, in one run (not a test).

- gas of each governance step on anvil (a real node on 127.0.0.1) through the client's own code path: a
  proposal with one action, a vote, queueing and executing it through the timelock;
- gas of a member poll: opening it, enrolling a member, and an anonymous vote (the `membership` proof checked by
  the Solidity verifier in the same transaction), against the reference of a public Governor vote;
- time to prove a poll vote: this project's prover (native) against groth16py (the fallback), warm, median of
  several, and the whole vote through the client (tree from the chain's log, proof, fresh sender funded, sent).

Run: python bench/governance.py [--proofs N]. The last lines are the headline.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # bench/prover.py would shadow prover/
sys.path.insert(0, str(_HERE.parent))

from eth_account import Account  # noqa: E402
from web3.types import RPCEndpoint  # noqa: E402

from client.chain.anvil import ANVIL_KEY, Anvil, running_anvil  # noqa: E402
from client.chain.deploy import deploy  # noqa: E402
from client.chain.governance import GovernanceClient  # noqa: E402
from client.chain.types import DEVNET_GOVERNANCE, TOKEN  # noqa: E402
from client.chain.web3_chain import Web3Chain  # noqa: E402
from prover.commitment import identity_commitment  # noqa: E402
from prover.merkle import IncrementalTree  # noqa: E402
from prover.proofs import MEMBERSHIP_DEPTH, Proof, prove_membership  # noqa: E402


def advance(anvil: Anvil, seconds: int) -> None:
    w3 = anvil.w3
    w3.provider.make_request(RPCEndpoint("evm_increaseTime"), [seconds])
    w3.provider.make_request(RPCEndpoint("evm_mine"), [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proofs", type=int, default=7, help="poll-vote proofs timed per prover")
    args = parser.parse_args()
    g = DEVNET_GOVERNANCE
    r: dict[str, float] = {}
    with running_anvil() as anvil:
        w3 = anvil.w3
        deployment = deploy(w3, ANVIL_KEY, governance=g)
        deployer = Web3Chain(w3, deployment, ANVIL_KEY, rpc=anvil.url)

        def funded() -> Web3Chain:
            key = secrets.token_bytes(32)
            deployer.transfer(Account.from_key(key).address, 10**19)
            return Web3Chain(w3, deployment, key, rpc=anvil.url)

        # --- the Governor: propose, vote, queue, execute ----------------------------------------------------
        voter = funded()
        GovernanceClient(deployer).send_tokens(voter.address, 100_000_000 * TOKEN)
        gov = GovernanceClient(voter)
        r["gas delegate"] = gov.delegate().gas_used
        advance(anvil, 2)
        proposal = gov.propose("batch-stake-floor", 10**15, "Benchmark: raise the batch stake floor")
        r["gas propose"] = _gas_of_proposal(gov, proposal.id)
        advance(anvil, g.voting_delay + 1)
        r["gas vote"] = gov.vote(proposal.id, "for", "").gas_used
        advance(anvil, g.voting_period + 1)
        r["gas queue"] = gov.queue(proposal.id).gas_used
        advance(anvil, g.timelock_delay + 1)
        r["gas execute"] = gov.execute(proposal.id).gas_used

        # --- a member poll: open, enrol, vote anonymously -----------------------------------------------------
        owner = funded()
        net = owner.create_datanet("bench-poll", b"\x00" * 32, "public", "open")
        owner_gov = GovernanceClient(owner)
        owner_gov.set_enrolment(net.id, True)
        secret = secrets.randbelow(2**200)
        r["gas enrol (first leaf)"] = owner_gov.enrol(net.id, identity_commitment(secret)).gas_used
        others = [funded() for _ in range(3)]
        for member in others:
            member.join(net.id)
            last = GovernanceClient(member).enrol(net.id, identity_commitment(secrets.randbelow(2**200)))
        r["gas enrol"] = last.gas_used
        now = w3.eth.get_block("latest")["timestamp"]
        before = owner.w3.eth.block_number
        poll = owner_gov.create_poll(
            net.id, "Share the ICU subset with the consortium?", ["yes", "no", "later"], now + 3600
        )
        r["gas create poll (3 options)"] = _gas_since(owner, before)

        tree = IncrementalTree(MEMBERSHIP_DEPTH)
        for leaf in owner_gov.contributors(net.id):
            tree.insert(leaf)
        scope, signal = owner_gov.poll_scope(poll.id), owner_gov.poll_signal(poll.id, 0)

        def prove_vote() -> tuple[float, Proof]:
            start = time.perf_counter()
            proof = prove_membership(secret=secret, member=tree.proof(0), root=tree.root, scope=scope, recipient=signal)
            return time.perf_counter() - start, proof

        for backend in ("groth16py", "native"):
            os.environ["DATANET_PROVER"] = backend
            prove_vote()  # warm: keys loaded, witness calculator instantiated
            r[f"prove ms {backend}"] = 1000 * statistics.median(prove_vote()[0] for _ in range(args.proofs))
        del os.environ["DATANET_PROVER"]
        _, proof = prove_vote()
        carrier = funded()
        sent = GovernanceClient(carrier).cast_poll_vote(
            poll.id,
            0,
            proof.public_signals[0],
            proof.public_signals[1],
            proof.proof,
        )
        r["gas poll vote"] = sent.gas_used
        assert owner_gov.poll(poll.id).tally == [1, 0, 0]

    print(
        f"governor: delegate {r['gas delegate']:.0f}, propose {r['gas propose']:.0f}, vote {r['gas vote']:.0f}, "
        f"queue {r['gas queue']:.0f}, execute {r['gas execute']:.0f} gas"
    )
    print(
        f"poll: create {r['gas create poll (3 options)']:.0f}, enrol {r['gas enrol']:.0f} "
        f"(first leaf {r['gas enrol (first leaf)']:.0f}), anonymous vote {r['gas poll vote']:.0f} gas"
    )
    print(
        f"poll vote proof: native {r['prove ms native']:.0f} ms, groth16py {r['prove ms groth16py']:.0f} ms "
        f"(median of {args.proofs}, warm)"
    )
    print(f"gas propose: {r['gas propose']:.0f}")
    print(f"gas vote: {r['gas vote']:.0f}")
    print(f"gas poll vote: {r['gas poll vote']:.0f}")
    print(f"ratio poll vote/governor vote gas: {r['gas poll vote'] / r['gas vote']:.2f}")
    print(f"poll vote proof ms: {r['prove ms native']:.0f}")


def _gas_since(chain: Web3Chain, block: int) -> int:
    """Gas of the transactions `chain`'s account sent after `block`."""
    total = 0
    for n in range(block + 1, chain.w3.eth.block_number + 1):
        for tx_hash in chain.w3.eth.get_block(n)["transactions"]:
            tx = chain.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
            if tx["from"] == chain.address:
                total += chain.w3.eth.get_transaction_receipt(tx_hash)["gasUsed"]  # type: ignore[arg-type]
    return total


def _gas_of_proposal(gov: GovernanceClient, proposal_id: int) -> int:
    block = gov.proposal(proposal_id).block
    for tx_hash in gov.chain.w3.eth.get_block(block)["transactions"]:
        receipt = gov.chain.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        if receipt["to"] == gov.governor.address:
            return int(receipt["gasUsed"])
    raise RuntimeError("the proposal's transaction was not found")


if __name__ == "__main__":
    main()
