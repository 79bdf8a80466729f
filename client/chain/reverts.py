"""A contract's revert as one sentence a user can act on: `ErrorDecoder` knows every custom error of the
committed contracts (from `artifacts.error_abis()`) plus Solidity's `Error(string)` and `Panic(uint256)`, reads the
revert data web3 attaches to a failed call, and `sentence` turns the decoded error into what happened and what to
do; an error without a sentence of its own is still named, with its arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import function_signature_to_4byte_selector

from client.chain import artifacts
from client.chain.errors import TransactionReverted
from client.chain.types import PROPOSAL_STATES


class ErrorDecoder:
    """Revert data to (error name, arguments), and a failed call to its `TransactionReverted`."""

    def __init__(self) -> None:
        self._errors: dict[bytes, tuple[str, list[str]]] = {}
        for item in artifacts.error_abis():
            types = [i["type"] for i in item["inputs"]]
            signature = f"{item['name']}({','.join(types)})"
            self._errors[function_signature_to_4byte_selector(signature)] = (item["name"], types)
        self._errors[function_signature_to_4byte_selector("Error(string)")] = ("Error", ["string"])
        self._errors[function_signature_to_4byte_selector("Panic(uint256)")] = ("Panic", ["uint256"])

    def decode(self, data: bytes) -> tuple[str, tuple[Any, ...]]:
        found = self._errors.get(data[:4])
        if found is None:
            return ("UnknownError", (data.hex(),))
        name, types = found
        try:
            return name, tuple(abi_decode(types, data[4:]))
        except Exception:  # a selector we know with arguments we cannot read: still name the error
            return name, ()

    def reverted(self, exc: Exception, what: str) -> TransactionReverted:
        """The `TransactionReverted` for a failed call's exception; `what` completes "The chain refused to ..."."""
        data: Any = getattr(exc, "data", None)
        if isinstance(data, dict):
            data = data.get("data")
        raw = b""
        if isinstance(data, str) and data.startswith("0x"):
            raw = bytes.fromhex(data[2:])
        elif isinstance(data, bytes | bytearray):
            raw = bytes(data)
        if raw:
            name, args = self.decode(raw)
        else:
            name, args = "Reverted", ()
        return TransactionReverted(sentence(name, args, what), name, args)


