"""Governance and member polls as plain calls over the node's chain session (`ChainService`): the protocol's
Governor (status, delegate, propose, list, show, vote, queue, execute) and a Datanet's anonymous polls (create,
list, results, enrol, vote).

An anonymous vote: the Datanet's contributor tree is rebuilt from the chain's log, the identity's `membership`
proof is made for the poll's scope with the option bound as its signal, and the vote is sent from a fresh address
that only a faucet or a payer the user names has funded, so nothing in the transaction leads back to the member's
account or commitment. Whoever watches the network may still see which machine sent it: a relay or Tor is the
answer to that, not this code.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from client.app.chain import ChainService
from client.errors import ClientError

if TYPE_CHECKING:
    from client.chain.governance import GovernanceClient
    from client.chain.session import ChainSession
    from client.chain.types import PollInfo, ProposalInfo

VOTE_FUNDING_GAS = 450_000  # what a fresh address needs for one poll vote (GAS["vote"] and some room)
MAX_QUESTION = 500  # bytes
MAX_OPTION = 100
DURATION = re.compile(r"^(\d+)([smhd]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """ "90", "30m", "2h", "7d" -> seconds."""
    found = DURATION.match(text.strip())
    if found is None or int(found.group(1)) == 0:
        raise ClientError(f"{text!r} is not a duration; write a number of seconds, or e.g. 30m, 2h, 7d.")
    return int(found.group(1)) * UNITS[found.group(2)]


def proposal_json(p: ProposalInfo) -> dict[str, Any]:
    return dataclasses.asdict(p)


def poll_json(p: PollInfo, datanet: str | None = None) -> dict[str, Any]:
    return {**dataclasses.asdict(p), "datanet": datanet}


class GovernanceService:
    def __init__(self, chain: ChainService) -> None:
        self.chain = chain

    def _gov(self, session: ChainSession) -> GovernanceClient:
        from client.chain.governance import GovernanceClient

        return GovernanceClient(session.client)

    def _datanet_id(self, session: ChainSession, name: str) -> int:
        found = session.client.find_datanet(name)
        if found is None:
            raise ClientError(f"There is no Datanet named {name!r} on this chain; `datanet list --chain` lists them.")
        return found.id

    def _names(self, session: ChainSession) -> dict[int, str]:
        return {d.id: d.name for d in session.client.datanets()}

    # --- protocol governance --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self.chain.session() as session:
            g = self._gov(session)
            return {"settings": g.settings(), "power": g.power()}

    def delegate(self, to: str | None = None) -> dict[str, Any]:
        if to is not None and not (to.startswith("0x") and len(to) == 42):
            raise ClientError(f"{to!r} is not an account address (0x followed by 40 hex digits).")
        with self.chain.session() as session:
            g = self._gov(session)
            result = g.delegate(to)
            return {"tx": result.tx_hash, "power": g.power()}

    def propose(self, parameter: str, value: int, description: str, datanet: str | None = None) -> dict[str, Any]:
        if not description.strip():
            raise ClientError("A proposal needs a description: what it changes and why.")
        with self.chain.session() as session:
            datanet_id = None if datanet is None else self._datanet_id(session, datanet)
            if parameter == "priority" and datanet_id is None:
                raise ClientError("A priority proposal names its Datanet (--datanet NAME).")
            proposal = self._gov(session).propose(parameter, value, description, datanet_id)
            return proposal_json(proposal)

    def proposals(self) -> list[dict[str, Any]]:
        with self.chain.session() as session:
            return [proposal_json(p) for p in self._gov(session).proposals()]

    def proposal(self, proposal_id: int) -> dict[str, Any]:
        with self.chain.session() as session:
            return proposal_json(self._gov(session).proposal(proposal_id))

    def vote(self, proposal_id: int, support: str, reason: str = "") -> dict[str, Any]:
        if support not in ("for", "against", "abstain"):
            raise ClientError(f"A vote is for, against or abstain, not {support!r}.")
        with self.chain.session() as session:
            g = self._gov(session)
            result = g.vote(proposal_id, support, reason)  # type: ignore[arg-type]
            return {"proposal": proposal_json(g.proposal(proposal_id)), "tx": result.tx_hash, "support": support}

    def queue(self, proposal_id: int) -> dict[str, Any]:
        with self.chain.session() as session:
            g = self._gov(session)
            result = g.queue(proposal_id)
            return {"proposal": proposal_json(g.proposal(proposal_id)), "tx": result.tx_hash}

    def execute(self, proposal_id: int) -> dict[str, Any]:
        with self.chain.session() as session:
            g = self._gov(session)
            result = g.execute(proposal_id)
            return {"proposal": proposal_json(g.proposal(proposal_id)), "tx": result.tx_hash}

    # --- member polls ---------------------------------------------------------------------------------------

    def poll_create(self, datanet: str, question: str, options: list[str], closes_in: int) -> dict[str, Any]:
        if not question.strip() or len(question.encode()) > MAX_QUESTION:
            raise ClientError(f"A poll's question is 1 to {MAX_QUESTION} bytes.")
        if not 2 <= len(options) <= 16 or any(not o.strip() or len(o.encode()) > MAX_OPTION for o in options):
            raise ClientError(f"A poll has 2 to 16 options, each 1 to {MAX_OPTION} bytes.")
        if len(set(options)) != len(options):
            raise ClientError("A poll's options must differ from each other.")
        with self.chain.session() as session:
            datanet_id = self._datanet_id(session, datanet)
            now = int(session.client.w3.eth.get_block("latest")["timestamp"])
            poll = self._gov(session).create_poll(datanet_id, question, options, now + closes_in)
            return poll_json(poll, datanet)

    def polls(self, datanet: str | None = None) -> list[dict[str, Any]]:
        with self.chain.session() as session:
            datanet_id = None if datanet is None else self._datanet_id(session, datanet)
            names = self._names(session)
            return [poll_json(p, names.get(p.datanet_id)) for p in self._gov(session).poll_list(datanet_id)]

    def poll(self, poll_id: int) -> dict[str, Any]:
        with self.chain.session() as session:
            poll = self._gov(session).poll(poll_id)
            return poll_json(poll, self._names(session).get(poll.datanet_id))

    def enrolment(self, datanet: str, open_: bool) -> dict[str, Any]:
        """The Datanet's owner lets members enrol in its contributor tree without contributing (or stops it)."""
        with self.chain.session() as session:
            datanet_id = self._datanet_id(session, datanet)
            result = self._gov(session).set_enrolment(datanet_id, open_)
            return {"datanet": datanet, "enrolment_open": open_, "tx": result.tx_hash}

    def enrol(self, datanet: str) -> dict[str, Any]:
        """Add this identity's commitment to the Datanet's contributor tree (so it can vote in its polls)."""
        commitment = self.chain.identity.public().identity_commitment
        with self.chain.session() as session:
            datanet_id = self._datanet_id(session, datanet)
            g = self._gov(session)
            if commitment in g.contributors(datanet_id):
                raise ClientError(f"Your identity is already in the contributor tree of Datanet {datanet!r}.")
            result = g.enrol(datanet_id, commitment)
            return {"datanet": datanet, "tx": result.tx_hash}

    def check_option(self, poll_id: int, option: str) -> None:
        """A clear error now for an unknown poll, a closed one or an option it does not have."""
        with self.chain.session() as session:
            poll = self._gov(session).poll(poll_id)
        _votable(poll, option)

    def poll_vote(
        self,
        poll_id: int,
        option: str,
        *,
        payer_key_file: str | None = None,
        progress: Callable[[dict[str, Any]], None] | None = None,
        stop: threading.Event | None = None,
    ) -> dict[str, Any]:
        """Vote `option` (its text or its number, from 1) in poll `poll_id`, anonymously."""
        from eth_account import Account

        from client.chain.governance import GovernanceClient
        from client.chain.web3_chain import Web3Chain
        from prover.merkle import IncrementalTree
        from prover.proofs import MEMBERSHIP_DEPTH, prove_membership

        def said(step: str) -> None:
            if progress is not None:
                progress({"step": step})

        payer = _payer_key(payer_key_file)
        with self.chain.session() as session:
            g = self._gov(session)
            poll = g.poll(poll_id)
            index = _votable(poll, option)
            if session.devnet is None and payer is None:
                raise ClientError(
                    "An anonymous vote is sent from a fresh address, and this chain has no faucet to fund it; name an "
                    "account that is not yours to pay its gas with --payer-key-file FILE."
                )
            said("reading the contributor tree")
            leaves = g.contributors(poll.datanet_id)
            mine = self.chain.identity.public().identity_commitment
            if mine not in leaves:
                raise ClientError(
                    "Your identity is not in the contributor tree of this poll's Datanet; submit a batch to it, or "
                    "enrol where its owner allows it (`datanet poll enrol NAME`)."
                )
            tree = IncrementalTree(MEMBERSHIP_DEPTH)
            for leaf in leaves:
                tree.insert(leaf)
            scope, signal = g.poll_scope(poll_id), g.poll_signal(poll_id, index)
        if stop is not None and stop.is_set():
            return {"poll": poll_id, "stopped": True}
        said("proving membership")
        proof = prove_membership(
            secret=self.chain.identity.zk_secret,
            member=tree.proof(leaves.index(mine)),
            root=tree.root,
            scope=scope,
            recipient=signal,
        )
        root, nullifier = proof.public_signals[0], proof.public_signals[1]
        with self.chain.session() as session:
            g = self._gov(session)
            if bool(g.polls.functions.nullifierUsed(poll_id, nullifier).call()):
                raise ClientError(f"You have already voted in poll {poll_id}; each member votes once.")
            said("funding a fresh address")
            carrier_key = secrets.token_bytes(32)
            carrier = Account.from_key(carrier_key).address
            fees = session.client.w3.eth.get_block("latest").get("baseFeePerGas", 10**9)
            funding = VOTE_FUNDING_GAS * (2 * int(fees) + 10**9)
            if payer is not None:
                Web3Chain(session.client.w3, session.client.deployment, payer, rpc=session.client.rpc).transfer(
                    carrier, funding
                )
            else:  # the devnet's faucet (not `faucet_transfer`, which logs the address it funds)
                from client.chain.devnet import FAUCET_KEY

                Web3Chain(session.client.w3, session.client.deployment, FAUCET_KEY, rpc=session.client.rpc).transfer(
                    carrier, funding
                )
            said("sending the vote")
            sender = Web3Chain(session.client.w3, session.client.deployment, carrier_key, rpc=session.client.rpc)
            result = GovernanceClient(sender).cast_poll_vote(poll_id, index, root, nullifier, proof.proof)
            after = g.poll(poll_id)
        return {
            "poll": poll_id,
            "option": poll.options[index],
            "tx": result.tx_hash,
            "sent_from": carrier,
            "gas": result.gas_used,
            "votes": after.votes,
        }


def _votable(poll: PollInfo, option: str) -> int:
    """The index of `option` in an open poll; a clear error for an option it lacks or a poll that closed."""
    index = _option_index(poll.options, option)
    if not poll.open:
        raise ClientError(f"Poll {poll.id} closed at {poll.deadline}; no vote is counted after its deadline.")
    return index


def _option_index(options: list[str], option: str) -> int:
    if option in options:
        return options.index(option)
    if option.isdigit() and 1 <= int(option) <= len(options):
        return int(option) - 1
    listed = ", ".join(f"{i}. {o}" for i, o in enumerate(options, 1))
    raise ClientError(f"{option!r} is not an option of this poll ({listed}).")


def _payer_key(path: str | None) -> bytes | None:
    if path is None:
        return None
    file = Path(path)
    try:
        text = file.read_text(encoding="ascii").strip()
        if file.stat().st_mode & 0o077:
            raise ClientError(f"{path} can be read by other users; make it private (chmod 600) first.")
        key = bytes.fromhex(text.removeprefix("0x"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise ClientError(f"{path} does not hold a private key (64 hex digits); check --payer-key-file.") from None
    if len(key) != 32:
        raise ClientError(f"{path} does not hold a private key (64 hex digits); check --payer-key-file.")
    return key
