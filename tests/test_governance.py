"""Governance and anonymous member polls on chain, on both backends of test_chain.py (the embedded devnet and
anvil): OpenZeppelin's Governor changing the ledger's batch stake floor through the timelock, and a Datanet's
one-member-one-vote poll with real `membership` proofs checked by the Solidity verifier."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from eth_account import Account
from eth_typing import HexStr

from client.chain.governance import GovernanceClient
from client.chain.types import DEVNET_GOVERNANCE, TOKEN
from client.chain.web3_chain import Web3Chain
from prover.commitment import identity_commitment, nullifier
from prover.merkle import IncrementalTree
from prover.proofs import MEMBERSHIP_DEPTH, Proof, prove_membership
from tests.test_chain import ETHER, Backend, backend, refused, submit, unique

__all__ = ["backend"]  # the module-scoped fixture, one devnet and one anvil for this module


def gov(chain: Web3Chain) -> GovernanceClient:
    return GovernanceClient(chain)


def holder(backend: Backend, tokens: int) -> Web3Chain:
    """A funded account holding `tokens` governance tokens, delegated to itself, with the delegation in effect."""
    chain = backend.funded()
    gov(backend.client(backend.deployer)).send_tokens(chain.address, tokens * TOKEN)
    gov(chain).delegate()
    backend.advance(2)  # voting power counts from the next second on
    return chain


def test_a_proposal_changes_the_batch_stake_floor_through_the_timelock(backend: Backend) -> None:
    g = DEVNET_GOVERNANCE
    whale = holder(backend, 100_000_000)  # 10% of the supply: over the 4% quorum alone
    small = holder(backend, 10)  # under the proposal threshold
    assert gov(whale).power() == {
        "account": whale.address,
        "balance": 100_000_000 * TOKEN,
        "votes": 100_000_000 * TOKEN,
        "delegate": whale.address,
    }
    settings = gov(whale).settings()
    assert (settings["voting_period"], settings["timelock_delay"], settings["quorum_percent"]) == (
        g.voting_period,
        g.timelock_delay,
        g.quorum_percent,
    )
    floor = settings["batch_stake_floor"] + 10**15

    contributor = backend.funded()
    net = contributor.create_datanet(unique("gov"), b"\x00" * 32, "public", "open", batch_stake=0)

    refused("GovernorInsufficientProposerVotes", lambda: gov(small).propose("batch-stake-floor", floor, "too small"))
    refused("NotGovernance", lambda: whale.transact(whale.ledger.functions.setBatchStakeFloor(1), "set", gas=90_000))

    proposal = gov(whale).propose("batch-stake-floor", floor, f"Raise the batch stake floor ({unique('p')})")
    # pending until the next block (anvil); the devnet mines one before the read that followed
    assert proposal.state in ("pending", "active") and proposal.proposer == whale.address
    assert proposal.actions[0]["change"] == {"parameter": "batch-stake-floor", "value": floor}
    assert proposal.vote_end - proposal.vote_start == g.voting_period
    assert proposal in gov(small).proposals()

    backend.advance(g.voting_delay + 1)
    assert gov(whale).proposal(proposal.id).state == "active"
    gov(whale).vote(proposal.id, "for", "a floor keeps spam out")
    gov(small).vote(proposal.id, "against")
    refused("GovernorAlreadyCastVote", lambda: gov(whale).vote(proposal.id, "against"))
    counted = gov(whale).proposal(proposal.id)
    assert (counted.votes_for, counted.votes_against) == (100_000_000 * TOKEN, 10 * TOKEN)
    assert counted.quorum == g.token_supply * g.quorum_percent // 100
    refused("GovernorUnexpectedProposalState", lambda: gov(whale).queue(proposal.id))  # still voting

    backend.advance(g.voting_period + 1)
    assert gov(whale).proposal(proposal.id).state == "succeeded"
    late = refused("GovernorUnexpectedProposalState", lambda: gov(small).vote(proposal.id, "for"))
    assert "voting has ended" in str(late)
    gov(small).queue(proposal.id)  # anyone may queue and execute a passed proposal
    queued = gov(whale).proposal(proposal.id)
    assert queued.state == "queued" and queued.eta > 0
    refused("TimelockUnexpectedOperationState", lambda: gov(small).execute(proposal.id))  # before the delay ends
    assert gov(whale).value("batch-stake-floor") == settings["batch_stake_floor"]

    backend.advance(g.timelock_delay + 1)
    executed = gov(small).execute(proposal.id)
    assert any(e["event"] == "BatchStakeFloorChanged" and e["floor"] == floor for e in executed.events)
    assert gov(whale).proposal(proposal.id).state == "executed"
    assert gov(whale).value("batch-stake-floor") == floor

    # The Datanet asks for no stake, but the protocol's floor now holds for every batch.
    stake_low = refused("StakeTooLow", lambda: submit(contributor, net.id, secrets.randbelow(2**128), stake=0))
    assert stake_low.error_args == (floor, 0)
    submit(contributor, net.id, secrets.randbelow(2**128), stake=floor)


@dataclass
class Member:
    chain: Web3Chain
    secret: int

    @property
    def commitment(self) -> int:
        return identity_commitment(self.secret)


def ballot(backend: Backend, member: Member, poll_id: int, option: int) -> Proof:
    """The member's anonymous vote, proven against the Datanet's contributor tree as the chain's log has it."""
    g = gov(member.chain)
    poll = g.poll(poll_id)
    tree = IncrementalTree(MEMBERSHIP_DEPTH)
    for leaf in g.contributors(poll.datanet_id):
        tree.insert(leaf)
    index = g.contributors(poll.datanet_id).index(member.commitment)
    return prove_membership(
        secret=member.secret,
        member=tree.proof(index),
        root=tree.root,
        scope=g.poll_scope(poll_id),
        recipient=g.poll_signal(poll_id, option),
    )


