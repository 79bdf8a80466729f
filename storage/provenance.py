"""Who contributed what: the provenance of every record in a shard, and the contributors' batches carried by sync.

A record's provenance is the proven batch (or batches) it is a leaf of: the contributor's identity commitment,
the batch root, the record's position and salt (so its Merkle path can be rebuilt from the batch), the Datanet id
and recipient the proof is bound to, and, when the batch was submitted, the chain and transaction.

Two sources:
- own batches (the `batches` table): this holder proved them; their records are its own.
- received batches (`received_batches` + `batch_records`): a peer carried a contributor's batch with its proof.
  Such a claim is stored 'unverified' and nothing reads it (no listing, no provenance, no forwarding) until the
  client has checked its proof and recomputed its root from records held here (`settle(root, True)`); a claim
  that fails is deleted (`settle(root, False)`), and the peer that sent it is cut off by the caller.

Plain SQL on the shard's connection; the checking itself (Poseidon, Groth16) is the client's (client/provenance.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

UNVERIFIED, VERIFIED = "unverified", "verified"


@dataclass(frozen=True, slots=True)
class BatchClaim:
    """A contributor's proven batch: the public signals of its Groth16 proof and its leaves in order."""

    root: bytes  # 32 bytes, big-endian field element
    commitment: int  # the contributor's identity commitment
    datanet_id: int
    recipient: int
    proof: bytes  # 256 bytes (the Solidity verifier's calldata)
    records: tuple[tuple[bytes, int], ...]  # (record id, salt) in leaf order
    chain: str | None = None  # where it was accepted on chain ("<chain id>:<genesis hash>:<ledger>"), as claimed
    tx_hash: str | None = None

    @property
    def count(self) -> int:
        return len(self.records)

    @property
    def public_signals(self) -> tuple[int, ...]:
        return (int.from_bytes(self.root, "big"), self.count, self.commitment, self.datanet_id, self.recipient)


@dataclass(frozen=True, slots=True)
class Provenance:
    """One batch a record belongs to, as this holder knows it (own, or received and verified)."""

    record_id: bytes
    root: bytes
    position: int
    count: int
    salt: int
    commitment: int
    datanet_id: int
    recipient: int
    own: bool  # proved here (this holder's contribution)
    from_peer: str | None  # who carried it (received batches)
    chain: str | None
    tx_hash: str | None


