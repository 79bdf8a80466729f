"""Commitments of the contribution scheme (pure functions of field elements).

    identity commitment  = Poseidon(s)                      s: the contributor's ZK identity secret
    record digest        = SHA-256 record id mod r          r: the BN254 scalar field
    record leaf          = Poseidon(identity commitment, digest, salt)
    nullifier            = Poseidon(s, scope)               one per scope (e.g. a reward epoch)

The salt is the record's random scalar stored in the vault, so a leaf reveals nothing about the record even to
someone who can guess it.
"""

from __future__ import annotations

from prover.poseidon import FIELD, poseidon


def identity_commitment(secret: int) -> int:
    return poseidon(secret)


def record_digest(record_id: bytes) -> int:
    if len(record_id) != 32:
        raise ValueError("a record id is 32 bytes (SHA-256)")
    return int.from_bytes(record_id, "big") % FIELD


def record_leaf(commitment: int, digest: int, salt: int) -> int:
    return poseidon(commitment, digest, salt)


def nullifier(secret: int, scope: int) -> int:
    return poseidon(secret, scope)