def carrier(backend: Backend) -> Web3Chain:
    """A fresh address funded by the deployer (the devnet's faucet), which carries one vote."""
    key = secrets.token_bytes(32)
    backend.client(backend.deployer).transfer(Account.from_key(key).address, ETHER // 10)
    return backend.client(key)


def cast(backend: Backend, proof: Proof, poll_id: int, option: int) -> str:
    root, null = proof.public_signals[0], proof.public_signals[1]
    return gov(carrier(backend)).cast_poll_vote(poll_id, option, root, null, proof.proof).tx_hash


def test_three_members_vote_anonymously_once_each(backend: Backend) -> None:
    owner = Member(backend.funded(), secrets.randbelow(2**200))
    second = Member(backend.funded(), secrets.randbelow(2**200))
    third = Member(backend.funded(), secrets.randbelow(2**200))
    outsider = Member(backend.funded(), secrets.randbelow(2**200))
    net = owner.chain.create_datanet(unique("consortium"), b"\x00" * 32, "private", "allow-list")
    for m in (second, third):
        owner.chain.set_allowed(net.id, m.chain.address, True)
        m.chain.join(net.id)

    # The owner contributes (its first batch adds its commitment); the others enrol once the owner allows it.
    floor = gov(owner.chain).value("batch-stake-floor")  # raised by the test above when it ran first
    submit(owner.chain, net.id, owner.secret, stake=floor)
    refused("EnrolmentClosed", lambda: gov(second.chain).enrol(net.id, second.commitment))
    refused("NotDatanetOwner", lambda: gov(second.chain).set_enrolment(net.id, True))
    gov(owner.chain).set_enrolment(net.id, True)
    for m in (second, third):
        gov(m.chain).enrol(net.id, m.commitment)
    refused("AlreadyEnrolled", lambda: gov(second.chain).enrol(net.id, identity_commitment(5)))
    refused("NotMember", lambda: gov(outsider.chain).enrol(net.id, outsider.commitment))
    # One account, one leaf: a second identity for the same account cannot contribute a second vote.
    mismatch = refused(
        "CommitmentMismatch", lambda: submit(second.chain, net.id, secrets.randbelow(2**200), stake=floor)
    )
    assert mismatch.error_args == (net.id, second.commitment)
    assert gov(owner.chain).contributors(net.id) == [owner.commitment, second.commitment, third.commitment]

    now = backend.w3.eth.get_block("latest")["timestamp"]
    refused("NotMember", lambda: gov(outsider.chain).create_poll(net.id, "?", ["a", "b"], now + 600))
    refused("BadOptions", lambda: gov(owner.chain).create_poll(net.id, "?", ["only"], now + 600))
    refused("DeadlinePassed", lambda: gov(owner.chain).create_poll(net.id, "?", ["a", "b"], now - 1))
    poll = gov(owner.chain).create_poll(net.id, "Share the ICU subset?", ["yes", "no", "later"], now + 600)
    other = gov(owner.chain).create_poll(net.id, "Another question", ["yes", "no"], now + 600)
    assert (poll.options, poll.tally, poll.open) == (["yes", "no", "later"], [0, 0, 0], True)

    votes = {owner.chain.address: 0, second.chain.address: 0, third.chain.address: 1}
    proofs = {m.chain.address: ballot(backend, m, poll.id, votes[m.chain.address]) for m in (owner, second, third)}
    # A proof is bound to its option and its poll: changed in flight, it does not verify.
    first = proofs[owner.chain.address]
    refused("InvalidProof", lambda: cast(backend, first, poll.id, 1))
    refused("InvalidProof", lambda: cast(backend, first, other.id, 0))
    refused("BadOption", lambda: cast(backend, first, poll.id, 3))
    fake_root = (first.public_signals[0] + 1, *first.public_signals[1:])
    refused("UnknownRoot", lambda: cast(backend, Proof("membership", first.proof, fake_root), poll.id, 0))

    hashes = [cast(backend, proofs[address], poll.id, option) for address, option in votes.items()]
    assert gov(owner.chain).poll(poll.id).tally == [2, 1, 0]
    assert gov(owner.chain).poll(poll.id).votes == 3
    # A second vote by the same member (any option, any root) has the same nullifier.
    again = ballot(backend, second, poll.id, 2)
    assert again.public_signals[1] == nullifier(second.secret, gov(owner.chain).poll_scope(poll.id))
    refused("AlreadyVoted", lambda: cast(backend, again, poll.id, 2))
    # ...but the same member votes in another poll with an unlinkable nullifier.
    other_vote = ballot(backend, second, other.id, 0)
    assert other_vote.public_signals[1] != again.public_signals[1]
    cast(backend, other_vote, other.id, 0)

    # Nothing in a vote's transaction names the member: not its account, not its commitment, not its address as
    # the sender; the carrier was funded by the deployer, never by a member.
    members = {m.chain.address.lower() for m in (owner, second, third)}
    commitments = {f"{m.commitment:064x}" for m in (owner, second, third)}
    for tx_hash in hashes:
        tx = backend.w3.eth.get_transaction(HexStr(tx_hash))
        data = bytes(tx["input"]).hex()
        assert tx["from"].lower() not in members
        assert not any(address[2:] in data for address in members)
        assert not any(c in data for c in commitments)
        assert backend.w3.eth.get_transaction_count(tx["from"]) == 1  # a fresh address, used once
    tally_after = gov(owner.chain).poll(poll.id)

    backend.advance(601)
    assert not gov(owner.chain).poll(poll.id).open
    late = ballot(backend, third, poll.id, 0)  # the deadline is checked before anything else
    refused("PollClosed", lambda: cast(backend, late, poll.id, 0))
    assert gov(owner.chain).poll(poll.id).tally == tally_after.tally
    assert [p.id for p in gov(owner.chain).poll_list(net.id)] == [poll.id, other.id]
