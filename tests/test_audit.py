"""The audit log (storage/audit.py): entries chained by hash in an encrypted file; a changed, removed or inserted
entry, or a changed record id, breaks the chain at that entry; nothing of it is readable without the key."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from storage.audit import FILE, AuditError, AuditLog

PEER = "12D3KooWQ7Jx3fZ1oVfPBdhSUh2R1Hx5cTpQjmW8PX3c2b9eNfYk"


@pytest.fixture
def key() -> bytes:
    return secrets.token_bytes(32)


def filled(tmp_path: Path, key: bytes) -> tuple[AuditLog, list[bytes]]:
    log = AuditLog.open(tmp_path, key)
    ids = [secrets.token_bytes(32) for _ in range(3)]
    log.append("records.sent", {"datanet": "ward", "peer": PEER, "count": 3}, ids)
    log.append("tx.sent", {"method": "submitBatch", "datanet": "ward", "tx": "0x" + "ab" * 32})
    log.append("proof.sent", {"circuit": "membership", "poll": 2})
    return log, ids


def test_entries_read_back_in_order_with_their_ids_and_the_chain_verifies(tmp_path: Path, key: bytes) -> None:
    log, ids = filled(tmp_path, key)
    entries = list(log.entries())
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert entries[0]["kind"] == "records.sent" and entries[0]["peer"] == PEER
    assert entries[0]["record_ids"] == [i.hex() for i in ids] and "record_ids" not in entries[1]
    verified = log.verify()
    assert verified.ok and verified.entries == 3 and verified.head == entries[-1]["hash"] and verified.problem is None
    log.close()
    again = AuditLog.open(tmp_path, key)  # it survives a restart, and the chain goes on from its head
    again.append("tx.sent", {"method": "join", "datanet": "ward", "tx": "0x" + "cd" * 32})
    assert again.verify().ok and again.verify().entries == 4
    future = int(time.time() * 1000) + 60_000
    assert list(again.entries(since_ms=future)) == []


@pytest.mark.parametrize(
    ("tamper", "says"),
    [
        (
            "UPDATE entries SET details = replace(details, '\"count\":3', '\"count\":2') WHERE seq = 1",
            "entry 1 was changed",
        ),
        ("UPDATE entries SET kind = 'tx.nothing' WHERE seq = 2", "entry 2 was changed"),
        ("UPDATE entries SET at_ms = at_ms + 1 WHERE seq = 3", "entry 3 was changed"),
        ("DELETE FROM entries WHERE seq = 2", "entry 2 is missing"),
        ("UPDATE entry_ids SET record_id = zeroblob(32) WHERE rowid = 2", "the record ids of entry 1 were changed"),
        ("DELETE FROM entry_ids WHERE rowid = 3", "the record ids of entry 1 were changed"),
    ],
)
def test_a_changed_entry_breaks_the_chain_there(tmp_path: Path, key: bytes, tamper: str, says: str) -> None:
    log, _ = filled(tmp_path, key)
    log._db.execute(tamper)  # what someone with the key, but not this code, could do to the file
    verified = log.verify()
    assert not verified.ok and says in str(verified.problem) and "\n" not in str(verified.problem)


def test_the_file_is_private_and_encrypted(tmp_path: Path, key: bytes) -> None:
    log, ids = filled(tmp_path, key)
    log.close()
    path = tmp_path / FILE
    assert path.stat().st_mode & 0o777 == 0o600
    content = b"".join(p.read_bytes() for p in tmp_path.glob(FILE + "*"))
    for clear in (b"records.sent", PEER.encode(), b"ward", b"submitBatch", ids[0]):
        assert clear not in content
    with pytest.raises(AuditError, match="cannot be opened"):
        AuditLog.open(tmp_path, secrets.token_bytes(32))
