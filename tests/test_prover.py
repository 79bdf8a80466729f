"""Groth16 proofs with the committed ceremony artefacts: valid proofs verify, every tampering fails, each bad
input gets its own error, and snarkjs (the reference) accepts our proofs with the committed verification key.

The whole module runs once per prover (prover.groth16.BACKENDS: the native default and the groth16py fallback)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from prover import artifacts, groth16
from prover.commitment import identity_commitment, nullifier, record_digest
from prover.errors import ArtifactMismatch, CountMismatch, NotInTree, ProofInvalid, WrongSecret
from prover.merkle import IncrementalTree
from prover.poseidon import FIELD
from prover.proofs import (
    BATCH_CAPACITY,
    MEMBERSHIP_DEPTH,
    BatchRecord,
    ContributionProof,
    Proof,
    batch_root,
    prove_contribution,
    prove_membership,
    verify,
)
from prover.snarkjs_format import from_snarkjs, to_snarkjs

SNARKJS = Path(__file__).resolve().parent.parent / "prover" / "js" / "node_modules" / ".bin" / "snarkjs"
SECRET = 0x1234567890ABCDEF
RECIPIENT = 0xD995CB72AA6F5F4C9AC1ECD00AA06C0943DC022B
DATANET = 42


def _records(n: int) -> list[BatchRecord]:
    return [BatchRecord(record_digest(bytes([i]) * 32), 1000 + i) for i in range(n)]


@pytest.fixture(scope="module", params=groth16.BACKENDS, autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[groth16.Backend]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATANET_PROVER", request.param)
        assert groth16.backend("contribution") == request.param
        yield request.param


@pytest.fixture(scope="module")
def contribution(backend: groth16.Backend) -> ContributionProof:
    return prove_contribution(
        secret=SECRET,
        commitment=identity_commitment(SECRET),
        records=_records(5),
        datanet_id=DATANET,
        recipient=RECIPIENT,
    )


@pytest.fixture(scope="module")
def tree() -> IncrementalTree:
    members = IncrementalTree(MEMBERSHIP_DEPTH)
    for other in (11, 22, 33):
        members.insert(identity_commitment(other))
    members.insert(identity_commitment(SECRET))
    return members


@pytest.fixture(scope="module")
def membership(backend: groth16.Backend, tree: IncrementalTree) -> Proof:
    return prove_membership(secret=SECRET, member=tree.proof(3), root=tree.root, scope=7, recipient=RECIPIENT)


def test_contribution_proof_verifies_with_the_expected_public_signals(contribution: ContributionProof) -> None:
    commitment = identity_commitment(SECRET)
    assert contribution.count == 5
    assert contribution.batch_root == batch_root(commitment, _records(5))
    assert contribution.proof.public_signals == (contribution.batch_root, 5, commitment, DATANET, RECIPIENT)
    assert len(contribution.proof.proof) == 256
    assert verify(contribution.proof)


@pytest.mark.parametrize("position", range(5))
def test_changing_any_public_signal_fails(contribution: ContributionProof, position: int) -> None:
    signals = list(contribution.proof.public_signals)
    signals[position] = (signals[position] + 1) % FIELD
    assert not verify(Proof("contribution", contribution.proof.proof, tuple(signals)))


@pytest.mark.parametrize("offset", [0, 40, 70, 130, 200, 255])
def test_changing_any_proof_byte_fails(contribution: ContributionProof, offset: int) -> None:
    raw = bytearray(contribution.proof.proof)
    raw[offset] ^= 0x01
    assert not verify(Proof("contribution", bytes(raw), contribution.proof.public_signals))


def test_a_proof_cannot_be_reused_for_another_circuit(contribution: ContributionProof) -> None:
    assert not verify(Proof("membership", contribution.proof.proof, contribution.proof.public_signals[:4]))


def test_bad_contribution_inputs_get_specific_errors() -> None:
    commitment = identity_commitment(SECRET)
    with pytest.raises(WrongSecret):
        prove_contribution(secret=SECRET + 1, commitment=commitment, records=_records(2), datanet_id=1, recipient=1)
    with pytest.raises(CountMismatch, match="1 to 16"):
        prove_contribution(secret=SECRET, commitment=commitment, records=[], datanet_id=1, recipient=1)
    with pytest.raises(CountMismatch):
        prove_contribution(
            secret=SECRET, commitment=commitment, records=_records(BATCH_CAPACITY + 1), datanet_id=1, recipient=1
        )


def test_a_full_batch_proves(contribution: ContributionProof) -> None:
    full = prove_contribution(
        secret=SECRET,
        commitment=identity_commitment(SECRET),
        records=_records(BATCH_CAPACITY),
        datanet_id=1,
        recipient=2,
    )
    assert full.count == BATCH_CAPACITY and verify(full.proof)


def test_membership_proof_and_its_nullifier(membership: Proof, tree: IncrementalTree) -> None:
    assert membership.public_signals == (tree.root, nullifier(SECRET, 7), 7, RECIPIENT)
    assert verify(membership)
    for position in range(4):
        signals = list(membership.public_signals)
        signals[position] = (signals[position] + 1) % FIELD
        assert not verify(Proof("membership", membership.proof, tuple(signals)))


def test_bad_membership_inputs_get_specific_errors(tree: IncrementalTree) -> None:
    with pytest.raises(WrongSecret):
        prove_membership(secret=SECRET, member=tree.proof(0), root=tree.root, scope=1, recipient=1)
    outsider = IncrementalTree(MEMBERSHIP_DEPTH)
    outsider.insert(identity_commitment(SECRET))
    with pytest.raises(NotInTree, match="not in the contributor tree"):
        prove_membership(secret=SECRET, member=outsider.proof(0), root=tree.root, scope=1, recipient=1)


def test_snarkjs_verifies_our_proofs_with_the_committed_keys(
    contribution: ContributionProof, membership: Proof, tmp_path: Path
) -> None:
    for proof in (contribution.proof, membership):
        folder = tmp_path / proof.circuit
        proof.write(folder)
        assert from_snarkjs(json.loads((folder / "proof.json").read_text())) == proof.proof
        vk = artifacts.load(proof.circuit).verification_key
        ok = subprocess.run(
            [str(SNARKJS), "groth16", "verify", str(vk), str(folder / "public.json"), str(folder / "proof.json")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ok.returncode == 0 and "OK" in ok.stdout, ok.stdout + ok.stderr
        tampered = to_snarkjs(proof.proof)
        tampered["pi_a"][0] = str((int(tampered["pi_a"][0]) + 1) % FIELD)
        (folder / "proof.json").write_text(json.dumps(tampered))
        bad = subprocess.run(
            [str(SNARKJS), "groth16", "verify", str(vk), str(folder / "public.json"), str(folder / "proof.json")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "OK" not in bad.stdout


def test_artifacts_match_their_manifest_and_an_altered_one_is_refused(tmp_path: Path) -> None:
    for circuit in artifacts.CIRCUITS:
        found = artifacts.load(circuit)
        assert found.constraints > 1000 and found.solidity_verifier.exists()
    copy = tmp_path / "artifacts"
    shutil.copytree(artifacts.ROOT, copy)
    zkey = copy / "membership" / "membership.zkey"
    raw = bytearray(zkey.read_bytes())
    raw[len(raw) // 2] ^= 1
    zkey.write_bytes(bytes(raw))
    with pytest.raises(ArtifactMismatch, match="does not match its manifest"):
        artifacts.load("membership", copy)
    (copy / "membership" / "membership.zkey").unlink()
    with pytest.raises(ArtifactMismatch, match="missing"):
        artifacts.load("membership", copy)


def test_malformed_snarkjs_files_are_refused() -> None:
    with pytest.raises(ProofInvalid, match="not a snarkjs Groth16 proof"):
        from_snarkjs({"pi_a": []})
    with pytest.raises(ProofInvalid, match="256 bytes"):
        to_snarkjs(b"short")
