"""keys.json: the vault's key hierarchy, with every secret wrapped (AES-256-GCM), never in the clear.

    master key (random, 256 bits)
    ├── kept in the OS keyring                        (desktops)
    ├── wrapped under Argon2id(passphrase)             (headless machines; optional on desktops)
    └── wrapped under HKDF(recovery code)              (always; the code is shown once)
    secrets wrapped under the master key:
    ├── shard/<uuid>        the raw SQLCipher key of one Datanet shard
    ├── shard/<uuid>/next   a new key while `vault rekey` is in flight
    └── identity            the contributor's private keys

Changing the passphrase re-wraps 32 bytes; rotating a shard key re-encrypts only that shard. Every wrap carries
its purpose and the vault id as associated data, so entries cannot be swapped between slots or vaults.
The file is written atomically (temporary file, fsync, rename) with mode 0600, under an exclusive lock.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage import recovery_code
from storage.errors import StorageError, WrongPassphrase

KEY_FILE_NAME = "keys.json"
FORMAT = 1
KEY_BYTES = 32


# What a stored passphrase box may ask for (the default is 3, 64 MiB, 4): at most about a minute and 2 GiB.
ARGON2_MAX_TIME = 32
ARGON2_MAX_MEMORY_KIB = 2 << 20
ARGON2_MAX_PARALLELISM = 16


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """Argon2id cost; the default takes about 150 ms here (FACTS.md)."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 4

    @classmethod
    def read(cls, doc: dict[str, Any], where: str) -> Argon2Params:
        """The parameters stored in `doc` (keys.json, an identity backup), bounded: a file someone changed must
        not make an unlock take an hour or ask for more memory than a laptop has."""
        try:
            params = cls(int(doc["time_cost"]), int(doc["memory_kib"]), int(doc["parallelism"]))
        except (KeyError, TypeError, ValueError):
            raise StorageError(
                f"{where} is damaged (its Argon2 parameters are missing); restore it from a backup."
            ) from None
        if not (
            1 <= params.time_cost <= ARGON2_MAX_TIME
            and 1 <= params.parallelism <= ARGON2_MAX_PARALLELISM
            and 8 * params.parallelism <= params.memory_kib <= ARGON2_MAX_MEMORY_KIB
        ):
            raise StorageError(
                f"{where} asks for Argon2 parameters out of bounds (time {params.time_cost}, memory "
                f"{params.memory_kib} KiB, parallelism {params.parallelism}); it was changed: restore it from a backup."
            )
        return params


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise StorageError("keys.json is damaged (a wrapped key is not text); restore it from a backup.")
    return base64.b64decode(text)


def _seal(key: bytes, plaintext: bytes, aad: str) -> dict[str, str]:
    nonce = secrets.token_bytes(12)
    return {"nonce": _b64(nonce), "wrapped": _b64(AESGCM(key).encrypt(nonce, plaintext, aad.encode()))}


def _open(key: bytes, box: Any, aad: str) -> bytes:
    if not isinstance(box, dict):
        raise StorageError("keys.json is damaged (a wrapped key is malformed); restore it from a backup.")
    return AESGCM(key).decrypt(_unb64(box.get("nonce")), _unb64(box.get("wrapped")), aad.encode())


def passphrase_key(passphrase: str, salt: bytes, params: Argon2Params) -> bytes:
    return hash_secret_raw(
        passphrase.encode(),
        salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=KEY_BYTES,
        type=Type.ID,
    )


