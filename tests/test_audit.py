"""The audit log (storage/audit.py): entries chained by hash in an encrypted file; a changed, removed or inserted
entry, or a changed record id, breaks the chain at that entry; nothing of it is readable without the key."""

from __future__ import annotations

import json
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


def test_a_sync_and_a_refusal_are_in_the_node_audit_log_and_the_cli_checks_it(tmp_path: Path) -> None:
    from tests.test_node import jsonl, make_node, nodes

    with nodes(tmp_path, 2) as (a, b):
        b.cli.ok("import", "ward", str(jsonl(tmp_path / "b.jsonl", range(20))))
        a.cli.ok("import", "ward", str(jsonl(tmp_path / "a.jsonl", range(100, 105))))
        b.start()
        stranger = make_node(tmp_path, "stranger")
        stranger.cli.ok("members", "ward", "add", b.peer_id)
        assert stranger.cli.run("sync", "ward", "--peer", b.address).code == 1  # b refuses it: not a member
        a.cli.ok("sync", "ward", "--peer", b.address)  # a asks; both send what the other lacks
        b.stop()

        for node, theirs, count in ((b, a, 20), (a, b, 5)):
            lines = node.cli.ok("audit", "export").stdout.splitlines()
            entries = [json.loads(line) for line in lines]
            sent = [e for e in entries if e["kind"] == "records.sent"]
            assert [(e["peer"], e["datanet"], e["count"], len(e["record_ids"])) for e in sent] == [
                (theirs.peer_id, "ward", count, count)
            ]
            assert set(sent[0]["record_ids"]) <= set(node.ids()) and set(sent[0]["record_ids"]) <= set(theirs.ids())
        refused = [json.loads(x) for x in b.cli.ok("audit", "export").stdout.splitlines()]
        assert [e["peer"] for e in refused if e["kind"] == "admission.refused"] == [stranger.peer_id]
        assert b.cli.ok("audit", "export", "--since", "2099-01-01").stdout == ""
        verified = b.cli.ok("--json", "audit", "verify").json()
        assert verified["ok"] and verified["entries"] == 2

        # A changed entry: `audit verify` says where, exit code 5 (opened here with the vault's own key).
        from storage import audit
        from storage.vault import Vault

        passphrase = b.cli.env["DATANET_PASSPHRASE"]
        vault = Vault.unlock(b.cli.data_dir, keystore=None, passphrase=lambda: passphrase)
        log = audit.open_for(vault)
        log._db.execute("UPDATE entries SET details = replace(details, 'ward', 'ward2') WHERE seq = 2")
        log.close()
        broken = b.cli.run("audit", "verify")
        assert broken.code == 5 and "entry 2 was changed" in broken.stdout
