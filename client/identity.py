"""The contributor identity: a libp2p Ed25519 key (the peer id), an EVM account and a ZK identity secret.

All three private parts are created together on first run and kept as one secret in the vault's key hierarchy
(keyring or passphrase-wrapped, never in a config file). `export_backup` seals them under a backup passphrase
(Argon2id + AES-256-GCM) so that `import_backup` can restore the same identity on another machine.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eth_keys.datatypes import PrivateKey as EthPrivateKey

from client.errors import IdentityError
from prover.commitment import identity_commitment
from storage.key_file import Argon2Params, passphrase_key
from storage.shard import BN254_SCALAR_FIELD
from storage.vault import Vault

SECRET_NAME = "identity"  # noqa: S105 - a slot name, not a secret
BACKUP_FORMAT = "datanet-identity-backup/1"
_SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58btc(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, rem = divmod(number, 58)
        out.append(_B58[rem])
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + "".join(reversed(out))


def peer_id_from_ed25519(public_key: bytes) -> str:
    """The libp2p peer id of an Ed25519 public key: base58btc(identity-multihash(protobuf PublicKey))."""
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    protobuf = b"\x08\x01\x12\x20" + public_key  # KeyType = Ed25519 (1), Data = 32 bytes
    return base58btc(b"\x00" + bytes([len(protobuf)]) + protobuf)


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    peer_id: str
    evm_address: str
    identity_commitment: int  # Poseidon(ZK secret): the public face of the ZK identity

    def as_dict(self) -> dict[str, str]:
        return {
            "peer_id": self.peer_id,
            "evm_address": self.evm_address,
            "identity_commitment": str(self.identity_commitment),
        }


@dataclass(frozen=True, slots=True)
class Identity:
    ed25519_seed: bytes
    evm_private_key: bytes
    zk_secret: int

    def __repr__(self) -> str:  # never print private keys by accident
        return f"Identity(peer_id={self.public().peer_id!r})"

    @classmethod
    def generate(cls) -> Identity:
        evm = 0
        while not 0 < evm < _SECP256K1_ORDER:
            evm = int.from_bytes(secrets.token_bytes(32), "big")
        zk = 1 + secrets.randbelow(BN254_SCALAR_FIELD - 1)
        return cls(secrets.token_bytes(32), evm.to_bytes(32, "big"), zk)

    def ed25519_public_key(self) -> bytes:
        key = Ed25519PrivateKey.from_private_bytes(self.ed25519_seed)
        return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def public(self) -> PublicIdentity:
        address = EthPrivateKey(self.evm_private_key).public_key.to_checksum_address()
        return PublicIdentity(
            peer_id_from_ed25519(self.ed25519_public_key()), str(address), identity_commitment(self.zk_secret)
        )

    def to_bytes(self) -> bytes:
        return json.dumps(
            {"ed25519": self.ed25519_seed.hex(), "evm": self.evm_private_key.hex(), "zk": hex(self.zk_secret)}
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Identity:
        try:
            doc = json.loads(data)
            identity = cls(bytes.fromhex(doc["ed25519"]), bytes.fromhex(doc["evm"]), int(doc["zk"], 16))
        except (ValueError, KeyError, TypeError) as exc:
            raise IdentityError("The stored identity is damaged; restore it with `datanet identity import`.") from exc
        if len(identity.ed25519_seed) != 32 or len(identity.evm_private_key) != 32:
            raise IdentityError("The stored identity is damaged; restore it with `datanet identity import`.")
        if not 0 < identity.zk_secret < BN254_SCALAR_FIELD:
            raise IdentityError("The stored identity is damaged; restore it with `datanet identity import`.")
        return identity


def load(vault: Vault) -> Identity | None:
    data = vault.get_secret(SECRET_NAME)
    return None if data is None else Identity.from_bytes(data)


def load_or_create(vault: Vault) -> tuple[Identity, bool]:
    """The vault's identity, created on first use; returns (identity, created)."""
    existing = load(vault)
    if existing is not None:
        return existing, False
    identity = Identity.generate()
    vault.put_secret(SECRET_NAME, identity.to_bytes())
    return identity, True


def _aad(public: dict[str, Any]) -> bytes:
    return f"{BACKUP_FORMAT}|{public['peer_id']}|{public['evm_address']}".encode()  # bind what is shown in clear


def export_backup(identity: Identity, passphrase: str, params: Argon2Params | None = None) -> bytes:
    """An encrypted backup file's bytes (JSON); the public parts stay readable so a user can tell backups apart."""
    params = params or Argon2Params()
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    public = identity.public().as_dict()
    sealed = AESGCM(passphrase_key(passphrase, salt, params)).encrypt(nonce, identity.to_bytes(), _aad(public))
    doc = {
        "format": BACKUP_FORMAT,
        **public,
        "kdf": {
            "name": "argon2id",
            "time_cost": params.time_cost,
            "memory_kib": params.memory_kib,
            "parallelism": params.parallelism,
            "salt": base64.b64encode(salt).decode(),
        },
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    return json.dumps(doc, indent=1).encode()


@dataclass(frozen=True, slots=True)
class ParsedBackup:
    """An identity backup's fields, checked, before any key is derived."""

    params: Argon2Params
    salt: bytes
    nonce: bytes
    sealed: bytes
    aad: bytes
    peer_id: str
    evm_address: str


def parse_backup(data: bytes) -> ParsedBackup:
    """The fields of a backup file, or IdentityError (StorageError for Argon2 parameters out of bounds) in one
    sentence: every shape a changed or foreign file can have ends here, before the KDF runs."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != BACKUP_FORMAT:
            raise IdentityError("This file is not a datanet identity backup.")
        kdf = doc["kdf"]
        if not isinstance(kdf, dict) or not isinstance(doc["peer_id"], str) or not isinstance(doc["evm_address"], str):
            raise IdentityError("This identity backup is damaged or is not a datanet identity backup.")
        return ParsedBackup(
            Argon2Params.read(kdf, "The identity backup"),
            base64.b64decode(kdf["salt"], validate=True),
            base64.b64decode(doc["nonce"], validate=True),
            base64.b64decode(doc["ciphertext"], validate=True),
            _aad(doc),
            doc["peer_id"],
            doc["evm_address"],
        )
    except IdentityError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise IdentityError("This identity backup is damaged or is not a datanet identity backup.") from exc


def import_backup(data: bytes, passphrase: str) -> Identity:
    parsed = parse_backup(data)
    key = passphrase_key(passphrase, parsed.salt, parsed.params)
    try:
        identity = Identity.from_bytes(AESGCM(key).decrypt(parsed.nonce, parsed.sealed, parsed.aad))
    except (InvalidTag, ValueError):
        raise IdentityError("The backup passphrase is wrong, or the backup file was altered.") from None
    public = identity.public()
    if (public.peer_id, public.evm_address) != (parsed.peer_id, parsed.evm_address):
        raise IdentityError("This identity backup is inconsistent (its public part does not match its keys).")
    return identity
