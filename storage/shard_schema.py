"""A shard's schema and its migrations: one step per version, each in one transaction, never backwards."""

from __future__ import annotations

import logging
import sqlite3

from storage.errors import StorageError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 6
_MIGRATIONS: dict[int, str] = {
    1: """
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE records (
            seq         INTEGER PRIMARY KEY,
            id          BLOB NOT NULL UNIQUE CHECK (length(id) = 32),
            body        BLOB NOT NULL,
            source      TEXT NOT NULL,
            imported_at INTEGER NOT NULL,
            size        INTEGER NOT NULL,
            salt        BLOB NOT NULL CHECK (length(salt) = 32)
        );
    """,
    # Contribution batches: which records went into which proven batch (prover/), and the proof.
    2: """
        ALTER TABLE records ADD COLUMN batch_root BLOB;
        CREATE INDEX records_pending ON records (batch_root, seq);
        CREATE TABLE batches (
            root        BLOB PRIMARY KEY CHECK (length(root) = 32),
            count       INTEGER NOT NULL,
            created_at  INTEGER NOT NULL,
            datanet_id  TEXT NOT NULL,
            recipient   TEXT NOT NULL,
            proof       BLOB NOT NULL,
            public      TEXT NOT NULL,
            status      TEXT NOT NULL DEFAULT 'proved'
        );
    """,
    # Submission to a chain: which chain (chain id, genesis hash, ledger address) took the batch, in which
    # transaction. A batch is 'submitted' only for that chain; a reset devnet or another network takes it again.
    3: """
        ALTER TABLE batches ADD COLUMN chain TEXT;
        ALTER TABLE batches ADD COLUMN tx_hash TEXT;
        ALTER TABLE batches ADD COLUMN block INTEGER;
    """,
    # Peers allowed to sync this Datanet (libp2p peer ids); everyone else is refused before any record is sent.
    4: """
        CREATE TABLE members (
            peer_id   TEXT PRIMARY KEY,
            added_at  INTEGER NOT NULL
        );
    """,
    # Provenance. `origin` says whether a record was imported here ('own') or received from a peer ('peer', with
    # `received_from`); only own records are ever proven or submitted. Records that schema 4 stored from a peer
    # (source "peer <id>"; an import's source always holds a ':') become received; a batch not yet submitted
    # that holds any of them is dropped (its own records are pending again), since it claimed them as this holder's;
    # a submitted one stays as it is (it is on chain). `received_batches` holds contributors' proven batches carried by
    # sync: a claim stays 'unverified' (never shown, used or forwarded) until its proof checks and its root is
    # recomputed from records held here; `batch_records` lists a received batch's records in leaf order.
    5: """
        ALTER TABLE records ADD COLUMN origin TEXT NOT NULL DEFAULT 'own';
        ALTER TABLE records ADD COLUMN received_from TEXT;
        DELETE FROM batches WHERE status != 'submitted' AND root IN (SELECT batch_root FROM records
            WHERE source GLOB 'peer *' AND instr(source, ':') = 0 AND batch_root IS NOT NULL);
        UPDATE records SET batch_root = NULL
            WHERE batch_root IS NOT NULL AND batch_root NOT IN (SELECT root FROM batches);
        UPDATE records SET origin = 'peer', received_from = substr(source, 6)
            WHERE source GLOB 'peer *' AND instr(source, ':') = 0 AND batch_root IS NULL;
        DROP INDEX records_pending;
        CREATE INDEX records_pending ON records (origin, batch_root, seq);
        CREATE TABLE received_batches (
            root        BLOB PRIMARY KEY CHECK (length(root) = 32),
            count       INTEGER NOT NULL,
            commitment  TEXT NOT NULL,
            datanet_id  TEXT NOT NULL,
            recipient   TEXT NOT NULL,
            proof       BLOB NOT NULL CHECK (length(proof) = 256),
            chain       TEXT,
            tx_hash     TEXT,
            from_peer   TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            status      TEXT NOT NULL DEFAULT 'unverified'
        );
        CREATE TABLE batch_records (
            root        BLOB NOT NULL,
            position    INTEGER NOT NULL,
            record_id   BLOB NOT NULL CHECK (length(record_id) = 32),
            salt        BLOB NOT NULL CHECK (length(salt) = 32),
            PRIMARY KEY (root, position)
        );
        CREATE INDEX batch_records_by_record ON batch_records (record_id);
    """,
    # How many records there are of each origin, kept by the writers (ShardWriter adds, Shard.delete subtracts)
    # in the same transaction as the change: counting is one row read, not a scan of 100,000 index entries while
    # a sync writes. `Shard.check` compares it with a real count.
    6: """
        CREATE TABLE record_counts (origin TEXT PRIMARY KEY, n INTEGER NOT NULL);
        INSERT INTO record_counts (origin, n) VALUES ('own', 0), ('peer', 0);
        UPDATE record_counts SET n = (SELECT count(*) FROM records WHERE records.origin = record_counts.origin);
    """,
}


def migrate(connection: sqlite3.Connection) -> None:
    """Bring a shard's schema to SCHEMA_VERSION, one transaction per step."""
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"This shard uses schema version {version}, newer than this datanet understands "
            f"({SCHEMA_VERSION}); upgrade datanet to open it."
        )
    for step in range(version + 1, SCHEMA_VERSION + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in _MIGRATIONS[step].split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {step}")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        logger.info("shard schema migrated to version %d", step)


__all__ = ["SCHEMA_VERSION", "migrate"]
