"""One Datanet shard: an encrypted SQLite database of content-addressed records.

A record is stored as its canonical bytes (`body`), under `id = SHA-256(body)`, with where it came from, when it
was imported, its size and a random salt (a BN254 scalar, for the record's commitment leaf). The shard checks
every id against its body before storing it. Writes happen in explicit transactions: an import of one file is
one transaction, so a crash leaves all or none of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from storage.diskspace import DiskGuard
from storage.errors import AmbiguousRecordId, RecordNotFound, StorageError
from storage.provenance import ProvenanceStore
from storage.shard_schema import migrate
from storage.shard_writer import BN254_SCALAR_FIELD as BN254_SCALAR_FIELD
from storage.shard_writer import OWN as OWN
from storage.shard_writer import PEER as PEER
from storage.shard_writer import NewRecord as NewRecord
from storage.shard_writer import ShardWriter as ShardWriter
from storage.shard_writer import new_salt as new_salt

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecordMeta:
    record_id: bytes
    source: str
    imported_at_ms: int
    size: int
    origin: str = OWN
    received_from: str | None = None  # the peer id it came from (origin PEER)


@dataclass(frozen=True, slots=True)
class ChainBinding:
    """The on-chain Datanet a shard belongs to: proofs are made for `datanet_id`, and sync admission by chain
    asks this registry on this chain, and no other."""

    chain_id: int
    registry: str  # 0x address, lower case
    datanet_id: int


@dataclass(frozen=True, slots=True)
class StoredRecord:
    meta: RecordMeta
    body: bytes
    salt: int


@dataclass(frozen=True, slots=True)
class Batch:
    """A proven contribution batch: its Poseidon root, size, and the proof for (datanet id, recipient)."""

    root: bytes
    count: int
    created_at_ms: int
    datanet_id: int
    recipient: int
    proof: bytes
    public_signals: tuple[int, ...]
    status: str
    chain: str | None = None  # where it was submitted ("<chain id>:<genesis hash>:<ledger>")
    tx_hash: str | None = None


@dataclass(frozen=True, slots=True)
class ShardInfo:
    uuid: str
    name: str
    task: str
    created_at_ms: int
    path: Path


@dataclass(frozen=True, slots=True)
class CheckReport:
    """Result of `Shard.check()`: an empty `problems` list means the shard is sound."""

    records: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


class Shard:
    """An open shard. Not thread-safe: use one per thread."""

    def __init__(self, connection: sqlite3.Connection, info: ShardInfo, disk: DiskGuard | None = None) -> None:
        self._connection = connection
        self.info = info
        self.disk = disk or DiskGuard()  # the free space its writes keep (the vault's)

    @staticmethod
    def initialise(connection: sqlite3.Connection, *, uuid: str, name: str, task: str, now_ms: int) -> None:
        migrate(connection)
        with contextlib.closing(connection.cursor()) as cursor:
            cursor.execute("BEGIN IMMEDIATE")
            cursor.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("uuid", uuid), ("name", name), ("task", task), ("created_at", str(now_ms))],
            )
            cursor.execute("COMMIT")

    @staticmethod
    def read_info(connection: sqlite3.Connection, path: Path) -> ShardInfo:
        meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
        return ShardInfo(
            uuid=meta["uuid"], name=meta["name"], task=meta["task"], created_at_ms=int(meta["created_at"]), path=path
        )

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> Shard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, now_ms: int | None = None) -> Iterator[ShardWriter]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        self._connection.execute("BEGIN IMMEDIATE")
        writer = ShardWriter(
            self._connection, int(time.time() * 1000) if now_ms is None else now_ms, (self.disk, self.info.path.parent)
        )
        try:
            yield writer
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def add_records(self, records: Iterable[NewRecord], *, received_from: str | None = None) -> tuple[int, int]:
        """Store records in one transaction; returns (added, duplicates). See `ShardWriter.add`."""
        with self.transaction() as writer:
            writer.add(records, received_from=received_from)
        return writer.added, writer.duplicates

    @property
    def provenance(self) -> ProvenanceStore:
        """Contributors' batches carried by sync, and every record's provenance (storage/provenance.py)."""
        return ProvenanceStore(self._connection)

    # -- the on-chain Datanet ------------------------------------------------------------------------

    def binding(self) -> ChainBinding | None:
        row = self._connection.execute("SELECT value FROM meta WHERE key = 'chain_binding'").fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        return ChainBinding(int(data["chain_id"]), str(data["registry"]), int(data["datanet_id"]))

    def bind(self, binding: ChainBinding) -> None:
        """Bind this shard to its on-chain Datanet (`create --on-chain`, `join`). A shard bound to one Datanet is
        never silently re-bound to another: that is a StorageError (unbind first)."""
        current = self.binding()
        if current == binding:
            return
        if current is not None:
            raise StorageError(
                f"Datanet {self.info.name!r} is already bound to Datanet {current.datanet_id} of registry "
                f"{current.registry} on chain {current.chain_id}; it cannot be bound to another."
            )
        value = json.dumps(
            {"chain_id": binding.chain_id, "registry": binding.registry.lower(), "datanet_id": binding.datanet_id},
            sort_keys=True,
        )
        with self.transaction():
            self._connection.execute("INSERT INTO meta (key, value) VALUES ('chain_binding', ?)", (value,))

    def unbind(self) -> bool:
        """Forget the on-chain binding (a reset devnet); True if there was one."""
        with self.transaction():
            cursor = self._connection.execute("DELETE FROM meta WHERE key = 'chain_binding'")
        return cursor.rowcount > 0

    def delete(self, record_ids: Iterable[bytes]) -> int:
        ids = list(record_ids)
        with self.transaction():
            origins: list[str] = []
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                origins += self._delete(f"id IN ({','.join('?' * len(part))})", part)
            return self._uncount(origins)

    def delete_where(self, *, source_glob: str | None = None, imported_before_ms: int | None = None) -> int:
        """Delete records whose source matches a glob and/or that were imported before a time."""
        if source_glob is None and imported_before_ms is None:
            raise ValueError("a filtered delete needs at least one filter")
        clauses, params = self._filters(source_glob, imported_before_ms)
        with self.transaction():
            return self._uncount(self._delete(" AND ".join(clauses), params))

    def _delete(self, where: str, params: list[object] | list[bytes]) -> list[str]:
        """Delete the records `where` selects (inside a transaction); the origin of each one deleted."""
        sql = f"DELETE FROM records WHERE {where} RETURNING origin"  # noqa: S608 - placeholders only
        return [row[0] for row in self._connection.execute(sql, params)]

    def _uncount(self, origins: list[str]) -> int:
        """Take deleted records out of the kept counts; how many there were."""
        for origin in set(origins):
            self._connection.execute(
                "UPDATE record_counts SET n = n - ? WHERE origin = ?", (origins.count(origin), origin)
            )
        return len(origins)

    # -- reading -------------------------------------------------------------------------------------

    @staticmethod
    def _filters(source_glob: str | None, imported_before_ms: int | None) -> tuple[list[str], list[object]]:
        clauses: list[str] = ["1"]
        params: list[object] = []
        if source_glob is not None:
            clauses.append("source GLOB ?")
            params.append(source_glob)
        if imported_before_ms is not None:
            clauses.append("imported_at < ?")
            params.append(imported_before_ms)
        return clauses, params

    def count(self) -> int:
        return sum(self.count_by_origin().values())

    def total_bytes(self) -> int:
        (n,) = self._connection.execute("SELECT coalesce(sum(size), 0) FROM records").fetchone()
        return int(n)

    def list_records(
        self, *, limit: int | None = None, offset: int = 0, source_glob: str | None = None
    ) -> list[RecordMeta]:
        clauses, params = self._filters(source_glob, None)
        rows = self._connection.execute(
            "SELECT id, source, imported_at, size, origin, received_from FROM records "  # noqa: S608
            f"WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ? OFFSET ?",
            [*params, -1 if limit is None else limit, offset],
        ).fetchall()
        return [RecordMeta(bytes(r[0]), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def resolve(self, id_prefix: str) -> bytes:
        """The full id of the one record whose hex id starts with `id_prefix` (at least 8 hex digits)."""
        prefix = id_prefix.strip().lower()
        if len(prefix) < 8 or any(c not in "0123456789abcdef" for c in prefix) or len(prefix) > 64:
            raise RecordNotFound(f"{id_prefix!r} is not a record id: give at least 8 hex digits of one.")
        low = bytes.fromhex(prefix.ljust(64, "0"))
        high = bytes.fromhex(prefix.ljust(64, "f"))
        rows = self._connection.execute(
            "SELECT id FROM records WHERE id BETWEEN ? AND ? LIMIT 2", (low, high)
        ).fetchall()
        if not rows:
            raise RecordNotFound(f"No record with id {prefix} in Datanet {self.info.name!r}.")
        if len(rows) > 1:
            raise AmbiguousRecordId(f"Several records start with {prefix}; give more digits of the id.")
        return bytes(rows[0][0])

    def get(self, record_id: bytes) -> StoredRecord:
        row = self._connection.execute(
            "SELECT id, source, imported_at, size, body, salt, origin, received_from FROM records WHERE id = ?",
            (record_id,),
        ).fetchone()
        if row is None:
            raise RecordNotFound(f"No record with id {record_id.hex()} in Datanet {self.info.name!r}.")
        return StoredRecord(
            RecordMeta(bytes(row[0]), row[1], row[2], row[3], row[6], row[7]), bytes(row[4]), int.from_bytes(row[5])
        )

    def iter_bodies(self, batch: int = 1000) -> Iterator[tuple[bytes, bytes]]:
        """(id, body) of every record in import order, read in batches."""
        last = 0
        while True:
            rows = self._connection.execute(
                "SELECT seq, id, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            for _, record_id, body in rows:
                yield bytes(record_id), bytes(body)
            last = rows[-1][0]

    def ids(self) -> list[bytes]:
        """Every record id, sorted (what sync reconciles)."""
        return [bytes(r[0]) for r in self._connection.execute("SELECT id FROM records ORDER BY id")]

    def bodies(self, record_ids: list[bytes]) -> list[tuple[bytes, bytes]]:
        """(id, body) of those of `record_ids` this shard holds, in the order asked."""
        found: dict[bytes, bytes] = {}
        for start in range(0, len(record_ids), 500):
            part = record_ids[start : start + 500]
            marks = ",".join("?" * len(part))
            for record_id, body in self._connection.execute(
                f"SELECT id, body FROM records WHERE id IN ({marks})",  # noqa: S608 - only placeholders
                part,
            ):
                found[bytes(record_id)] = bytes(body)
        return [(i, found[i]) for i in record_ids if i in found]

    def members(self) -> list[str]:
        return [r[0] for r in self._connection.execute("SELECT peer_id FROM members ORDER BY peer_id")]

    def is_member(self, peer_id: str) -> bool:
        return self._connection.execute("SELECT 1 FROM members WHERE peer_id = ?", (peer_id,)).fetchone() is not None

    def set_member(self, peer_id: str, allowed: bool) -> bool:
        """Allow or remove a peer; True if that changed anything."""
        with self.transaction() as writer:
            if allowed:
                cursor = self._connection.execute(
                    "INSERT OR IGNORE INTO members (peer_id, added_at) VALUES (?, ?)", (peer_id, writer.now_ms)
                )
            else:
                cursor = self._connection.execute("DELETE FROM members WHERE peer_id = ?", (peer_id,))
        return cursor.rowcount > 0

    def count_by_origin(self) -> dict[str, int]:
        """How many records are own (imported here) and received (from peers)."""
        counts = {OWN: 0, PEER: 0}
        for origin, n in self._connection.execute("SELECT origin, n FROM record_counts"):  # kept by the writers
            counts[origin] = int(n)
        return counts

    def pending(self, limit: int | None = None) -> list[tuple[bytes, int]]:
        """(id, salt) of this holder's own records in no batch yet, in import order. Received records are never
        pending: they are someone else's contribution."""
        rows = self._connection.execute(
            "SELECT id, salt FROM records WHERE origin = 'own' AND batch_root IS NULL ORDER BY seq LIMIT ?",
            (-1 if limit is None else limit,),
        ).fetchall()
        return [(bytes(r[0]), int.from_bytes(r[1], "big")) for r in rows]

    def add_batch(self, batch: Batch, record_ids: list[bytes]) -> None:
        """Record a proven batch and mark its records, in one transaction."""
        with self.transaction():
            self._connection.execute(
                "INSERT INTO batches (root, count, created_at, datanet_id, recipient, proof, public, status) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    batch.root,
                    batch.count,
                    batch.created_at_ms,
                    str(batch.datanet_id),
                    str(batch.recipient),
                    batch.proof,
                    ",".join(map(str, batch.public_signals)),
                    batch.status,
                ),
            )
            cursor = self._connection.executemany(
                "UPDATE records SET batch_root = ? WHERE id = ? AND batch_root IS NULL AND origin = 'own'",
                [(batch.root, record_id) for record_id in record_ids],
            )
            if cursor.rowcount != len(record_ids):
                raise StorageError(
                    "Some records of the batch were deleted, batched meanwhile or are not your own; nothing changed."
                )

    def batch_roots(self, record_ids: set[bytes]) -> list[bytes]:
        """The roots of the proven batches that hold any of these records (sorted)."""
        rows = self._connection.execute("SELECT id, batch_root FROM records WHERE batch_root IS NOT NULL")
        return sorted({bytes(root) for record_id, root in rows if bytes(record_id) in record_ids})

    def batches(self) -> list[Batch]:
        rows = self._connection.execute(
            "SELECT root, count, created_at, datanet_id, recipient, proof, public, status, chain, tx_hash "
            "FROM batches ORDER BY created_at, root"
        ).fetchall()
        return [
            Batch(
                bytes(r[0]),
                r[1],
                r[2],
                int(r[3]),
                int(r[4]),
                bytes(r[5]),
                tuple(int(x) for x in r[6].split(",")),
                r[7],
                r[8],
                r[9],
            )
            for r in rows
        ]

    def batch_members(self, root: bytes) -> list[tuple[bytes, int]]:
        """(id, salt) of a batch's records in leaf order (import order, as they were proved)."""
        rows = self._connection.execute("SELECT id, salt FROM records WHERE batch_root = ? ORDER BY seq", (root,))
        return [(bytes(i), int.from_bytes(bytes(salt), "big")) for i, salt in rows]

    def replace_proof(
        self, root: bytes, datanet_id: int, recipient: int, proof: bytes, public: tuple[int, ...]
    ) -> None:
        """A batch proved again for another Datanet id or recipient (same root, same records)."""
        with self.transaction():
            self._connection.execute(
                "UPDATE batches SET datanet_id = ?, recipient = ?, proof = ?, public = ? WHERE root = ?",
                (str(datanet_id), str(recipient), proof, ",".join(map(str, public)), root),
            )

    def mark_submitted(self, root: bytes, chain: str, tx_hash: str | None, block: int | None) -> None:
        """Called only once the chain's receipt (or its state) confirms the batch."""
        with self.transaction():
            self._connection.execute(
                "UPDATE batches SET status = 'submitted', chain = ?, tx_hash = ?, block = ? WHERE root = ?",
                (chain, tx_hash, block, root),
            )

    def check(self) -> CheckReport:
        """SQLCipher's page authentication check, SQLite's structure check, and every id against its body."""
        problems: list[str] = []
        records = 0
        try:
            problems += [f"cipher: {row[0]}" for row in self._connection.execute("PRAGMA cipher_integrity_check")]
            problems += [
                f"structure: {row[0]}" for row in self._connection.execute("PRAGMA integrity_check") if row[0] != "ok"
            ]
            for record_id, body in self.iter_bodies():
                records += 1
                if hashlib.sha256(body).digest() != record_id:
                    problems.append(f"record {record_id.hex()[:16]}: content does not match its id")
            counted = dict(self._connection.execute("SELECT origin, count(*) FROM records GROUP BY origin").fetchall())
            for origin, kept in self.count_by_origin().items():
                if counted.get(origin, 0) != kept:
                    problems.append(f"counts: {kept} {origin} records counted, {counted.get(origin, 0)} held")
        except self._connection.DatabaseError as exc:
            problems.append(f"unreadable: {exc}")
        return CheckReport(records=records, problems=tuple(problems))

    def rekey(self, new_key: bytes) -> None:
        """Re-encrypt the whole file under a new raw key (see Vault.rekey_shard for the crash-safe dance)."""
        self._connection.execute(f"PRAGMA rekey = \"x'{new_key.hex()}'\"")
        self._connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
