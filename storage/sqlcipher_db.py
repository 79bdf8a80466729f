"""Opening SQLCipher 4 database files with a raw 256-bit key, the project's one cipher profile.

The profile (set on every open, before the first read): raw key (no PBKDF2), 4 KiB pages, HMAC-SHA256 page
authentication (measured faster than the default HMAC-SHA512 with the same security margin for integrity),
WAL, synchronous=NORMAL, a 64 MiB page cache, and SQLCipher's log silenced so that wrong-key noise never
reaches a terminal.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from sqlcipher3 import dbapi2 as sqlcipher

from storage.errors import ShardUnreadable

logger = logging.getLogger(__name__)

PAGE_SIZE = 4096
CACHE_KIB = 65536


def tune(connection: sqlite3.Connection) -> None:
    """Pragmas shared by the encrypted vault and the plain-SQLite reference in bench/vault.py."""
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    connection.execute("PRAGMA foreign_keys = ON")
    connection.execute("PRAGMA busy_timeout = 10000")


def _apply_key(connection: sqlite3.Connection, key: bytes) -> None:
    if len(key) != 32:
        raise ValueError("a shard key is 32 bytes")
    connection.execute("PRAGMA cipher_log_level = NONE")
    connection.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    connection.execute(f"PRAGMA cipher_page_size = {PAGE_SIZE}")
    connection.execute("PRAGMA cipher_hmac_algorithm = HMAC_SHA256")


def create(path: Path, key: bytes) -> sqlite3.Connection:
    """Create a new encrypted database file; refuses to touch an existing one."""
    if path.exists():
        raise FileExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=False)
    connection: sqlite3.Connection = sqlcipher.connect(str(path), isolation_level=None, check_same_thread=False)
    _apply_key(connection, key)
    tune(connection)
    return connection


def open_existing(path: Path, key: bytes) -> sqlite3.Connection:
    """Open an existing encrypted database file; never creates one, never writes before the key checks out.

    Raises ShardUnreadable when the key does not decrypt the file (a corrupt or replaced file: the key itself
    was already authenticated when it was unwrapped from keys.json).
    """
    try:
        connection: sqlite3.Connection = sqlcipher.connect(
            f"file:{path}?mode=rw", uri=True, isolation_level=None, check_same_thread=False
        )
    except sqlcipher.OperationalError as exc:
        raise ShardUnreadable(f"The shard file {path} cannot be opened ({exc}); check that it exists.") from exc
    try:
        _apply_key(connection, key)
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher.DatabaseError as exc:
        connection.close()
        logger.warning("shard %s failed to decrypt: %s", path, exc)
        raise ShardUnreadable(
            f"The shard file {path} cannot be decrypted with its key: it is damaged or was replaced. "
            "It was left untouched; restore it from a backup or re-sync it from peers."
        ) from exc
    tune(connection)
    return connection


def open_or_create(path: Path, key: bytes) -> sqlite3.Connection:
    """The encrypted database at `path`, created when missing (ShardUnreadable when it does not decrypt)."""
    return open_existing(path, key) if path.exists() else create(path, key)


def adopt_plaintext(legacy: Path, path: Path, key: bytes) -> bool:
    """Where an earlier build kept a plaintext SQLite file (`legacy`) and `path` does not exist yet: copy it into a
    new encrypted file with this profile (SQLCipher's `sqlcipher_export`), renamed into place whole, then remove the
    plaintext file and its -wal and -shm. A crash at any point leaves either the plaintext file or the encrypted one
    whole; a plaintext file beside a complete encrypted one is removed. True when it copied one."""
    copied = False
    if not path.exists() and legacy.exists():
        staging = path.with_name(path.name + ".adopting")
        for leftover in _with_sidecars(staging):
            leftover.unlink(missing_ok=True)
        staging.touch(mode=0o600)
        connection = sqlcipher.connect(str(legacy), isolation_level=None)
        try:
            connection.execute(f"ATTACH DATABASE ? AS encrypted KEY \"x'{key.hex()}'\"", (str(staging),))
            connection.execute(f"PRAGMA encrypted.cipher_page_size = {PAGE_SIZE}")
            connection.execute("PRAGMA encrypted.cipher_hmac_algorithm = HMAC_SHA256")
            connection.execute("SELECT sqlcipher_export('encrypted')")
            connection.execute("DETACH DATABASE encrypted")
        finally:
            connection.close()
        os.replace(staging, path)
        copied = True
        logger.info("%s moved into the encrypted %s", legacy.name, path.name)
    if path.exists():
        for old in _with_sidecars(legacy):
            old.unlink(missing_ok=True)
    return copied


def _with_sidecars(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
