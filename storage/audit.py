"""The audit log: what left the machine (records to which peer, proofs and transactions to which chain), append-only
and hash-chained, in its own SQLCipher file (`<data dir>/audit.db`, 0600) under a key kept with the shard keys
(the vault secret "audit"): encrypted like the vault, readable by whoever can unlock it.

Each entry is (seq, at_ms, kind, details) and its hash is SHA-256 over the previous entry's hash and the entry's
canonical JSON; record ids that left with an entry are kept beside it and enter the hash through their digest.
`verify` recomputes the chain: a changed, inserted or removed entry (or id) breaks it at that entry. Cutting the
newest entries off is what a chain alone cannot show: an auditor compares the head an earlier export ended with.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlcipher3 import dbapi2 as sqlcipher

from storage import sqlcipher_db
from storage.errors import StorageError

FILE = "audit.db"
KEY_NAME = "audit"  # the vault secret that holds the log's key (the key itself is random)
GENESIS = bytes(32)  # the "previous hash" of the first entry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    details TEXT NOT NULL,
    ids_sha256 BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS entry_ids (
    seq INTEGER NOT NULL,
    record_id BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entry_ids_seq ON entry_ids (seq);
"""


class AuditError(StorageError):
    pass


@dataclass(frozen=True, slots=True)
class Verified:
    ok: bool
    entries: int
    head: str  # hex hash of the last entry that verified (of the genesis when none did)
    problem: str | None  # the first break, in one sentence


def _ids_digest(ids: Sequence[bytes]) -> bytes:
    return hashlib.sha256(b"".join(ids)).digest()


def _entry_hash(previous: bytes, seq: int, at_ms: int, kind: str, details: str, ids_sha256: bytes) -> bytes:
    canonical = json.dumps(
        {"seq": seq, "at_ms": at_ms, "kind": kind, "details": json.loads(details), "ids_sha256": ids_sha256.hex()},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(previous + canonical.encode()).digest()


class AuditLog:
    """One data directory's audit log; `append` from any thread (one at a time), reads alongside."""

    def __init__(self, connection: Any) -> None:
        self._db = connection
        self._lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: Path, key: bytes) -> AuditLog:
        """Open (or create) the audit log of `data_dir` with its key (the vault's "audit" secret)."""
        path = data_dir / FILE
        try:
            connection = sqlcipher_db.open_existing(path, key) if path.exists() else sqlcipher_db.create(path, key)
            connection.executescript(_SCHEMA)
        except (StorageError, sqlcipher.DatabaseError) as exc:
            raise AuditError(
                f"The audit log {path} cannot be opened ({exc}); it is damaged or not this vault's. Keep the file "
                "for an investigation and move it aside to start a new one."
            ) from None
        return cls(connection)

    def close(self) -> None:
        self._db.close()

    def append(self, kind: str, details: dict[str, Any], ids: Sequence[bytes] = ()) -> int:
        """Add an entry (and the record ids that left with it); its sequence number."""
        text = json.dumps(details, sort_keys=True, separators=(",", ":"))
        digest = _ids_digest(ids)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # the entry and its ids together, or neither
            try:
                seq = self._append(kind, text, digest, ids)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return seq

    def _append(self, kind: str, text: str, digest: bytes, ids: Sequence[bytes]) -> int:
        row = self._db.execute("SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        seq, previous = (row[0] + 1, bytes(row[1])) if row else (1, GENESIS)
        at_ms = int(time.time() * 1000)
        entry_hash = _entry_hash(previous, seq, at_ms, kind, text, digest)
        self._db.execute(
            "INSERT INTO entries (seq, at_ms, kind, details, ids_sha256, hash) VALUES (?, ?, ?, ?, ?, ?)",
            (seq, at_ms, kind, text, digest, entry_hash),
        )
        self._db.executemany("INSERT INTO entry_ids (seq, record_id) VALUES (?, ?)", [(seq, i) for i in ids])
        return int(seq)

    def entries(self, since_ms: int = 0) -> Iterator[dict[str, Any]]:
        """Every entry from `since_ms` on, oldest first, as an auditor reads it (ids in hex, the hash)."""
        rows = self._db.execute(
            "SELECT seq, at_ms, kind, details, hash FROM entries WHERE at_ms >= ? ORDER BY seq", (since_ms,)
        ).fetchall()
        for seq, at_ms, kind, details, entry_hash in rows:
            ids = [bytes(r[0]).hex() for r in self._db.execute("SELECT record_id FROM entry_ids WHERE seq = ?", (seq,))]
            yield {
                "seq": seq,
                "at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at_ms / 1000)) + f".{at_ms % 1000:03d}Z",
                "kind": kind,
                **json.loads(details),
                **({"record_ids": ids} if ids else {}),
                "hash": bytes(entry_hash).hex(),
            }

    def verify(self) -> Verified:
        previous, count = GENESIS, 0
        expected = 1
        for seq, at_ms, kind, details, ids_sha256, entry_hash in self._db.execute(
            "SELECT seq, at_ms, kind, details, ids_sha256, hash FROM entries ORDER BY seq"
        ):
            ids = [bytes(r[0]) for r in self._db.execute("SELECT record_id FROM entry_ids WHERE seq = ?", (seq,))]
            problem = None
            if seq != expected:
                problem = f"entry {expected} is missing (the next one is {seq})"
            elif _ids_digest(ids) != bytes(ids_sha256):
                problem = f"the record ids of entry {seq} were changed"
            else:
                try:
                    recomputed = _entry_hash(previous, seq, at_ms, kind, details, bytes(ids_sha256))
                except (ValueError, TypeError):
                    recomputed = b""
                if recomputed != bytes(entry_hash):
                    problem = f"entry {seq} was changed (its hash does not follow from its content and the one before)"
            if problem is not None:
                return Verified(False, count, previous.hex(), f"The audit log's chain breaks: {problem}.")
            previous, count, expected = bytes(entry_hash), count + 1, expected + 1
        return Verified(True, count, previous.hex(), None)


def open_for(vault: Any) -> AuditLog:
    """The audit log of an unlocked vault: its key is the vault secret "audit" (made at first use)."""
    return AuditLog.open(vault.data_dir, vault.key_for(KEY_NAME))  # saved before the file exists, as a shard key is
