"""Adding records to a shard inside one open transaction (`Shard.transaction`): each id checked against its body,
a fresh salt per record (a BN254 scalar, for its commitment leaf), 500 rows to a statement, and a record's origin
kept: own (imported here) or received from a peer, never turned from one into the other.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from storage.diskspace import DiskGuard
from storage.errors import RecordRejected

# Salts are scalars of the BN254 curve's group order, so they can enter Poseidon hashes unchanged.
BN254_SCALAR_FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record about to be stored: its id must be the SHA-256 of its canonical body."""

    record_id: bytes
    body: bytes
    source: str


OWN, PEER = "own", "peer"  # a record's origin: imported here, or received from a peer by sync


# Rows a multi-row INSERT carries (8 columns each). One statement per 500 rows instead of one step per row: sqlite3
# lets go of the GIL once per step, so a writer in a worker thread does not hand the GIL back and forth with the
# event loop for every row. Not more: binding a statement's parameters holds the GIL, and 4,000 rows (32,000
# parameters) held it long enough to delay the control API's answers by tens of ms (bench/control.py: p99 35 ms at
# 4,000, 14 ms at 500); 100,000 records are added as fast either way (2.0-2.5 s here).
ROWS_PER_INSERT = 500


@functools.lru_cache(maxsize=8)
def _insert_rows(count: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * count)  # placeholders only: no value is ever in the SQL
    columns = "id, body, source, imported_at, size, salt, origin, received_from"
    return f"INSERT OR IGNORE INTO records ({columns}) VALUES {values}"  # noqa: S608


def new_salt() -> bytes:
    return secrets.randbelow(BN254_SCALAR_FIELD).to_bytes(32, "big")


class ShardWriter:
    """Adds records inside one open transaction (see `Shard.transaction`)."""

    def __init__(self, connection: sqlite3.Connection, now_ms: int, disk: tuple[DiskGuard, Path] | None = None) -> None:
        self._connection = connection
        self._disk = disk or (DiskGuard(), Path())  # the free space kept, and where the shard lives
        self._now_ms = now_ms
        self.now_ms = now_ms
        self.added = 0
        self.duplicates = 0
        self.already_received = 0  # duplicates that this holder had received from a peer (they stay received)

    def add(self, records: Iterable[NewRecord], *, received_from: str | None = None) -> int:
        """Store records not already present; returns how many were new. Raises RecordRejected on a bad id.

        With `received_from` (a peer id) the records are stored as received, never as this holder's own. A record
        already held keeps its origin: one imported here that arrives again from a peer stays own, and one
        received earlier that is imported here stays received (counted in `already_received`), so a partner's
        records can never be made one's own contribution by exporting and re-importing them."""
        rows = []
        origin = OWN if received_from is None else PEER
        for record in records:
            if hashlib.sha256(record.body).digest() != record.record_id:
                raise RecordRejected(
                    f"Record {record.record_id.hex()[:16]} does not match its content hash; it was not stored."
                )
            rows.append(
                (
                    record.record_id,
                    record.body,
                    record.source,
                    self._now_ms,
                    len(record.body),
                    new_salt(),
                    origin,
                    received_from,
                )
            )
        guard, directory = self._disk
        guard.check(directory, sum(len(row[1]) + 200 for row in rows))  # 200: a row's other columns and index
        added = 0
        for start in range(0, len(rows), ROWS_PER_INSERT):  # one statement, one sqlite3_step, per 500 rows
            part = rows[start : start + ROWS_PER_INSERT]
            cursor = self._connection.execute(_insert_rows(len(part)), [value for row in part for value in row])
            added += cursor.rowcount
        if added:
            self._connection.execute("UPDATE record_counts SET n = n + ? WHERE origin = ?", (added, origin))
        self.added += added
        self.duplicates += len(rows) - added
        if origin == OWN and added < len(rows):
            for start in range(0, len(rows), 500):
                ids = [row[0] for row in rows[start : start + 500]]
                marks = ",".join("?" * len(ids))
                (n,) = self._connection.execute(
                    f"SELECT count(*) FROM records WHERE origin = 'peer' AND id IN ({marks})",  # noqa: S608
                    ids,
                ).fetchone()
                self.already_received += int(n)
        return added