SENTENCES: dict[str, Callable[[tuple[Any, ...]], str]] = {
    "NameTaken": lambda a: f"A Datanet with this name already exists on chain (id {a[0]}); choose another name.",
    "EmptyName": lambda a: "A Datanet needs a name.",
    "PrivateNeedsPolicy": lambda a: "A private Datanet must use the allow-list or stake join policy.",
    "UnknownDatanet": lambda a: f"There is no Datanet {a[0]} on this chain.",
    "NotOwner": lambda a: f"Only the owner of Datanet {a[0]} can change its allow-list.",
    "NotAdmin": lambda a: "Only the registry's admin can do this.",
    "NotAllowed": lambda a: f"{a[1]} is not on Datanet {a[0]}'s allow-list; ask its owner to add it.",
    "AlreadyMember": lambda a: f"This account is already a member of Datanet {a[0]}.",
    "NotMember": lambda a: f"{a[1]} is not a member of Datanet {a[0]}; join it first (or ask its owner to add you).",
    "WrongStake": lambda a: f"Joining needs a stake of exactly {a[0]} wei, not {a[1]}.",
    "StakeTooLow": lambda a: f"This Datanet needs a stake of at least {a[0]} wei with each batch, not {a[1]}.",
    "BadCount": lambda a: f"A batch holds 1 to 16 records, not {a[0]}.",
    "OutOfField": lambda a: "The batch root or identity commitment is not a BN254 field element.",
    "BatchAlreadySubmitted": lambda a: f"Batch {a[0]:#x} was already submitted; a batch counts once.",
    "InvalidProof": lambda a: "The chain rejected the proof: it does not verify for these public values.",
    "TreeFull": lambda a: f"The contributor tree of Datanet {a[0]} is full.",
    "UnknownBatch": lambda a: f"There is no batch {a[0]:#x} on this chain.",
    "NotValidator": lambda a: "Only a validator can flag a batch.",
    "ChallengePeriodOver": lambda a: f"Batch {a[0]:#x} is past its challenge period; it can no longer be flagged.",
    "ChallengePeriodRunning": lambda a: f"Batch {a[0]:#x}'s stake can be withdrawn from timestamp {a[1]}.",
    "BatchSettled": lambda a: f"Batch {a[0]:#x}'s stake was already withdrawn or slashed.",
    "NotContributor": lambda a: f"Only the contributor of batch {a[0]:#x} can withdraw its stake.",
    "AdapterExists": lambda a: f"Adapter {a[0].hex()} is already registered.",
    "BatchNotInDatanet": lambda a: f"Batch {a[0]:#x} is not an unflagged batch of Datanet {a[1]}.",
    "TransferFailed": lambda a: "Sending the refund failed.",
    # Governance (OpenZeppelin's Governor, timelock and token) and our governed setters.
    "NotGovernance": lambda a: "Only the protocol's governance (a proposal executed by the timelock) can change this.",
    "BadPeriod": lambda a: f"A challenge period of {a[0]} seconds is longer than the 90 days allowed.",
    "GovernorInsufficientProposerVotes": lambda a: (
        f"Proposing needs {a[2] / 10**18:,.0f} DNG of votes, but {a[0]} has {a[1] / 10**18:,.0f}; get tokens "
        "delegated to you (`datanet gov delegate`) and propose once that is in a block (votes count from then)."
    ),
    "GovernorUnexpectedProposalState": lambda a: (
        f"Proposal {a[0]} is {_state(a[1])}; this step needs it {' or '.join(_states(a[2]))}"
        + (" (its voting has ended)." if _state(a[1]) in ("defeated", "succeeded", "queued", "executed") else ".")
    ),
    "GovernorNonexistentProposal": lambda a: f"There is no proposal {a[0]}; `datanet gov list` lists them.",
    "GovernorAlreadyCastVote": lambda a: f"{a[0]} has already voted on this proposal; a vote counts once.",
    "GovernorInvalidVoteType": lambda a: "A vote is for, against or abstain.",
    "TimelockUnexpectedOperationState": lambda a: (
        "The timelock has not released this proposal yet (its delay is still running, or it was not queued); "
        "`datanet gov show` says from when it can be executed."
    ),
    "ERC5805FutureLookup": lambda a: f"Voting power at {a[0]} is not known yet (the chain's clock is at {a[1]}).",
    "ERC20InsufficientBalance": lambda a: f"{a[0]} holds {a[1]} governance token units, not the {a[2]} needed.",
    # Member polls and enrolment.
    "CommitmentMismatch": lambda a: (
        f"This account contributes to Datanet {a[0]} under another identity commitment ({a[1]:#x}); one account has "
        "one identity per Datanet (so that each member votes once)."
    ),
    "AlreadyEnrolled": lambda a: f"This account already has its identity in Datanet {a[0]}'s contributor tree.",
    "EnrolmentClosed": lambda a: (
        f"Datanet {a[0]}'s owner does not let members enrol without contributing; submit a batch to join its "
        "contributor tree."
    ),
    "CommitmentTaken": lambda a: f"That identity commitment is already in Datanet {a[0]}'s contributor tree.",
    "NotDatanetOwner": lambda a: f"Only the owner of Datanet {a[0]} can open or close its enrolment.",
    "UnknownPoll": lambda a: f"There is no poll {a[0]} on this chain; `datanet poll list` lists them.",
    "BadOptions": lambda a: f"A poll has 2 to 16 options, not {a[0]}.",
    "DeadlinePassed": lambda a: f"The poll's deadline ({a[0]}) is already past; choose a later one.",
    "PollClosed": lambda a: f"Poll {a[0]} closed at {a[1]}; no vote is counted after its deadline.",
    "BadOption": lambda a: f"Poll {a[0]} has no option {a[1]}; `datanet poll results` lists its options.",
    "UnknownRoot": lambda a: (
        f"The vote in poll {a[0]} is proven against a contributor tree its Datanet never had; prove it again."
    ),
    "AlreadyVoted": lambda a: f"This member has already voted in poll {a[0]}; each member votes once.",
}


def _state(index: Any) -> str:
    return PROPOSAL_STATES[int(index)] if 0 <= int(index) < len(PROPOSAL_STATES) else f"in state {index}"


def _states(bitmap: Any) -> list[str]:
    """OpenZeppelin's `expectedStates`: bit i set for the i-th state."""
    bits = int.from_bytes(bitmap, "big") if isinstance(bitmap, bytes | bytearray) else int(bitmap)
    return [name for i, name in enumerate(PROPOSAL_STATES) if bits >> i & 1] or ["in another state"]


def sentence(error: str, args: tuple[Any, ...], what: str) -> str:
    explain = SENTENCES.get(error)
    if explain is not None:
        try:
            return explain(args)
        except (IndexError, TypeError, ValueError, AttributeError):
            pass
    return f"The chain refused to {what} ({error}{args if args else ''})."