def _recovery_key(entropy: bytes, salt: bytes) -> bytes:
    # The code carries 160 random bits, so a fast KDF is enough.
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=b"datanet recovery").derive(entropy)


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """Hold the data directory's key-file lock (read-modify-write of keys.json by several processes)."""
    fd = os.open(data_dir / ".keys.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_private_file(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Write a file atomically with mode 0600 (temporary file in the same directory, fsync, rename); `data` may
    come in chunks, written as they come (an export of millions of records never sits in memory whole)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in [data] if isinstance(data, bytes) else data:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class KeyFile:
    """The parsed keys.json of one vault. Mutating methods change memory only; `save()` writes."""

    def __init__(self, path: Path, document: dict[str, Any]) -> None:
        self.path = path
        self._doc = document

    # -- creation and persistence ------------------------------------------------------------------

    @classmethod
    def new(cls, data_dir: Path) -> KeyFile:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "vault_id": uuid.uuid4().hex,
            "master": {"verifier": None, "keyring": None, "passphrase": None, "recovery": None},
            "secrets": {},
        }
        return cls(data_dir / KEY_FILE_NAME, doc)

    @classmethod
    def load(cls, data_dir: Path) -> KeyFile:
        path = data_dir / KEY_FILE_NAME
        try:
            doc = json.loads(path.read_bytes())
        except (ValueError, UnicodeDecodeError) as exc:
            raise StorageError(
                f"{path} is damaged (not valid JSON); restore it from a backup, nothing else was changed."
            ) from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("vault_id"), str):
            raise StorageError(
                f"{path} is not a key file this version understands; restore it from a backup or upgrade datanet."
            )
        if not isinstance(doc.get("master"), dict) or not isinstance(doc.get("secrets"), dict):
            raise StorageError(f"{path} is damaged (sections missing); restore it from a backup.")
        return cls(path, doc)

    def save(self) -> None:
        write_private_file(self.path, json.dumps(self._doc, indent=1, sort_keys=True).encode())

    @property
    def vault_id(self) -> str:
        return str(self._doc["vault_id"])

    @property
    def _master(self) -> dict[str, Any]:
        master: dict[str, Any] = self._doc["master"]
        return master

    # -- the master key ------------------------------------------------------------------------------

    def set_verifier(self, master_key: bytes) -> None:
        self._master["verifier"] = _b64(self._verifier(master_key))

    def _verifier(self, master_key: bytes) -> bytes:
        return hmac.new(master_key, f"datanet master verifier {self.vault_id}".encode(), hashlib.sha256).digest()

    def verifies(self, master_key: bytes) -> bool:
        stored = self._master.get("verifier")
        return isinstance(stored, str) and hmac.compare_digest(_unb64(stored), self._verifier(master_key))

    @property
    def keyring_entry(self) -> tuple[str, str] | None:
        """(backend name, entry name) of the keyring slot holding the master key, if one is used."""
        entry = self._master.get("keyring")
        if not isinstance(entry, dict):
            return None
        return str(entry["backend"]), str(entry["name"])

    def set_keyring_entry(self, backend_name: str | None) -> str:
        """Record that the master key is kept in the keyring; returns the entry name to store it under."""
        name = f"vault-{self.vault_id}"
        self._master["keyring"] = None if backend_name is None else {"backend": backend_name, "name": name}
        return name

    @property
    def has_passphrase(self) -> bool:
        return isinstance(self._master.get("passphrase"), dict)

    def wrap_with_passphrase(self, master_key: bytes, passphrase: str, params: Argon2Params) -> None:
        salt = secrets.token_bytes(16)
        key = passphrase_key(passphrase, salt, params)
        box = _seal(key, master_key, f"master/passphrase/{self.vault_id}")
        self._master["passphrase"] = {
            "kdf": "argon2id",
            "time_cost": params.time_cost,
            "memory_kib": params.memory_kib,
            "parallelism": params.parallelism,
            "salt": _b64(salt),
            **box,
        }

    def remove_passphrase(self) -> None:
        self._master["passphrase"] = None

    def unwrap_with_passphrase(self, passphrase: str) -> bytes:
        box = self._master.get("passphrase")
        if not isinstance(box, dict):
            raise WrongPassphrase("This vault has no passphrase; it is unlocked by the keyring or a recovery code.")
        params = Argon2Params.read(box, "keys.json")
        key = passphrase_key(passphrase, _unb64(box["salt"]), params)
        try:
            return _open(key, box, f"master/passphrase/{self.vault_id}")
        except InvalidTag:
            raise WrongPassphrase(
                "The passphrase is wrong; nothing was changed. Try again, or use `datanet vault recover`."
            ) from None

    def wrap_with_recovery_code(self, master_key: bytes, code: str) -> None:
        salt = secrets.token_bytes(16)
        key = _recovery_key(recovery_code.decode(code), salt)
        self._master["recovery"] = {"kdf": "hkdf-sha256", "salt": _b64(salt)} | _seal(
            key, master_key, f"master/recovery/{self.vault_id}"
        )

    def unwrap_with_recovery_code(self, code: str) -> bytes:
        box = self._master.get("recovery")
        if not isinstance(box, dict):
            raise StorageError("keys.json has no recovery slot; restore it from a backup.")
        key = _recovery_key(recovery_code.decode(code), _unb64(box["salt"]))
        try:
            return _open(key, box, f"master/recovery/{self.vault_id}")
        except InvalidTag:
            raise WrongPassphrase(
                "That recovery code belongs to another vault; nothing was changed. Check the code you kept."
            ) from None

    # -- secrets under the master key ---------------------------------------------------------------

    def secret_names(self) -> list[str]:
        return sorted(self._doc["secrets"])

    def has_secret(self, name: str) -> bool:
        return name in self._doc["secrets"]

    def put_secret(self, master_key: bytes, name: str, secret: bytes) -> None:
        self._doc["secrets"][name] = _seal(master_key, secret, f"secret/{self.vault_id}/{name}")

    def get_secret(self, master_key: bytes, name: str) -> bytes | None:
        box = self._doc["secrets"].get(name)
        if box is None:
            return None
        try:
            return _open(master_key, box, f"secret/{self.vault_id}/{name}")
        except InvalidTag:
            raise StorageError(
                f"The wrapped key {name!r} in keys.json was altered and cannot be unwrapped; restore keys.json "
                "from a backup."
            ) from None

    def delete_secret(self, name: str) -> None:
        self._doc["secrets"].pop(name, None)
