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
}


def sentence(error: str, args: tuple[Any, ...], what: str) -> str:
    explain = SENTENCES.get(error)
    if explain is not None:
        try:
            return explain(args)
        except (IndexError, TypeError, ValueError, AttributeError):
            pass
    return f"The chain refused to {what} ({error}{args if args else ''})."