class ProvenanceStore:
    """Provenance queries and received batch claims over one shard's open connection (not thread-safe)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def _write(self, statements: Iterable[tuple[str, Iterable[object]]]) -> int:
        self._connection.execute("BEGIN IMMEDIATE")
        changed = 0
        try:
            for sql, params in statements:
                changed += self._connection.execute(sql, tuple(params)).rowcount
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")
        return changed

    # -- what we can offer, what we hold ---------------------------------------------------------------

    def shareable_roots(self) -> list[bytes]:
        """Roots of every batch this holder may carry to a peer: its own, and received ones that verified."""
        own = (
            "SELECT b.root FROM batches b JOIN (SELECT batch_root, count(*) AS n FROM records WHERE origin = 'own' "
            "AND batch_root IS NOT NULL GROUP BY batch_root) held ON held.batch_root = b.root WHERE held.n = b.count"
        )
        received = (
            "SELECT rb.root FROM received_batches rb WHERE rb.status = 'verified' AND rb.count = (SELECT count(*) "
            "FROM batch_records br JOIN records r ON r.id = br.record_id WHERE br.root = rb.root)"
        )
        rows = self._connection.execute(f"{own} UNION {received} ORDER BY 1")
        return [bytes(r[0]) for r in rows]

    def known_roots(self) -> set[bytes]:
        """Roots held for good: own batches and verified claims. An unverified claim is not among them, so the same
        batch is still taken from an honest peer while a dishonest one's copy waits for its check."""
        rows = self._connection.execute(
            "SELECT root FROM batches UNION SELECT root FROM received_batches WHERE status = 'verified'"
        )
        return {bytes(r[0]) for r in rows}

    def held(self, record_ids: Iterable[bytes]) -> set[bytes]:
        """Which of these records this shard holds."""
        wanted = list(set(record_ids))
        found: set[bytes] = set()
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            marks = ",".join("?" * len(part))
            sql = f"SELECT id FROM records WHERE id IN ({marks})"  # noqa: S608 - only placeholders
            found |= {bytes(r[0]) for r in self._connection.execute(sql, part)}
        return found

    def claim(self, root: bytes) -> BatchClaim | None:
        """A batch as it is carried to a peer: an own batch, or a verified received one; None otherwise."""
        row = self._connection.execute(
            "SELECT datanet_id, recipient, proof, public, status, chain, tx_hash FROM batches WHERE root = ?", (root,)
        ).fetchone()
        if row is not None:
            records = self._connection.execute(
                "SELECT id, salt FROM records WHERE origin = 'own' AND batch_root = ? ORDER BY seq", (root,)
            ).fetchall()
            public = [int(x) for x in row[3].split(",")]
            submitted = row[4] == "submitted"
            return BatchClaim(
                root,
                public[2],
                int(row[0]),
                int(row[1]),
                bytes(row[2]),
                tuple((bytes(i), int.from_bytes(bytes(s), "big")) for i, s in records),
                row[5] if submitted else None,
                row[6] if submitted else None,
            )
        row = self._connection.execute(
            "SELECT commitment, datanet_id, recipient, proof, chain, tx_hash FROM received_batches "
            "WHERE root = ? AND status = 'verified'",
            (root,),
        ).fetchone()
        if row is None:
            return None
        return BatchClaim(
            root, int(row[0]), int(row[1]), int(row[2]), bytes(row[3]), self._leaves(root), row[4], row[5]
        )

    def _leaves(self, root: bytes) -> tuple[tuple[bytes, int], ...]:
        rows = self._connection.execute(
            "SELECT record_id, salt FROM batch_records WHERE root = ? ORDER BY position", (root,)
        )
        return tuple((bytes(i), int.from_bytes(bytes(s), "big")) for i, s in rows)

    # -- received claims ---------------------------------------------------------------------------------

    def add_claims(self, claims: Iterable[BatchClaim], from_peer: str, now_ms: int) -> list[BatchClaim]:
        """Store claims as unverified, in one transaction; returns the ones that were new here. An unverified claim
        of the same root from another peer is replaced (the last carrier's copy is the one checked next)."""
        known = self.known_roots()
        new = [c for c in claims if c.root not in known]
        statements: list[tuple[str, Iterable[object]]] = []
        for c in new:
            known.add(c.root)
            statements += [
                ("DELETE FROM batch_records WHERE root = ?", (c.root,)),
                ("DELETE FROM received_batches WHERE root = ?", (c.root,)),
                (
                    "INSERT INTO received_batches (root, count, commitment, datanet_id, recipient, proof, chain, "
                    "tx_hash, from_peer, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        c.root,
                        c.count,
                        str(c.commitment),
                        str(c.datanet_id),
                        str(c.recipient),
                        c.proof,
                        c.chain,
                        c.tx_hash,
                        from_peer,
                        now_ms,
                    ),
                ),
            ]
            statements += [
                (
                    "INSERT INTO batch_records (root, position, record_id, salt) VALUES (?, ?, ?, ?)",
                    (c.root, position, record_id, salt.to_bytes(32, "big")),
                )
                for position, (record_id, salt) in enumerate(c.records)
            ]
        if statements:
            self._write(statements)
        return new

    def unverified(self, peer: str | None = None, limit: int = 1000) -> list[tuple[BatchClaim, str]]:
        """Claims waiting for their check (of one peer, or all), oldest first, with the peer that sent each."""
        rows = self._connection.execute(
            "SELECT root, commitment, datanet_id, recipient, proof, chain, tx_hash, from_peer FROM received_batches "
            "WHERE status = 'unverified' AND (? IS NULL OR from_peer = ?) ORDER BY received_at, root LIMIT ?",
            (peer, peer, limit),
        ).fetchall()
        return [
            (
                BatchClaim(
                    bytes(r[0]), int(r[1]), int(r[2]), int(r[3]), bytes(r[4]), self._leaves(bytes(r[0])), r[5], r[6]
                ),
                r[7],
            )
            for r in rows
        ]

    def settle(self, root: bytes, verified: bool) -> None:
        """A claim checked: kept as verified, or deleted with its leaves."""
        self.settle_all([root], verified)

    def settle_all(self, roots: list[bytes], verified: bool) -> None:
        """Claims checked, in one transaction: kept as verified, or deleted with their leaves."""
        if verified:
            statements = [("UPDATE received_batches SET status = 'verified' WHERE root = ?", (root,)) for root in roots]
        else:
            statements = [
                (sql, (root,))
                for root in roots
                for sql in ("DELETE FROM batch_records WHERE root = ?", "DELETE FROM received_batches WHERE root = ?")
            ]
        if statements:
            self._write(statements)

    def drop_unverified_from(self, peer: str) -> int:
        """Forget every claim a peer sent that was not checked yet (a peer cut off, or a session that failed)."""
        roots = [
            bytes(r[0])
            for r in self._connection.execute(
                "SELECT root FROM received_batches WHERE status = 'unverified' AND from_peer = ?", (peer,)
            )
        ]
        self.settle_all(roots, False)
        return len(roots)

    def received_batches(self) -> list[BatchClaim]:
        """Verified batches of other contributors, as claims (their leaves included)."""
        roots = [
            bytes(r[0])
            for r in self._connection.execute(
                "SELECT root FROM received_batches WHERE status = 'verified' ORDER BY received_at, root"
            )
        ]
        return [claim for root in roots if (claim := self.claim(root)) is not None]

    def counts(self) -> dict[str, int]:
        """Received batches by status."""
        counts = {UNVERIFIED: 0, VERIFIED: 0}
        for status, n in self._connection.execute("SELECT status, count(*) FROM received_batches GROUP BY status"):
            counts[status] = int(n)
        return counts

    # -- a record's provenance ---------------------------------------------------------------------------

    def of_record(self, record_id: bytes) -> list[Provenance]:
        """Every batch the record is known to belong to: its own batch here, and verified received ones."""
        found: list[Provenance] = []
        row = self._connection.execute(
            "SELECT r.batch_root, r.salt, b.datanet_id, b.recipient, b.public, b.status, b.chain, b.tx_hash, b.count "
            "FROM records r JOIN batches b ON b.root = r.batch_root WHERE r.id = ?",
            (record_id,),
        ).fetchone()
        if row is not None:
            root = bytes(row[0])
            order = [
                bytes(r[0])
                for r in self._connection.execute(
                    "SELECT id FROM records WHERE origin = 'own' AND batch_root = ? ORDER BY seq", (root,)
                )
            ]
            submitted = row[5] == "submitted"
            found.append(
                Provenance(
                    record_id,
                    root,
                    order.index(record_id),
                    int(row[8]),
                    int.from_bytes(bytes(row[1]), "big"),
                    int(row[4].split(",")[2]),
                    int(row[2]),
                    int(row[3]),
                    True,
                    None,
                    row[6] if submitted else None,
                    row[7] if submitted else None,
                )
            )
        rows = self._connection.execute(
            "SELECT br.root, br.position, br.salt, rb.count, rb.commitment, rb.datanet_id, rb.recipient, "
            "rb.from_peer, rb.chain, rb.tx_hash FROM batch_records br JOIN received_batches rb ON rb.root = br.root "
            "WHERE br.record_id = ? AND rb.status = 'verified' ORDER BY rb.received_at, br.root",
            (record_id,),
        ).fetchall()
        found += [
            Provenance(
                record_id,
                bytes(r[0]),
                int(r[1]),
                int(r[3]),
                int.from_bytes(bytes(r[2]), "big"),
                int(r[4]),
                int(r[5]),
                int(r[6]),
                False,
                r[7],
                r[8],
                r[9],
            )
            for r in rows
        ]
        return found

    def leaves_of(self, root: bytes) -> list[tuple[bytes, int]]:
        """(record id, salt) of a batch (own or verified received) in leaf order: its Merkle paths' input."""
        claim = self.claim(root)
        return [] if claim is None else list(claim.records)
