"""Proving and verifying contributions and memberships: the prover's API, in plain values.

    prove_contribution(secret, commitment, records, datanet_id, recipient) -> ContributionProof
    prove_membership(secret, member_proof, root, scope, recipient)         -> Proof
    verify(proof)                                                          -> bool

Inputs are checked before proving, so each mistake gets its own error (wrong secret, leaf not in the tree,
count out of range), and every proof is verified before it is returned. Proofs travel as snarkjs JSON
(`proof.json`, `public.json`), which any snarkjs-based tool can check.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prover import groth16
from prover.artifacts import Circuit
from prover.commitment import identity_commitment, nullifier, record_leaf
from prover.errors import CountMismatch, InputOutOfField, NotInTree, WrongSecret
from prover.merkle import EMPTY_LEAF, MerkleProof, MerkleTree
from prover.merkle import verify as verify_path
from prover.poseidon import FIELD
from prover.snarkjs_format import public_to_json, to_snarkjs

BATCH_LEVELS = 4
BATCH_CAPACITY = 1 << BATCH_LEVELS  # records per contribution proof
MEMBERSHIP_DEPTH = 20  # contributor tree: about a million contributors


@dataclass(frozen=True, slots=True)
class BatchRecord:
    digest: int  # the record id reduced into the field (prover.commitment.record_digest)
    salt: int  # the record's random salt from the vault


@dataclass(frozen=True, slots=True)
class Proof:
    circuit: Circuit
    proof: bytes  # 256 bytes: the calldata of the Solidity verifier
    public_signals: tuple[int, ...]

    def files(self) -> dict[str, bytes]:
        """proof.json and public.json in snarkjs's format."""
        return {
            "proof.json": (json.dumps(to_snarkjs(self.proof), indent=1) + "\n").encode(),
            "public.json": (public_to_json(list(self.public_signals)) + "\n").encode(),
        }

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in self.files().items():
            (folder / name).write_bytes(content)


@dataclass(frozen=True, slots=True)
class ContributionProof:
    proof: Proof
    batch_root: int
    count: int


def _field(name: str, value: int) -> int:
    if not 0 <= value < FIELD:
        raise InputOutOfField(f"The {name} is not a BN254 scalar (0 <= value < r); it cannot enter a proof.")
    return value


def batch_leaves(commitment: int, records: Sequence[BatchRecord]) -> list[int]:
    return [record_leaf(commitment, r.digest, r.salt) for r in records]


def batch_root(commitment: int, records: Sequence[BatchRecord]) -> int:
    return MerkleTree(batch_leaves(commitment, records), BATCH_LEVELS).root


def prove_contribution(
    *, secret: int, commitment: int, records: Sequence[BatchRecord], datanet_id: int, recipient: int
) -> ContributionProof:
    if identity_commitment(_field("identity secret", secret)) != commitment:
        raise WrongSecret("The identity secret does not match the identity commitment; check the identity in use.")
    if not 1 <= len(records) <= BATCH_CAPACITY:
        raise CountMismatch(f"A contribution batch holds 1 to {BATCH_CAPACITY} records, not {len(records)}.")
    for r in records:
        _field("record digest", r.digest)
        _field("record salt", r.salt)
    _field("Datanet id", datanet_id)
    _field("recipient", recipient)
    root = batch_root(commitment, records)
    padding = BATCH_CAPACITY - len(records)
    inputs = {
        "batchRoot": root,
        "count": len(records),
        "identityCommitment": commitment,
        "datanetId": datanet_id,
        "recipient": recipient,
        "secret": secret,
        "digests": [r.digest for r in records] + [0] * padding,
        "salts": [r.salt for r in records] + [0] * padding,
        "filled": [1] * len(records) + [0] * padding,
    }
    public = (root, len(records), commitment, datanet_id, recipient)
    proof = groth16.prove("contribution", inputs, list(public))
    return ContributionProof(Proof("contribution", proof, public), root, len(records))


def prove_membership(*, secret: int, member: MerkleProof, root: int, scope: int, recipient: int) -> Proof:
    commitment = identity_commitment(_field("identity secret", secret))
    if member.leaf != commitment:
        raise WrongSecret("The membership proof is for another identity commitment than this secret's.")
    if len(member.siblings) != MEMBERSHIP_DEPTH:
        raise NotInTree(f"The contributor tree has depth {MEMBERSHIP_DEPTH}, not {len(member.siblings)}.")
    if not verify_path(root, member):
        raise NotInTree("This identity is not in the contributor tree with that root (stale or wrong tree).")
    _field("scope", scope)
    _field("recipient", recipient)
    public = (root, nullifier(secret, scope), scope, recipient)
    inputs = {
        "root": root,
        "nullifier": public[1],
        "scope": scope,
        "recipient": recipient,
        "secret": secret,
        "pathIndices": [(member.index >> level) & 1 for level in range(MEMBERSHIP_DEPTH)],
        "siblings": list(member.siblings),
    }
    return Proof("membership", groth16.prove("membership", inputs, list(public)), public)


def verify(proof: Proof) -> bool:
    """True if the proof verifies for its public signals under the committed verification key."""
    return groth16.verify(proof.circuit, proof.proof, list(proof.public_signals))


__all__ = [
    "BATCH_CAPACITY",
    "EMPTY_LEAF",
    "MEMBERSHIP_DEPTH",
    "BatchRecord",
    "ContributionProof",
    "Proof",
    "batch_root",
    "prove_contribution",
    "prove_membership",
    "verify",
]
