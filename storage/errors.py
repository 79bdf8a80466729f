"""Errors raised by the vault.

Every message is one sentence a user can act on; the CLI prints it as is.

    StorageError
    ├── VaultNotFound        no vault in this data directory yet
    ├── VaultExists          refusing to create a vault over an existing one
    ├── KeyFileMissing       shard files exist but keys.json is gone
    ├── VaultLocked          no way to unlock (no keyring entry, no passphrase given)
    │   ├── KeyringKeyMissing    the keyring has no entry for this vault
    │   └── KeyringChanged       the keyring backend is not the one the key was stored in
    ├── WrongPassphrase      the passphrase or recovery code does not unwrap the key
    ├── KeyStoreUnavailable  the keyring backend failed or refuses
    ├── ShardUnreadable      the shard file cannot be decrypted with its key (corrupt or replaced)
    ├── ShardNotFound        no Datanet shard of that name
    ├── ShardExists          a Datanet shard of that name exists already
    ├── RecordNotFound       no record with that id
    ├── AmbiguousRecordId    an id prefix matches several records
    └── RecordRejected       a record whose bytes do not hash to its id
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every vault error; str(error) is the sentence to show."""

    exit_code = 1


class VaultNotFound(StorageError):
    pass


class VaultExists(StorageError):
    pass


class KeyFileMissing(StorageError):
    exit_code = 3


class VaultLocked(StorageError):
    exit_code = 3


class KeyringKeyMissing(VaultLocked):
    pass


class KeyringChanged(VaultLocked):
    pass


class WrongPassphrase(StorageError):
    exit_code = 3


class KeyStoreUnavailable(StorageError):
    exit_code = 3


class ShardUnreadable(StorageError):
    exit_code = 3


class ShardNotFound(StorageError):
    pass


class ShardExists(StorageError):
    pass


class RecordNotFound(StorageError):
    pass


class AmbiguousRecordId(StorageError):
    pass


class RecordRejected(StorageError):
    exit_code = 4


class DiskLow(StorageError):
    """A write stopped before it would leave less free space than the configured minimum (its transaction rolled
    back: nothing of it was kept)."""

    exit_code = 8
