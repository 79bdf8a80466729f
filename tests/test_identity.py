"""The contributor identity: derivations checked independently, backups that round-trip and resist tampering."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from client.errors import IdentityError
from client.identity import Identity, export_backup, import_backup, peer_id_from_ed25519
from tests.conftest import FAST_ARGON2

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58decode(text: str) -> bytes:
    """An independent base58btc decoder (the project only encodes)."""
    number = 0
    for ch in text:
        number = number * 58 + _B58.index(ch)
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def test_peer_id_is_an_identity_multihash_of_the_ed25519_protobuf_key() -> None:
    identity = Identity.generate()
    peer_id = identity.public().peer_id
    assert peer_id.startswith("12D3KooW")  # every Ed25519 peer id does
    raw = _b58decode(peer_id)
    assert raw[:2] == b"\x00\x24"  # identity multihash, 36 bytes
    assert raw[2:6] == b"\x08\x01\x12\x20"  # protobuf: Type=Ed25519, Data=32 bytes
    public = raw[6:]
    Ed25519PublicKey.from_public_bytes(public).verify(
        Ed25519PrivateKey.from_private_bytes(identity.ed25519_seed).sign(b"m"), b"m"
    )


def test_peer_id_rejects_wrong_key_length() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        peer_id_from_ed25519(b"short")


def test_evm_address_matches_the_well_known_vector() -> None:
    # Private key 1 is the textbook secp256k1 example; its address is published widely.
    identity = Identity(b"\x01" * 32, (1).to_bytes(32, "big"), 5)
    assert identity.public().evm_address == "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"


def test_generated_identities_differ_and_repr_hides_secrets() -> None:
    a, b = Identity.generate(), Identity.generate()
    assert a.public() != b.public() and a.zk_secret != b.zk_secret
    assert a.ed25519_seed.hex() not in repr(a) and str(a.zk_secret) not in repr(a)


def test_serialisation_round_trip_and_damage() -> None:
    identity = Identity.generate()
    assert Identity.from_bytes(identity.to_bytes()) == identity
    with pytest.raises(IdentityError, match="damaged"):
        Identity.from_bytes(b'{"ed25519": "00"}')


def test_backup_round_trip_wrong_passphrase_and_tampering() -> None:
    identity = Identity.generate()
    blob = export_backup(identity, "backup words", FAST_ARGON2)
    assert identity.ed25519_seed.hex().encode() not in blob
    assert import_backup(blob, "backup words") == identity
    with pytest.raises(IdentityError, match="passphrase is wrong"):
        import_backup(blob, "backup word")
    doc = json.loads(blob)
    doc["evm_address"] = Identity.generate().public().evm_address  # claims another identity's address
    with pytest.raises(IdentityError, match="passphrase is wrong, or the backup file was altered"):
        import_backup(json.dumps(doc).encode(), "backup words")
    with pytest.raises(IdentityError, match="not a datanet identity backup"):
        import_backup(b'{"format": "something else"}', "x")
    with pytest.raises(IdentityError, match="damaged"):
        import_backup(b"\x00garbage", "x")
