"""One contract-test suite, two backends: the embedded devnet (py-evm in process, state in SQLite) and anvil (a
real node on 127.0.0.1, from the pinned npm package). The same `Web3Chain` client code runs against both, with
real Groth16 proofs checked by the snarkjs Solidity verifiers on chain.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from client.chain.anvil import ANVIL_KEY, running_anvil
from client.chain.deploy import deploy
from client.chain.devnet import FAUCET_KEY, Devnet
from client.chain.errors import ChainUnreachable, InsufficientFunds, TransactionReverted, WrongChain
from client.chain.index import EventIndex
from client.chain.types import DEVNET_GOVERNANCE, Deployment
from client.chain.web3_chain import Web3Chain
from prover.commitment import identity_commitment
from prover.merkle import IncrementalTree
from prover.proofs import MEMBERSHIP_DEPTH, BatchRecord, ContributionProof, prove_contribution, prove_membership
from storage.errors import StorageError

CHALLENGE_PERIOD = 3600
ETHER = 10**18
_names = itertools.count()


@dataclass
class Backend:
    name: str
    w3: Web3
    deployment: Deployment
    deployer: bytes
    advance: Callable[[int], None]
    tmp: Path
    clients: dict[bytes, Web3Chain] = field(default_factory=dict)

    def client(self, key: bytes) -> Web3Chain:
        if key not in self.clients:
            self.clients[key] = Web3Chain(self.w3, self.deployment, key, rpc=self.name)
        return self.clients[key]

    def funded(self, ether: int = 10) -> Web3Chain:
        key = secrets.token_bytes(32)
        self.client(self.deployer).transfer(Account.from_key(key).address, ether * ETHER)
        return self.client(key)


@pytest.fixture(scope="module", params=["devnet", "anvil"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "devnet":
        devnet = Devnet(tmp / "devnet.db", secrets.token_bytes(32))

        def travel(seconds: int) -> None:
            devnet.tester.time_travel(devnet.w3.eth.get_block("latest")["timestamp"] + seconds)
            devnet.tester.mine_blocks(1)  # so that reads (eth_call on the latest block) see the new time

        deployment = deploy(devnet.w3, FAUCET_KEY, challenge_period=CHALLENGE_PERIOD, governance=DEVNET_GOVERNANCE)
        yield Backend("devnet", devnet.w3, deployment, FAUCET_KEY, travel, tmp)
        devnet.close()
    else:
        with running_anvil() as anvil:

            def increase(seconds: int) -> None:
                anvil.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
                anvil.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

            deployment = deploy(anvil.w3, ANVIL_KEY, challenge_period=CHALLENGE_PERIOD, governance=DEVNET_GOVERNANCE)
            yield Backend(anvil.url, anvil.w3, deployment, ANVIL_KEY, increase, tmp)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{secrets.token_hex(3)}"


def proved(secret: int, datanet_id: int, recipient: str, count: int = 16, seed: int = 0) -> ContributionProof:
    seed = seed or secrets.randbelow(10**9)
    records = [BatchRecord(seed * 100 + i + 1, secrets.randbelow(2**200)) for i in range(count)]
    return prove_contribution(
        secret=secret,
        commitment=identity_commitment(secret),
        records=records,
        datanet_id=datanet_id,
        recipient=int(recipient, 16),
    )


def submit(chain: Web3Chain, datanet_id: int, secret: int, stake: int = 0, count: int = 16) -> ContributionProof:
    p = proved(secret, datanet_id, chain.address, count)
    chain.submit_batch(datanet_id, p.batch_root, p.count, identity_commitment(secret), p.proof.proof, stake)
    return p


def refused(error: str, action: Callable[[], object]) -> TransactionReverted:
    with pytest.raises(TransactionReverted) as caught:
        action()
    assert caught.value.error == error, str(caught.value)
    assert "\n" not in str(caught.value)
    return caught.value


def flipped(proof: bytes, byte: int) -> bytes:
    tampered = bytearray(proof)
    tampered[byte] ^= 0x01
    return bytes(tampered)


# --- the Solidity verifiers (the Prover issue's on-chain check) ---------------------------------------------


def test_solidity_verifier_accepts_a_contribution_proof_and_rejects_tampering(backend: Backend) -> None:
    chain = backend.client(backend.deployer)
    p = proved(4242, 7, chain.address)
    public = list(p.proof.public_signals)
    assert chain.check_contribution_proof(p.proof.proof, public)
    for byte in (0, 40, 100, 200, 255):
        assert not chain.check_contribution_proof(flipped(p.proof.proof, byte), public)
    for position in range(len(public)):
        changed = list(public)
        changed[position] += 1
        assert not chain.check_contribution_proof(p.proof.proof, changed)


def test_solidity_verifier_accepts_a_membership_proof_and_rejects_tampering(backend: Backend) -> None:
    chain = backend.client(backend.deployer)
    secret = 777
    tree = IncrementalTree(MEMBERSHIP_DEPTH)
    for other in (11, 12, 13):
        tree.insert(identity_commitment(other))
    index = tree.insert(identity_commitment(secret))
    proof = prove_membership(secret=secret, member=tree.proof(index), root=tree.root, scope=5, recipient=0xBEEF)
    public = list(proof.public_signals)
    assert chain.check_membership_proof(proof.proof, public)
    assert not chain.check_membership_proof(flipped(proof.proof, 77), public)
    assert not chain.check_membership_proof(proof.proof, [public[0], public[1], 6, public[3]])  # another epoch


# --- the registry ---------------------------------------------------------------------------------------------


def test_create_datanet_and_read_it_back(backend: Backend) -> None:
    owner = backend.funded()
    name = unique("clinic")
    info = owner.create_datanet(name, b"\x11" * 32, "public", "open", 0, 5)
    assert (info.name, info.owner, info.visibility, info.policy) == (name, owner.address, "public", "open")
    assert info.schema_hash == "0x" + "11" * 32 and info.batch_stake == 5 and info.member_count == 1
    assert owner.find_datanet(name) == info
    assert owner.find_datanet(unique("absent")) is None
    assert info in owner.datanets()
    assert owner.is_member(info.id, owner.address)
    refused("NameTaken", lambda: backend.funded().create_datanet(name, b"\x00" * 32, "public", "open"))
    refused("PrivateNeedsPolicy", lambda: owner.create_datanet(unique("x"), b"\x00" * 32, "private", "open"))


def test_join_policies_and_leave(backend: Backend) -> None:
    owner, alice = backend.funded(), backend.funded()
    open_net = owner.create_datanet(unique("open"), b"\x00" * 32, "public", "open")
    alice.join(open_net.id)
    assert alice.is_member(open_net.id, alice.address)
    refused("AlreadyMember", lambda: alice.join(open_net.id))
    alice.leave(open_net.id)
    assert not alice.is_member(open_net.id, alice.address)

    consortium = owner.create_datanet(unique("consortium"), b"\x00" * 32, "private", "allow-list")
    refused("NotAllowed", lambda: alice.join(consortium.id))
    refused("NotOwner", lambda: alice.set_allowed(consortium.id, alice.address, True))
    owner.set_allowed(consortium.id, alice.address, True)
    alice.join(consortium.id)
    assert owner.datanet(consortium.id).member_count == 2
    owner.set_allowed(consortium.id, alice.address, False)  # removing from the allow-list ends membership
    assert not alice.is_member(consortium.id, alice.address)

    staked = owner.create_datanet(unique("staked"), b"\x00" * 32, "public", "stake", join_stake=ETHER // 10)
    before = backend.w3.eth.get_balance(Web3.to_checksum_address(alice.address))
    joined = alice.join(staked.id)
    assert [e["deposit"] for e in joined.events if e["event"] == "MemberJoined"] == [ETHER // 10]
    left = alice.leave(staked.id)
    assert [e["refund"] for e in left.events if e["event"] == "MemberLeft"] == [ETHER // 10]
    after = backend.w3.eth.get_balance(Web3.to_checksum_address(alice.address))
    assert before - after < ETHER // 100  # the stake came back; only gas was spent
    refused("UnknownDatanet", lambda: alice.join(10**6))


# --- the ledger -----------------------------------------------------------------------------------------------


def test_submit_batch_verifies_the_proof_and_grows_the_contributor_tree(backend: Backend) -> None:
    owner, alice = backend.funded(), backend.funded()
    net = owner.create_datanet(unique("ledger"), b"\x00" * 32, "public", "open", batch_stake=1000)
    alice.join(net.id)
    assert owner.contributor_root(net.id) == (IncrementalTree(MEMBERSHIP_DEPTH).root, 0)

    p = proved(31337, net.id, owner.address, count=11)
    result = owner.submit_batch(net.id, p.batch_root, 11, identity_commitment(31337), p.proof.proof, 1000)
    names = [e["event"] for e in result.events]
    assert names == ["BatchSubmitted", "ContributorAdded"]
    batch = owner.batch(p.batch_root)
    assert batch is not None
    assert (batch.datanet_id, batch.contributor, batch.count, batch.stake) == (net.id, owner.address, 11, 1000)
    assert not batch.flagged and not batch.settled

    submit(alice, net.id, 4040, stake=1000)
    submit(owner, net.id, 31337, stake=1000)  # the same contributor again: the tree does not grow
    expected = IncrementalTree(MEMBERSHIP_DEPTH)
    expected.insert(identity_commitment(31337))
    expected.insert(identity_commitment(4040))
    assert owner.contributor_root(net.id) == (expected.root, 2)
    assert owner.batch(12345) is None


def test_bad_submissions_are_refused_and_change_nothing(backend: Backend) -> None:
    owner, stranger = backend.funded(), backend.funded()
    net = owner.create_datanet(unique("bad"), b"\x00" * 32, "private", "allow-list", batch_stake=500)
    commitment = identity_commitment(99)
    p = proved(99, net.id, owner.address)

    refused("StakeTooLow", lambda: owner.submit_batch(net.id, p.batch_root, 16, commitment, p.proof.proof, 499))
    tampered = flipped(p.proof.proof, 9)
    refused("InvalidProof", lambda: owner.submit_batch(net.id, p.batch_root, 16, commitment, tampered, 500))
    refused("InvalidProof", lambda: owner.submit_batch(net.id, p.batch_root, 15, commitment, p.proof.proof, 500))
    refused("InvalidProof", lambda: owner.submit_batch(net.id, p.batch_root, 16, commitment + 1, p.proof.proof, 500))
    refused("BadCount", lambda: owner.submit_batch(net.id, p.batch_root, 17, commitment, p.proof.proof, 500))
    # Bound to the Datanet and the sender: the same proof elsewhere, or sent by someone else, fails.
    other = owner.create_datanet(unique("other"), b"\x00" * 32, "public", "open")
    refused("InvalidProof", lambda: owner.submit_batch(other.id, p.batch_root, 16, commitment, p.proof.proof, 0))
    owner.set_allowed(net.id, stranger.address, True)
    stranger.join(net.id)
    refused("InvalidProof", lambda: stranger.submit_batch(net.id, p.batch_root, 16, commitment, p.proof.proof, 500))
    stranger.leave(net.id)
    refused("NotMember", lambda: stranger.submit_batch(net.id, p.batch_root, 16, commitment, p.proof.proof, 500))
    refused("UnknownDatanet", lambda: owner.submit_batch(10**6, p.batch_root, 16, commitment, p.proof.proof, 500))
    assert owner.batch(p.batch_root) is None and owner.contributor_root(net.id)[1] == 0

    owner.submit_batch(net.id, p.batch_root, 16, commitment, p.proof.proof, 500)
    again = p.proof.proof
    refused("BatchAlreadySubmitted", lambda: owner.submit_batch(net.id, p.batch_root, 16, commitment, again, 500))


def test_validators_slash_flagged_batches_and_contributors_withdraw_the_rest(backend: Backend) -> None:
    admin, alice, validator = backend.client(backend.deployer), backend.funded(), backend.funded()
    net = alice.create_datanet(unique("stake"), b"\x00" * 32, "public", "open", batch_stake=ETHER // 100)
    bad = submit(alice, net.id, 555, stake=ETHER // 100)
    good = submit(alice, net.id, 555, stake=ETHER // 100)

    refused("NotValidator", lambda: validator.flag_batch(bad.batch_root, b"duplicate"))
    refused("NotAdmin", lambda: validator.set_validator(validator.address, True))
    admin.set_validator(validator.address, True)
    flagged = validator.flag_batch(bad.batch_root, b"duplicate records")
    assert [e["slashed"] for e in flagged.events if e["event"] == "BatchFlagged"] == [ETHER // 100]
    assert alice.batch(bad.batch_root).flagged  # type: ignore[union-attr]
    refused("BatchSettled", lambda: alice.withdraw_stake(bad.batch_root))
    refused("ChallengePeriodRunning", lambda: alice.withdraw_stake(good.batch_root))
    refused("NotContributor", lambda: validator.withdraw_stake(good.batch_root))

    backend.advance(CHALLENGE_PERIOD + 1)
    refused("ChallengePeriodOver", lambda: validator.flag_batch(good.batch_root, b"late"))
    withdrawn = alice.withdraw_stake(good.batch_root)
    assert [e["stake"] for e in withdrawn.events if e["event"] == "StakeWithdrawn"] == [ETHER // 100]
    refused("BatchSettled", lambda: alice.withdraw_stake(good.batch_root))


def test_register_adapter_with_its_batches(backend: Backend) -> None:
    alice = backend.funded()
    net = alice.create_datanet(unique("adapters"), b"\x00" * 32, "public", "open")
    batches = [submit(alice, net.id, 808).batch_root, submit(alice, net.id, 808).batch_root]
    content, base = secrets.token_bytes(32), secrets.token_bytes(32)
    result = alice.register_adapter(content, base, net.id, batches)
    (event,) = [e for e in result.events if e["event"] == "AdapterRegistered"]
    assert event["batchRoots"] == batches and event["contentHash"] == "0x" + content.hex()
    refused("AdapterExists", lambda: alice.register_adapter(content, base, net.id, batches))
    refused("UnknownBatch", lambda: alice.register_adapter(secrets.token_bytes(32), base, net.id, [123]))
    other = alice.create_datanet(unique("elsewhere"), b"\x00" * 32, "public", "open")
    refused("BatchNotInDatanet", lambda: alice.register_adapter(secrets.token_bytes(32), base, other.id, batches))


# --- the client's own errors ----------------------------------------------------------------------------------


def test_an_unfunded_account_gets_insufficient_funds(backend: Backend) -> None:
    poor = backend.client(secrets.token_bytes(32))
    with pytest.raises(InsufficientFunds) as caught:
        poor.create_datanet(unique("poor"), b"\x00" * 32, "public", "open")
    assert poor.address in str(caught.value)


def test_a_deployment_for_another_chain_is_refused(backend: Backend) -> None:
    wrong = dataclasses.replace(backend.deployment, chain_id=backend.deployment.chain_id + 1)
    with pytest.raises(WrongChain, match="serves chain"):
        Web3Chain(backend.w3, wrong, backend.deployer)


def test_receipt_events_go_to_the_clients_own_index(backend: Backend) -> None:
    index = EventIndex(backend.tmp / f"index-{secrets.token_hex(4)}.db", secrets.token_bytes(32))
    key = secrets.token_bytes(32)
    backend.client(backend.deployer).transfer(Account.from_key(key).address, ETHER)
    chain = Web3Chain(backend.w3, backend.deployment, key, rpc=backend.name, index=index)
    net = chain.create_datanet(unique("indexed"), b"\x00" * 32, "public", "open")
    p = submit(chain, net.id, 2024)
    created = index.events(backend.deployment, "DatanetCreated")
    assert [e["id"] for e in created] == [net.id]
    submitted = index.events(backend.deployment, "BatchSubmitted")
    assert [(e["batchRoot"], e["count"]) for e in submitted] == [(p.batch_root, 16)]


# --- devnet and node specifics --------------------------------------------------------------------------------


def test_devnet_state_survives_a_restart(tmp_path: Path) -> None:
    path, key = tmp_path / "chain" / "devnet.db", secrets.token_bytes(32)
    devnet = Devnet(path, key)
    deployment = deploy(devnet.w3, FAUCET_KEY)
    chain = Web3Chain(devnet.w3, deployment, FAUCET_KEY)
    net = chain.create_datanet("survives", b"\x42" * 32, "public", "open")
    p = submit(chain, net.id, 1001)
    block = devnet.w3.eth.block_number
    devnet.close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert b"survives" not in path.read_bytes()  # encrypted: the Datanets of this machine are not on its disk
    with pytest.raises(StorageError, match="cannot be decrypted with its key"):
        Devnet(path, secrets.token_bytes(32))

    reopened = Devnet(path, key)
    chain = Web3Chain(reopened.w3, deployment, FAUCET_KEY)
    assert reopened.w3.eth.block_number == block
    assert chain.find_datanet("survives") == net
    assert chain.batch(p.batch_root) is not None
    again = submit(chain, net.id, 1001)  # and it keeps going: nonces and state continue
    assert chain.batch(again.batch_root) is not None and reopened.w3.eth.block_number > block
    reopened.close()


def test_an_unreachable_node_is_one_clear_error(tmp_path: Path) -> None:
    with running_anvil() as anvil:
        deployment = deploy(anvil.w3, ANVIL_KEY)
        chain = Web3Chain(anvil.w3, deployment, ANVIL_KEY, rpc=anvil.url)
        anvil.process.terminate()
        anvil.process.wait()
        with pytest.raises(ChainUnreachable) as caught:
            chain.create_datanet("gone", b"\x00" * 32, "public", "open")
    assert anvil.url in str(caught.value) and "\n" not in str(caught.value)
