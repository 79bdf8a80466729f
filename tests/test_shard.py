"""Records in a shard: content addressing, duplicates, lookup, deletion, integrity checking."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.errors import AmbiguousRecordId, DiskLow, RecordNotFound, RecordRejected, StorageError
from storage.shard import BN254_SCALAR_FIELD, NewRecord, Shard
from storage.shard_schema import SCHEMA_VERSION, migrate
from storage.vault import Vault
from tests.conftest import FAST_ARGON2


def _record(text: str, source: str = "a.jsonl:1") -> NewRecord:
    body = json.dumps({"text": text}, separators=(",", ":")).encode()
    return NewRecord(hashlib.sha256(body).digest(), body, source)


@pytest.fixture
def vault(data_dir: Path) -> Vault:
    return Vault.create(data_dir, keystore=None, passphrase="pw-pw-pw", argon2=FAST_ARGON2)[0]


@pytest.fixture
def shard(vault: Vault) -> Iterator[Shard]:
    with vault.create_shard("s", "text") as shard:
        yield shard


def test_duplicates_are_counted_not_stored(shard: Shard) -> None:
    assert shard.add_records([_record("a"), _record("b"), _record("a")]) == (2, 1)
    assert shard.add_records([_record("b"), _record("c")]) == (1, 1)
    assert shard.count() == 3


def test_a_record_whose_id_does_not_match_is_rejected_and_nothing_is_stored(shard: Shard) -> None:
    good, bad = _record("good"), _record("bad")
    forged = NewRecord(good.record_id, bad.body, "x")
    with pytest.raises(RecordRejected, match="does not match its content hash"):
        shard.add_records([_record("first"), forged])
    assert shard.count() == 0


def test_metadata_and_salt(shard: Shard) -> None:
    rec = _record("hello")
    with shard.transaction(now_ms=1_700_000_000_000) as writer:
        writer.add([rec])
    stored = shard.get(rec.record_id)
    assert stored.body == rec.body
    assert stored.meta.source == "a.jsonl:1"
    assert stored.meta.imported_at_ms == 1_700_000_000_000
    assert stored.meta.size == len(rec.body)
    assert 0 <= stored.salt < BN254_SCALAR_FIELD
    other = _record("world")
    shard.add_records([other])
    assert shard.get(other.record_id).salt != stored.salt


def test_resolve_prefixes(shard: Shard) -> None:
    records = [_record(f"r{i}") for i in range(300)]
    shard.add_records(records)
    target = records[7].record_id
    assert shard.resolve(target.hex()[:12]) == target
    assert shard.resolve(target.hex().upper()) == target
    with pytest.raises(RecordNotFound, match="at least 8 hex"):
        shard.resolve("abc")
    with pytest.raises(RecordNotFound, match="No record"):
        shard.resolve("0" * 64)


def test_an_ambiguous_prefix_is_refused(shard: Shard) -> None:
    seen: dict[str, NewRecord] = {}
    i = 0
    while True:  # a birthday search for two records whose ids share 8 hex digits (about 80k hashes)
        rec = _record(f"c{i}")
        prefix = rec.record_id.hex()[:8]
        if prefix in seen:
            break
        seen[prefix] = rec
        i += 1
    shard.add_records([seen[prefix], rec])
    with pytest.raises(AmbiguousRecordId, match="more digits"):
        shard.resolve(prefix)
    assert shard.resolve(rec.record_id.hex()[:20]) == rec.record_id


def test_delete_by_id_and_by_filter(shard: Shard) -> None:
    shard.add_records([_record(f"a{i}", f"a.csv:{i}") for i in range(5)])
    with shard.transaction(now_ms=1000) as writer:
        writer.add([_record(f"old{i}", f"old.csv:{i}") for i in range(3)])
    keep = _record("keep", "keep.txt")
    shard.add_records([keep])
    first = shard.list_records(limit=1)[0].record_id
    assert shard.delete([first]) == 1
    assert shard.delete_where(source_glob="a.csv:*") == 4
    assert shard.delete_where(imported_before_ms=2000) == 3
    assert [m.record_id for m in shard.list_records()] == [keep.record_id]


def test_listing_pages_in_import_order(shard: Shard) -> None:
    records = [_record(f"r{i}") for i in range(25)]
    shard.add_records(records)
    page = shard.list_records(limit=10, offset=10)
    assert [m.record_id for m in page] == [r.record_id for r in records[10:20]]
    assert [rid for rid, _ in shard.iter_bodies(batch=7)] == [r.record_id for r in records]


def test_check_passes_on_a_sound_shard_and_finds_a_damaged_page(vault: Vault) -> None:
    with vault.create_shard("damaged", "text") as shard:
        shard.add_records([_record("x" * 900 + str(i)) for i in range(400)])
        assert shard.check().ok
        assert shard.check().records == 400
        path = shard.info.path
    raw = bytearray(path.read_bytes())
    offset = len(raw) // 2
    raw[offset : offset + 16] = bytes(16)
    path.write_bytes(bytes(raw))
    with vault.open_shard("damaged") as shard:
        report = shard.check()
    assert not report.ok
    assert any("cipher" in p or "unreadable" in p for p in report.problems)


def test_a_shard_from_a_newer_version_is_refused_untouched(vault: Vault) -> None:
    with vault.create_shard("future", "text") as shard:
        shard.add_records([_record("x")])
        shard._connection.execute("PRAGMA user_version = 99")
        path = shard.info.path
    with pytest.raises(StorageError, match="could not be opened: `datanet vault check` says why"):
        vault.open_shard("future")
    broken = vault.scan_shards()[1]
    assert [b.path for b in broken] == [path]
    assert "schema version 99, newer than this datanet understands" in broken[0].reason


def test_migrations_bring_an_empty_database_to_the_current_version(tmp_path: Path) -> None:
    import sqlite3

    connection = sqlite3.connect(tmp_path / "plain.db", isolation_level=None)
    migrate(connection)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    migrate(connection)  # idempotent
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "records"} <= tables
    connection.close()


def test_a_version_1_shard_is_migrated_keeping_its_records(tmp_path: Path) -> None:
    import sqlite3

    from storage import shard_schema as shard_module

    connection = sqlite3.connect(tmp_path / "v1.db", isolation_level=None)
    for statement in shard_module._MIGRATIONS[1].split(";"):
        if statement.strip():
            connection.execute(statement)
    connection.execute("PRAGMA user_version = 1")
    rec = _record("kept")
    connection.execute(
        "INSERT INTO records (id, body, source, imported_at, size, salt) VALUES (?, ?, 'a', 1, ?, ?)",
        (rec.record_id, rec.body, len(rec.body), bytes(32)),
    )
    migrate(connection)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert connection.execute("SELECT id, batch_root FROM records").fetchall() == [(rec.record_id, None)]
    assert dict(connection.execute("SELECT origin, n FROM record_counts").fetchall()) == {"own": 1, "peer": 0}
    connection.close()


def test_the_kept_counts_follow_every_change_and_the_check_finds_them_wrong(shard: Shard) -> None:
    """Counting reads the counts the writers keep (no scan while a sync writes); they must equal a real count
    after imports, duplicates, received records and both kinds of delete, and `check` says when they do not."""

    def real() -> dict[str, int]:
        rows = shard._connection.execute("SELECT origin, count(*) FROM records GROUP BY origin").fetchall()
        return {"own": 0, "peer": 0, **dict(rows)}

    shard.add_records([_record(f"own {i}", source=f"a.jsonl:{i}") for i in range(30)])
    shard.add_records([_record(f"own {i}") for i in range(25, 35)])  # 5 duplicates, 5 new
    shard.add_records([_record(f"peer {i}", source=f"peer x:{i}") for i in range(12)], received_from="12D3KooWx")
    shard.add_records([_record("own 3")], received_from="12D3KooWx")  # held already: stays own, not counted twice
    assert shard.count_by_origin() == real() == {"own": 35, "peer": 12}
    assert shard.count() == 47
    assert shard.delete([_record("own 1").record_id, _record("peer 2").record_id, b"\x00" * 32]) == 2
    assert shard.delete_where(source_glob="peer x:1*") == 3  # peer 1, 10, 11
    assert shard.count_by_origin() == real() == {"own": 34, "peer": 8}
    assert shard.check().ok

    shard._connection.execute("UPDATE record_counts SET n = n + 1 WHERE origin = 'peer'")
    assert shard.check().problems == ("counts: 9 peer records counted, 8 held",)


def test_a_write_that_would_leave_too_little_free_space_stops_and_keeps_nothing(vault: Vault, shard: Shard) -> None:
    shard.add_records([_record("kept before")])
    free = shutil.disk_usage(shard.info.path.parent).free
    vault.disk.min_free_bytes = free + (1 << 30)  # the vault's guard, shared by its open shards
    with pytest.raises(DiskLow) as caught:
        shard.add_records([_record(f"note {i}") for i in range(100)])
    assert "Stopped before the disk filled" in str(caught.value) and caught.value.exit_code == 8
    assert shard.count() == 1  # the transaction rolled back
    vault.disk.min_free_bytes = 0  # 0: no check
    assert shard.add_records([_record(f"note {i}") for i in range(100)]) == (100, 0)
