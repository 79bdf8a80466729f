"""The vault: one data directory, its key hierarchy (keys.json) and its encrypted Datanet shards.

    <data dir>/keys.json         wrapped keys (see storage/key_file.py), 0600
    <data dir>/shards/<uuid>.db  one SQLCipher database per Datanet shard, 0600 (names are inside, encrypted)

Unlocking never creates anything: a missing or wrong key, or a keyring whose backend changed, raises a
`VaultLocked`/`WrongPassphrase` error and leaves every file as it was. Only `Vault.create` makes a vault, and it
refuses to run where one (or any shard file) exists.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from storage import key_file, sqlcipher_db
from storage.diskspace import DiskGuard
from storage.errors import (
    KeyFileMissing,
    KeyringChanged,
    KeyringKeyMissing,
    KeyStoreUnavailable,
    ShardExists,
    ShardNotFound,
    ShardUnreadable,
    StorageError,
    VaultExists,
    VaultLocked,
    VaultNotFound,
)
from storage.key_file import Argon2Params, KeyFile
from storage.keystore import KeyStore
from storage.recovery_code import new_recovery_code
from storage.shard import Shard, ShardInfo
from storage.shard_schema import migrate

logger = logging.getLogger(__name__)

PassphraseSource = Callable[[], str | None]
SHARDS_DIR = "shards"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_UNLOCK_HINT = "nothing was changed. Unlock with your recovery code: `datanet vault recover`."


def _describe(backend_name: str) -> str:
    return backend_name.removeprefix("keyring.backends.")


def _no_passphrase() -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class BrokenShard:
    uuid: str
    path: Path
    reason: str


class Vault:
    """An unlocked vault. Holds the master key in memory for the life of the process."""

    def __init__(self, data_dir: Path, master_key: bytes, unlocked_with: str) -> None:
        self.data_dir = data_dir
        self._master_key = master_key
        self.unlocked_with = unlocked_with  # "created" | "keyring" | "passphrase" | "recovery code"
        # Name -> uuid of the shards seen by this process: `open_shard` opens one file when it knows the name,
        # and scans (rebuilding this) only when it does not. In memory only: names never touch the disk in clear.
        self._names: dict[str, str] = {}
        self.disk = DiskGuard()  # free space kept by every shard write ([limits] min_free_mb; set by the client)

    # -- finding, creating, unlocking ---------------------------------------------------------------

    @staticmethod
    def exists(data_dir: Path) -> bool:
        return (data_dir / key_file.KEY_FILE_NAME).exists()

    @staticmethod
    def shard_files(data_dir: Path) -> list[Path]:
        return sorted((data_dir / SHARDS_DIR).glob("*.db"))

    @classmethod
    def _load_key_file(cls, data_dir: Path) -> KeyFile:
        if not cls.exists(data_dir):
            shards = cls.shard_files(data_dir)
            if shards:
                raise KeyFileMissing(
                    f"{data_dir / key_file.KEY_FILE_NAME} is missing but {len(shards)} encrypted shard(s) exist; "
                    "restore keys.json from a backup (nothing was changed, no new vault was created)."
                )
            raise VaultNotFound(f"There is no vault in {data_dir} yet; `datanet init` creates one.")
        return KeyFile.load(data_dir)

    @classmethod
    def create(
        cls,
        data_dir: Path,
        *,
        keystore: KeyStore | None,
        passphrase: str | None,
        argon2: Argon2Params | None = None,
    ) -> tuple[Vault, str]:
        """Create a vault; returns it and its recovery code (show the code once, never store it)."""
        if cls.exists(data_dir):
            raise VaultExists(f"A vault already exists in {data_dir}; it was left as it is.")
        if cls.shard_files(data_dir):
            raise KeyFileMissing(
                f"{data_dir} holds encrypted shards but no keys.json; restore keys.json from a backup "
                "instead of creating a new vault over them."
            )
        if keystore is None and passphrase is None:
            raise VaultLocked(
                "No keyring is available on this machine and no passphrase was given: set DATANET_PASSPHRASE_FILE "
                "(or DATANET_PASSPHRASE), or run the command in a terminal to choose one."
            )
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with key_file.locked(data_dir):
            if cls.exists(data_dir):
                raise VaultExists(f"A vault already exists in {data_dir}; it was left as it is.")
            master_key = secrets.token_bytes(key_file.KEY_BYTES)
            code = new_recovery_code()
            kf = KeyFile.new(data_dir)
            kf.set_verifier(master_key)
            kf.wrap_with_recovery_code(master_key, code)
            if keystore is not None:
                cls._store_in_keyring(kf, keystore, master_key)
            if passphrase is not None:
                kf.wrap_with_passphrase(master_key, passphrase, argon2 or Argon2Params())
            kf.save()
        logger.info("vault created in %s (keyring: %s)", data_dir, keystore is not None)
        return cls(data_dir, master_key, "created"), code

    @staticmethod
    def _store_in_keyring(kf: KeyFile, keystore: KeyStore, master_key: bytes) -> None:
        name = kf.set_keyring_entry(keystore.backend_name)
        keystore.put(name, master_key)
        if keystore.get(name) != master_key:
            raise KeyStoreUnavailable(
                f"The keyring ({_describe(keystore.backend_name)}) did not keep the vault key; "
                "use a passphrase instead with --key-store passphrase."
            )

    @classmethod
    def unlock(
        cls, data_dir: Path, *, keystore: KeyStore | None, passphrase: PassphraseSource = _no_passphrase
    ) -> Vault:
        """Unlock with the keyring, else the passphrase; never creates or changes anything."""
        kf = cls._load_key_file(data_dir)
        failure: VaultLocked | None = None
        entry = kf.keyring_entry
        if entry is not None:
            backend, name = entry
            if keystore is None:
                failure = KeyringChanged(
                    f"The vault key is kept in the keyring {_describe(backend)}, which is not available now "
                    "(no desktop session or D-Bus?)"
                )
            elif keystore.backend_name != backend:
                failure = KeyringChanged(
                    f"The vault key is kept in the keyring {_describe(backend)}, but the keyring in use now is "
                    f"{_describe(keystore.backend_name)}"
                )
            else:
                master_key = keystore.get(name)
                if master_key is not None and kf.verifies(master_key):
                    return cls(data_dir, master_key, "keyring")
                failure = KeyringKeyMissing(
                    "The keyring has no key for this vault (it was deleted or the keyring was reset)"
                    if master_key is None
                    else "The keyring holds a different key under this vault's name"
                )
        if kf.has_passphrase:
            given = passphrase()
            if given is None:
                raise VaultLocked(
                    "This vault is locked by a passphrase: set DATANET_PASSPHRASE_FILE (or DATANET_PASSPHRASE), "
                    "or run the command in a terminal to be asked for it."
                )
            return cls(data_dir, kf.unwrap_with_passphrase(given), "passphrase")
        if failure is None:  # a key file with neither a keyring entry nor a passphrase
            raise VaultLocked(f"This vault has no keyring entry and no passphrase; {_UNLOCK_HINT}")
        raise type(failure)(f"{failure}; {_UNLOCK_HINT}")

    @classmethod
    def recover(
        cls,
        data_dir: Path,
        code: str,
        *,
        keystore: KeyStore | None,
        new_passphrase: str | None,
        argon2: Argon2Params | None = None,
    ) -> Vault:
        """Unlock with the recovery code and store the master key again (keyring and/or a new passphrase)."""
        if keystore is None and new_passphrase is None:
            raise VaultLocked(
                "No keyring is available to store the recovered key: give a new passphrase "
                "(DATANET_PASSPHRASE_FILE, DATANET_PASSPHRASE, or a terminal prompt)."
            )
        with key_file.locked(data_dir):
            kf = cls._load_key_file(data_dir)
            master_key = kf.unwrap_with_recovery_code(code)
            if keystore is not None:
                cls._store_in_keyring(kf, keystore, master_key)
            if new_passphrase is not None:
                kf.wrap_with_passphrase(master_key, new_passphrase, argon2 or Argon2Params())
            kf.save()
        logger.info("vault in %s recovered with its recovery code", data_dir)
        return cls(data_dir, master_key, "recovery code")

    # -- how the master key is kept ------------------------------------------------------------------

    def describe_unlock(self) -> dict[str, object]:
        kf = KeyFile.load(self.data_dir)
        entry = kf.keyring_entry
        return {
            "vault_id": kf.vault_id,
            "keyring": None if entry is None else _describe(entry[0]),
            "passphrase": kf.has_passphrase,
        }

    def set_passphrase(self, passphrase: str | None, argon2: Argon2Params | None = None) -> None:
        """Set or change the passphrase (re-wraps the master key), or remove it (None) if a keyring holds it."""
        with key_file.locked(self.data_dir):
            kf = KeyFile.load(self.data_dir)
            if passphrase is None:
                if kf.keyring_entry is None:
                    raise VaultLocked(
                        "The passphrase is this vault's only unlock method besides the recovery code; "
                        "it was kept. Store the key in a keyring first (`datanet vault passphrase --keyring`)."
                    )
                kf.remove_passphrase()
            else:
                kf.wrap_with_passphrase(self._master_key, passphrase, argon2 or Argon2Params())
            kf.save()

    def use_keyring(self, keystore: KeyStore) -> None:
        """Keep the master key in this keyring from now on (as well as under the passphrase, if any)."""
        with key_file.locked(self.data_dir):
            kf = KeyFile.load(self.data_dir)
            self._store_in_keyring(kf, keystore, self._master_key)
            kf.save()

    def master_key(self) -> bytes:
        """For a process of the node's own that opens shards itself (the control front, client/node/front.py),
        handed over a pipe; never written anywhere."""
        return self._master_key

    # -- secrets ---------------------------------------------------------------------------------------

    def get_secret(self, name: str) -> bytes | None:
        return KeyFile.load(self.data_dir).get_secret(self._master_key, name)

    def put_secret(self, name: str, secret: bytes) -> None:
        with key_file.locked(self.data_dir):
            kf = KeyFile.load(self.data_dir)
            kf.put_secret(self._master_key, name, secret)
            kf.save()

    def key_for(self, name: str) -> bytes:
        """The random 256-bit key kept as the vault secret `name`, made (and saved, before anything is encrypted
        under it) at first use; under the key-file lock, so two processes asking at once get the same key."""
        with key_file.locked(self.data_dir):
            kf = KeyFile.load(self.data_dir)
            key = kf.get_secret(self._master_key, name)
            if key is None:
                key = secrets.token_bytes(32)
                kf.put_secret(self._master_key, name, key)
                kf.save()
        return key

    # -- shards ----------------------------------------------------------------------------------------

    def _shard_path(self, shard_uuid: str) -> Path:
        return self.data_dir / SHARDS_DIR / f"{shard_uuid}.db"

    def _open_by_uuid(self, shard_uuid: str, kf: KeyFile | None = None) -> Shard:
        kf = kf or KeyFile.load(self.data_dir)
        path = self._shard_path(shard_uuid)
        key = kf.get_secret(self._master_key, f"shard/{shard_uuid}")
        if key is None:
            raise ShardNotFound(f"No key for shard {shard_uuid} in keys.json.")
        try:
            connection = sqlcipher_db.open_existing(path, key)
        except ShardUnreadable:
            pending = kf.get_secret(self._master_key, f"shard/{shard_uuid}/next")
            if pending is None:
                raise
            connection = sqlcipher_db.open_existing(path, pending)  # a rekey finished but was not recorded
            self._finish_rekey(shard_uuid, pending)
        try:
            migrate(connection)
            return Shard(connection, Shard.read_info(connection, path), self.disk)
        except BaseException:
            connection.close()
            raise

    def each_shard(self) -> Iterator[Shard | BrokenShard]:
        """Every shard keys.json knows, opened one at a time (the caller closes each), or why it cannot be
        opened. keys.json is read once."""
        kf = KeyFile.load(self.data_dir)
        for name in kf.secret_names():
            if not re.fullmatch(r"shard/[0-9a-f]{32}", name):
                continue
            shard_uuid = name.split("/")[1]
            path = self._shard_path(shard_uuid)
            if not path.exists():
                broken = BrokenShard(shard_uuid, path, "the file is missing; restore it from a backup")
            else:
                try:
                    yield self._open_by_uuid(shard_uuid, kf)
                    continue
                except StorageError as exc:
                    broken = BrokenShard(shard_uuid, path, str(exc))
            logger.warning("shard %s cannot be opened: %s", broken.uuid, broken.reason)
            yield broken

    def scan_shards(self) -> tuple[list[ShardInfo], list[BrokenShard]]:
        """Every shard keys.json knows: the readable ones (by name) and the ones that cannot be opened."""
        infos: list[ShardInfo] = []
        broken: list[BrokenShard] = []
        for item in self.each_shard():
            if isinstance(item, BrokenShard):
                broken.append(item)
            else:
                with item:
                    infos.append(item.info)
        return sorted(infos, key=lambda info: info.name.lower()), broken

    def list_shards(self) -> list[ShardInfo]:
        """The readable shards; one damaged shard never hides the others (see `scan_shards`)."""
        return self.scan_shards()[0]

    def open_shard(self, name: str) -> Shard:
        """The shard named exactly `name` (names are matched exactly: sync admission relies on it; no two shards
        of a vault differ only in case, `create_shard` sees to that). A name this process has seen opens its one
        file; any other (or one that no longer matches: deleted, or another process changed it) scans them all."""
        known = self._names.get(name)
        if known is not None:
            try:
                shard = self._open_by_uuid(known)
            except StorageError:
                shard = None
            if shard is not None and shard.info.name == name:
                return shard
            if shard is not None:
                shard.close()
        self._names.clear()
        broken = 0
        near: str | None = None
        for item in self.each_shard():
            if isinstance(item, BrokenShard):
                broken += 1
                continue
            self._names[item.info.name] = item.info.uuid
            if item.info.name == name:
                return item  # the generator is left unfinished: shards after this one are never opened
            if item.info.name.lower() == name.lower():
                near = item.info.name
            item.close()
        hint = (
            f" ({broken} shard file(s) could not be opened: `datanet vault check` says why)"
            if broken
            else f"; did you mean {near!r}?"
            if near is not None
            else "; `datanet list` shows them"
        )
        raise ShardNotFound(f"There is no Datanet named {name!r} in this vault{hint}.")

    def create_shard(self, name: str, task: str, now_ms: int | None = None) -> Shard:
        if not _NAME.fullmatch(name):
            raise StorageError(
                f"{name!r} is not a valid Datanet name: use up to 64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit."
            )
        if any(info.name.lower() == name.lower() for info in self.list_shards()):
            raise ShardExists(f"A Datanet named {name!r} already exists in this vault.")
        shard_uuid = uuid.uuid4().hex
        key = secrets.token_bytes(key_file.KEY_BYTES)
        self.put_secret(f"shard/{shard_uuid}", key)  # the key is saved before the file exists
        path = self._shard_path(shard_uuid)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        connection = sqlcipher_db.create(path, key)
        Shard.initialise(
            connection,
            uuid=shard_uuid,
            name=name,
            task=task,
            now_ms=int(time.time() * 1000) if now_ms is None else now_ms,
        )
        logger.info("shard %s created", shard_uuid)
        self._names[name] = shard_uuid
        return Shard(connection, Shard.read_info(connection, path), self.disk)

    def rekey_shard(self, name: str) -> None:
        """Rotate a shard's database key. Crash-safe: the new key is recorded before the file changes."""
        shard = self.open_shard(name)
        shard_uuid = shard.info.uuid
        new_key = secrets.token_bytes(key_file.KEY_BYTES)
        self.put_secret(f"shard/{shard_uuid}/next", new_key)
        try:
            shard.rekey(new_key)
        finally:
            shard.close()
        self._finish_rekey(shard_uuid, new_key)
        logger.info("shard %s rekeyed", shard_uuid)

    def _finish_rekey(self, shard_uuid: str, new_key: bytes) -> None:
        with key_file.locked(self.data_dir):
            kf = KeyFile.load(self.data_dir)
            kf.put_secret(self._master_key, f"shard/{shard_uuid}", new_key)
            kf.delete_secret(f"shard/{shard_uuid}/next")
            kf.save()
