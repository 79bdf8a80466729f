"""The contribution scheme's commitments, from their definitions."""

from __future__ import annotations

import hashlib

import pytest

from prover.commitment import identity_commitment, nullifier, record_digest, record_leaf
from prover.poseidon import FIELD, poseidon


def test_definitions() -> None:
    secret = 123456789
    commitment = identity_commitment(secret)
    assert commitment == poseidon(secret)
    record_id = hashlib.sha256(b'{"text":"hello"}').digest()
    digest = record_digest(record_id)
    assert digest == int.from_bytes(record_id, "big") % FIELD
    assert record_leaf(commitment, digest, 42) == poseidon(commitment, digest, 42)
    assert nullifier(secret, 7) == poseidon(secret, 7)


def test_salt_and_scope_change_the_output() -> None:
    digest = record_digest(bytes(32))
    assert record_leaf(1, digest, 1) != record_leaf(1, digest, 2)
    assert nullifier(5, 1) != nullifier(5, 2)
    with pytest.raises(ValueError, match="32 bytes"):
        record_digest(b"short")


def test_digest_reduces_ids_above_the_field() -> None:
    top = b"\xff" * 32
    assert record_digest(top) == int.from_bytes(top, "big") - FIELD * (int.from_bytes(top, "big") // FIELD)
    assert record_digest(top) < FIELD
