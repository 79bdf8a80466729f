"""Benchmark: importing into the encrypted vault against plain stdlib sqlite3 (not a test).

Both sides run the project's own import path (canonical JSON, SHA-256 ids, salts, `Shard` writes, 1,000 records
a transaction) over the same schema and the same pragmas (WAL, synchronous=NORMAL, 4 KiB pages, 64 MiB cache);
the only difference is the connection: SQLCipher with a raw key, or stdlib sqlite3. Rounds are interleaved so
machine noise hits both alike; the median round counts. Also: the insert-only ratio (records prepared in
advance, so only the database work is timed), and open times: raw key against a PBKDF2 passphrase key.

Run: python bench/vault.py [--records N] [--rounds R]. The last line is the headline figure.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlcipher3 import dbapi2 as sqlcipher

from client.records import make_record
from storage import sqlcipher_db
from storage.key_file import Argon2Params, KeyFile
from storage.shard import NewRecord, Shard
from storage.shard_schema import migrate
from storage.vault import Vault

BATCH = 1000
WORDS = ["patient", "visit", "follow-up", "dosage", "fever", "clinic", "result", "scan", "referral", "chronic"]


def make_objects(n: int) -> list[dict[str, str]]:
    rng = random.Random(7)
    objects = []
    for i in range(n):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < 950:
            words.append(rng.choice(WORDS))
        objects.append({"text": " ".join(words), "label": f"L{i % 8}", "n": str(i)})
    return objects


def fresh(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def plain_shard(path: Path) -> Shard:
    connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    sqlite3_page = connection.execute("PRAGMA page_size").fetchone()[0]
    assert sqlite3_page == sqlcipher_db.PAGE_SIZE, "the reference must use the vault's page size"
    sqlcipher_db.tune(connection)
    migrate(connection)
    return Shard(connection, info=None)  # type: ignore[arg-type]


def vault_shard(path: Path, key: bytes) -> Shard:
    connection = sqlcipher_db.create(path, key)
    migrate(connection)
    return Shard(connection, info=None)  # type: ignore[arg-type]


def import_objects(shard: Shard, objects: list[dict[str, str]]) -> float:
    """The import path: canonicalise, hash, store; 1,000 records a transaction. Returns records/s."""
    start = time.perf_counter()
    for i in range(0, len(objects), BATCH):
        batch = []
        for obj in objects[i : i + BATCH]:
            record = make_record(obj)
            batch.append(NewRecord(record.record_id, record.body, "bench.jsonl"))
        shard.add_records(batch)
    return len(objects) / (time.perf_counter() - start)


def insert_prepared(shard: Shard, records: list[NewRecord]) -> float:
    start = time.perf_counter()
    for i in range(0, len(records), BATCH):
        shard.add_records(records[i : i + BATCH])
    return len(records) / (time.perf_counter() - start)


def timed_ms(action: Callable[[], object], repeat: int = 20) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    objects = make_objects(args.records)
    prepared = []
    for obj in objects:
        record = make_record(obj)
        prepared.append(NewRecord(record.record_id, record.body, "bench.jsonl"))
    mean_size = sum(len(r.body) for r in prepared) / len(prepared)
    print(f"{args.records} records of {mean_size:.0f} bytes, {BATCH} a transaction, {args.rounds} rounds interleaved")

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        key = bytes(range(32))
        rates: dict[str, list[float]] = {"vault": [], "sqlite": [], "vault insert": [], "sqlite insert": []}
        for round_no in range(args.rounds):
            for name in ("vault", "sqlite") if round_no % 2 == 0 else ("sqlite", "vault"):
                for mode in ("import", "insert"):
                    path = base / f"{name}.db"
                    fresh(path)
                    shard = vault_shard(path, key) if name == "vault" else plain_shard(path)
                    with shard:
                        if mode == "import":
                            rates[name].append(import_objects(shard, objects))
                        else:
                            rates[f"{name} insert"].append(insert_prepared(shard, prepared))
            print(
                f"round {round_no + 1}: vault {rates['vault'][-1]:,.0f} rec/s, sqlite {rates['sqlite'][-1]:,.0f} rec/s"
                f" (insert only: {rates['vault insert'][-1]:,.0f} vs {rates['sqlite insert'][-1]:,.0f})"
            )

        # Open times. The vault file from the last round stays on disk.
        vault_path = base / "vault.db"

        def open_raw() -> None:
            sqlcipher_db.open_existing(vault_path, key).close()

        pbkdf2_path = base / "pbkdf2.db"
        connection = sqlcipher.connect(str(pbkdf2_path))
        connection.execute("PRAGMA key = 'a passphrase, SQLCipher 4 defaults'")
        connection.execute("CREATE TABLE t (x)")
        connection.commit()
        connection.close()

        def open_pbkdf2() -> None:
            con = sqlcipher.connect(f"file:{pbkdf2_path}?mode=rw", uri=True)
            con.execute("PRAGMA key = 'a passphrase, SQLCipher 4 defaults'")
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
            con.close()

        data_dir = base / "datadir"
        Vault.create(data_dir, keystore=None, passphrase="bench passphrase")  # noqa: S106
        params = Argon2Params()

        def unlock_argon2() -> None:
            KeyFile.load(data_dir).unwrap_with_passphrase("bench passphrase")

        raw_ms, pbkdf2_ms = timed_ms(open_raw), timed_ms(open_pbkdf2, repeat=5)
        argon_ms = timed_ms(unlock_argon2, repeat=5)

    vault_rate, sqlite_rate = statistics.median(rates["vault"]), statistics.median(rates["sqlite"])
    insert_ratio = statistics.median(rates["vault insert"]) / statistics.median(rates["sqlite insert"])
    print(f"import vault:  {vault_rate:,.0f} records/s ({vault_rate * mean_size / 1e6:.1f} MB/s)")
    print(f"import sqlite: {sqlite_rate:,.0f} records/s ({sqlite_rate * mean_size / 1e6:.1f} MB/s)")
    print(f"insert only (records prepared in advance): ratio vault/sqlite {insert_ratio:.2f}")
    print(f"open with raw key: {raw_ms:.2f} ms (target <= 10 ms)")
    print(f"open with a PBKDF2 passphrase (SQLCipher 4 default, 256k iterations): {pbkdf2_ms:.1f} ms")
    print(
        f"vault unlock with the passphrase (Argon2id t={params.time_cost}, {params.memory_kib // 1024} MiB, "
        f"p={params.parallelism}; once per process): {argon_ms:.1f} ms"
    )
    print(f"ratio vault/sqlite: {vault_rate / sqlite_rate:.2f}")


if __name__ == "__main__":
    main()
