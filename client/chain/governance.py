"""Protocol governance and anonymous member polls on chain, over a `Web3Chain`: OpenZeppelin's Governor (proposals
numbered 1, 2, 3...), its TimelockController and the ERC20Votes token (contracts/src/Governance.sol), and
`MemberPolls` (contracts/src/MemberPolls.sol), in the plain values of `client.chain.types`.

What a proposal can change is `GOVERNED`: the ledger's batch stake floor and challenge period, a Datanet's
priority in the registry; each is one call the timelock makes once the proposal has passed and waited.

A poll vote is sent by whichever account carries it (`cast_poll_vote` on a client of a fresh key): the proof, not
the sender, says that a member voted. Building that proof is `client/app/governance.py`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from eth_utils.address import to_checksum_address
from web3 import Web3

from client.chain.errors import ChainError, NotDeployed
from client.chain.types import GOVERNED, PROPOSAL_STATES, PollInfo, ProposalInfo, TxResult
from client.chain.web3_chain import Web3Chain, proof_words

Support = Literal["against", "for", "abstain"]
SUPPORT: tuple[Support, ...] = ("against", "for", "abstain")  # the Governor's vote types, in order

GAS = {
    "delegate": 150_000,
    "propose": 400_000,
    "castVote": 200_000,
    "queue": 250_000,
    "execute": 250_000,
    "createPoll": 120_000,
    "createPollOption": 50_000,
    "enrol": 1_600_000,  # a leaf of the depth-20 contributor tree: 20 Poseidon calls
    "setEnrolment": 80_000,
    "vote": 400_000,  # the membership proof's pairing check
}


class GovernanceClient:
    """The Governor, timelock, token and polls of `chain`'s deployment."""

    def __init__(self, chain: Web3Chain) -> None:
        d = chain.deployment
        if not d.has_governance:
            raise NotDeployed(
                f"The contracts on {chain.rpc} were deployed before governance and polls existed; deploy them again "
                "(on the embedded devnet: `datanet chain reset`)."
            )
        self.chain = chain
        self.token = chain.contract("DatanetToken", d.token)
        self.governor = chain.contract("DatanetGovernor", d.governor, watch=True)
        self.timelock = chain.contract("TimelockController", d.timelock, watch=True)
        self.polls = chain.contract("MemberPolls", d.polls, watch=True)

    # --- voting power ---------------------------------------------------------------------------------------

    def power(self, account: str | None = None) -> dict[str, Any]:
        """An account's token balance, voting power and delegate (an undelegated balance has no votes)."""
        who = to_checksum_address(account or self.chain.address)
        delegate = self.chain.view(self.token.functions.delegates(who), "read a delegate")
        return {
            "account": who,
            "balance": int(self.chain.view(self.token.functions.balanceOf(who), "read a balance")),
            "votes": int(self.chain.view(self.token.functions.getVotes(who), "read voting power")),
            "delegate": None if int(delegate, 16) == 0 else delegate,
        }

    def delegate(self, to: str | None = None) -> TxResult:
        target = to_checksum_address(to or self.chain.address)
        return self.chain.transact(self.token.functions.delegate(target), "delegate votes", gas=GAS["delegate"])

    def send_tokens(self, to: str, amount: int) -> TxResult:
        fn = self.token.functions.transfer(to_checksum_address(to), amount)
        return self.chain.transact(fn, "send governance tokens", gas=100_000)

    # --- parameters -----------------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The Governor's and the timelock's settings, and the governed parameters' current values."""
        g, view = self.governor.functions, self.chain.view
        return {
            "voting_delay": int(view(g.votingDelay(), "read the voting delay")),
            "voting_period": int(view(g.votingPeriod(), "read the voting period")),
            "proposal_threshold": int(view(g.proposalThreshold(), "read the proposal threshold")),
            "quorum_percent": int(view(g.quorumNumerator(), "read the quorum")),
            "timelock_delay": int(view(self.timelock.functions.getMinDelay(), "read the timelock delay")),
            "token_supply": int(view(self.token.functions.totalSupply(), "read the token supply")),
            "batch_stake_floor": self.value("batch-stake-floor"),
            "challenge_period": self.value("challenge-period"),
        }

    def value(self, parameter: str, datanet_id: int | None = None) -> int:
        """A governed parameter's current value."""
        if parameter == "batch-stake-floor":
            return int(self.chain.view(self.chain.ledger.functions.batchStakeFloor(), "read the stake floor"))
        if parameter == "challenge-period":
            return int(self.chain.view(self.chain.ledger.functions.challengePeriod(), "read the challenge period"))
        if parameter == "priority":
            fn = self.chain.registry.functions.priority(_needs_datanet(parameter, datanet_id))
            return int(self.chain.view(fn, "read a priority"))
        raise ChainError(_unknown(parameter))

    def _change(self, parameter: str, value: int, datanet_id: int | None) -> tuple[str, bytes]:
        """(target, calldata) of the call that sets `parameter` to `value`."""
        if parameter not in GOVERNED:
            raise ChainError(_unknown(parameter))
        if value < 0:
            raise ChainError(f"The new {parameter} must not be negative.")
        contract_name, setter, _unit = GOVERNED[parameter]
        contract = self.chain.ledger if contract_name == "ledger" else self.chain.registry
        args: list[int] = [value] if parameter != "priority" else [_needs_datanet(parameter, datanet_id), value]
        data = contract.encode_abi(setter, args=args)
        return str(contract.address), bytes.fromhex(data[2:])

    def _decode(self, target: str, calldata: bytes) -> dict[str, Any] | None:
        for contract in (self.chain.ledger, self.chain.registry):
            if to_checksum_address(target) != contract.address:
                continue
            try:
                fn, args = contract.decode_function_input(calldata)
            except ValueError:
                return None
            for parameter, (_c, setter, _unit) in GOVERNED.items():
                if fn.fn_name == setter:
                    values = list(args.values())
                    if parameter == "priority":
                        return {"parameter": parameter, "datanet_id": int(values[0]), "value": int(values[1])}
                    return {"parameter": parameter, "value": int(values[0])}
        return None

    # --- proposals ------------------------------------------------------------------------------------------

    def propose(self, parameter: str, value: int, description: str, datanet_id: int | None = None) -> ProposalInfo:
        """Propose setting `parameter` to `value`; the proposal's id is in the answer."""
        target, data = self._change(parameter, value, datanet_id)
        fn = self.governor.functions.propose([target], [0], [data], description)
        result = self.chain.transact(fn, "propose a change", gas=GAS["propose"])
        created = next(e for e in result.events if e["event"] == "ProposalCreated")
        return self.proposal(int(created["proposalId"]))

    def _created(self, proposal_id: int | None = None) -> list[Any]:
        event = self.governor.events.ProposalCreated()
        logs = self.chain.call_node(lambda: event.get_logs(from_block=self.chain.deployment.block))
        return [log for log in logs if proposal_id is None or int(log["args"]["proposalId"]) == proposal_id]

    def proposals(self) -> list[ProposalInfo]:
        return [self._info(log) for log in self._created()]

    def proposal(self, proposal_id: int) -> ProposalInfo:
        found = self._created(proposal_id)
        if not found:
            raise ChainError(f"There is no proposal {proposal_id} on this chain; `datanet gov list` lists them.")
        return self._info(found[0])

    def _info(self, log: Any) -> ProposalInfo:
        args = log["args"]
        pid = int(args["proposalId"])
        g, view = self.governor.functions, self.chain.view
        against, for_, abstain = view(g.proposalVotes(pid), "read a proposal's votes")
        now = int(view(g.clock(), "read the clock"))
        snapshot = int(args["voteStart"])
        actions = []
        for target, value, calldata in zip(args["targets"], args["values"], args["calldatas"], strict=True):
            action: dict[str, Any] = {"target": target, "value": int(value), "calldata": "0x" + bytes(calldata).hex()}
            change = self._decode(target, bytes(calldata))
            if change is not None:
                action["change"] = change
            actions.append(action)
        return ProposalInfo(
            id=pid,
            proposer=args["proposer"],
            description=args["description"],
            actions=actions,
            state=PROPOSAL_STATES[int(view(g.state(pid), "read a proposal's state"))],
            vote_start=snapshot,
            vote_end=int(args["voteEnd"]),
            votes_for=int(for_),
            votes_against=int(against),
            votes_abstain=int(abstain),
            quorum=int(view(g.quorum(min(snapshot, now - 1)), "read the quorum")),
            eta=int(view(g.proposalEta(pid), "read a proposal's eta")),
            block=int(log["blockNumber"]),
        )

    def vote(self, proposal_id: int, support: Support, reason: str = "") -> TxResult:
        fn = self.governor.functions.castVoteWithReason(proposal_id, SUPPORT.index(support), reason)
        return self.chain.transact(fn, f"vote on proposal {proposal_id}", gas=GAS["castVote"])

    def _operation(self, proposal_id: int) -> tuple[list[str], list[int], list[bytes], bytes]:
        found = self._created(proposal_id)
        if not found:
            raise ChainError(f"There is no proposal {proposal_id} on this chain; `datanet gov list` lists them.")
        args = found[0]["args"]
        description_hash = Web3.keccak(text=args["description"])
        return list(args["targets"]), list(args["values"]), [bytes(c) for c in args["calldatas"]], description_hash

    def queue(self, proposal_id: int) -> TxResult:
        fn = self.governor.functions.queue(*self._operation(proposal_id))
        return self.chain.transact(fn, f"queue proposal {proposal_id}", gas=GAS["queue"])

    def execute(self, proposal_id: int) -> TxResult:
        fn = self.governor.functions.execute(*self._operation(proposal_id))
        return self.chain.transact(fn, f"execute proposal {proposal_id}", gas=GAS["execute"])

    # --- member polls ---------------------------------------------------------------------------------------

    def create_poll(self, datanet_id: int, question: str, options: Sequence[str], deadline: int) -> PollInfo:
        fn = self.polls.functions.createPoll(datanet_id, question, list(options), deadline)
        gas = GAS["createPoll"] + GAS["createPollOption"] * len(options) + 40 * len(question.encode())
        result = self.chain.transact(fn, f"open a poll in Datanet {datanet_id}", gas=gas)
        created = next(e for e in result.events if e["event"] == "PollCreated")
        return self.poll(int(created["pollId"]))

    def poll(self, poll_id: int) -> PollInfo:
        info, counts = self.chain.view(self.polls.functions.poll(poll_id), f"read poll {poll_id}")
        datanet_id, deadline, creator, votes, question, options = info
        now = int(self.chain.call_node(lambda: self.chain.w3.eth.get_block("latest"))["timestamp"])
        return PollInfo(
            id=poll_id,
            datanet_id=int(datanet_id),
            creator=creator,
            question=question,
            options=list(options),
            deadline=int(deadline),
            votes=int(votes),
            tally=[int(c) for c in counts],
            open=now <= int(deadline),
        )

    def poll_list(self, datanet_id: int | None = None) -> list[PollInfo]:
        count = int(self.chain.view(self.polls.functions.pollCount(), "count polls"))
        found = [self.poll(i) for i in range(1, count + 1)]
        return [p for p in found if datanet_id is None or p.datanet_id == datanet_id]

    def poll_scope(self, poll_id: int) -> int:
        return int(self.chain.view(self.polls.functions.scope(poll_id), "read a poll's scope"))

    def poll_signal(self, poll_id: int, option: int) -> int:
        return int(self.chain.view(self.polls.functions.signal(poll_id, option), "read a vote's signal"))

    def cast_poll_vote(self, poll_id: int, option: int, root: int, nullifier: int, proof: bytes) -> TxResult:
        fn = self.polls.functions.vote(poll_id, option, root, nullifier, proof_words(proof))
        return self.chain.transact(fn, f"vote in poll {poll_id}", gas=GAS["vote"])

    def contributors(self, datanet_id: int) -> list[int]:
        """The Datanet's contributor tree's leaves, in order (from the ledger's ContributorAdded events)."""
        event = self.chain.ledger.events.ContributorAdded()
        logs = self.chain.call_node(
            lambda: event.get_logs(from_block=self.chain.deployment.block, argument_filters={"datanetId": datanet_id})
        )
        leaves = sorted((int(log["args"]["index"]), int(log["args"]["identityCommitment"])) for log in logs)
        if [index for index, _ in leaves] != list(range(len(leaves))):
            raise ChainError(f"The chain's log of Datanet {datanet_id}'s contributor tree has gaps; try again later.")
        return [leaf for _, leaf in leaves]

    def enrol(self, datanet_id: int, commitment: int) -> TxResult:
        fn = self.chain.ledger.functions.enrol(datanet_id, commitment)
        return self.chain.transact(fn, f"enrol in Datanet {datanet_id}'s polls", gas=GAS["enrol"])

    def set_enrolment(self, datanet_id: int, open_: bool) -> TxResult:
        fn = self.chain.ledger.functions.setEnrolment(datanet_id, open_)
        return self.chain.transact(fn, f"change Datanet {datanet_id}'s enrolment", gas=GAS["setEnrolment"])

    def enrolment_open(self, datanet_id: int) -> bool:
        return bool(self.chain.view(self.chain.ledger.functions.enrolmentOpen(datanet_id), "read the enrolment"))

    def commitment_of(self, datanet_id: int, account: str | None = None) -> int:
        who = to_checksum_address(account or self.chain.address)
        return int(self.chain.view(self.chain.ledger.functions.commitmentOf(datanet_id, who), "read a commitment"))


def _needs_datanet(parameter: str, datanet_id: int | None) -> int:
    if datanet_id is None:
        raise ChainError(f"A change of {parameter} names its Datanet.")
    return datanet_id


def _unknown(parameter: str) -> str:
    return f"{parameter!r} is not a governed parameter; choose one of {', '.join(GOVERNED)}."
