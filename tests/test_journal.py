"""The job journal: answered from memory, written in order by its own thread; what was written before `close`
is there after a reopen, in the order jobs were added; jobs a stop or crash left running are resumed or failed.
It is encrypted (its parameters name Datanets, files and peers); an older plaintext journal is moved into it."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import stat
from pathlib import Path

import pytest

from client.node.journal import Journal, JournalUnreadable, UnknownJob

KEY = bytes(range(32))


def test_states_and_progress_survive_a_reopen_in_order_and_running_jobs_are_resumed_or_failed(tmp_path: Path) -> None:
    path = tmp_path / "node" / "jobs.db"
    journal = Journal(path, KEY)
    first = journal.add("sync", {"datanet": "ward", "peer": "/ip4/127.0.0.1/tcp/1/p2p/x"})
    second = journal.add("import", {"datanet": "ward", "paths": ["/a.jsonl"]})
    third = journal.add("prove", {"datanet": "ward"})
    journal.set_state(first.id, "running")
    journal.set_progress(first.id, {"received": 3})
    journal.set_state(second.id, "running")
    journal.set_state(third.id, "done")
    assert [j.id for j in journal.jobs()] == [third.id, second.id, first.id]  # newest first, from memory
    journal.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    again = Journal(path, KEY)
    assert [(j.id, j.state) for j in again.jobs()] == [
        (third.id, "done"),
        (second.id, "running"),
        (first.id, "running"),
    ]
    assert again.get(first.id).progress == {"received": 3}
    resumed, failed = again.recover({"sync", "prove"})
    assert [j.id for j in resumed] == [first.id] and [j.id for j in failed] == [second.id]
    assert [j.id for j in again.queued()] == [first.id]
    assert again.get(second.id).error == "interrupted by a node restart; start it again"
    with pytest.raises(UnknownJob, match="There is no job 'nope' here"):
        again.get("nope")
    again.close()
    assert [(j.state) for j in Journal(path, KEY).jobs()] == ["done", "failed", "queued"]


def test_the_journal_on_disk_names_no_datanet_file_or_peer_and_a_wrong_key_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "node" / "jobs.db"
    journal = Journal(path, KEY)
    journal.add("import", {"datanet": "oncology-ward", "paths": ["/home/dr/patients.csv"]})
    journal.add("sync", {"datanet": "oncology-ward", "peer": "/ip4/10.1.2.3/tcp/4001/p2p/x"})
    journal.close()
    for file in path.parent.iterdir():
        content = file.read_bytes()
        for clear in (b"oncology", b"patients", b"10.1.2.3", b"import", b"SQLite format"):
            assert clear not in content, (clear, file.name)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(JournalUnreadable, match=r"jobs.db cannot be read: it is damaged or not this vault's\. Move"):
        Journal(path, secrets.token_bytes(32))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # a wrong key changes nothing
    assert [j.params["datanet"] for j in Journal(path, KEY).jobs()] == ["oncology-ward"] * 2


def test_a_plaintext_journal_of_an_older_version_is_moved_into_the_encrypted_one(tmp_path: Path) -> None:
    folder = tmp_path / "node"
    folder.mkdir()
    legacy = sqlite3.connect(folder / "jobs.sqlite")  # the schema and rows of an earlier build's plaintext journal
    legacy.execute(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, params TEXT NOT NULL, state TEXT NOT NULL, "
        "progress TEXT NOT NULL DEFAULT '{}', error TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL)"
    )
    legacy.execute(
        "INSERT INTO jobs VALUES ('j1', 'prove', ?, 'done', '{\"batches_done\": 2}', NULL, 10, 20)",
        (json.dumps({"datanet": "ward"}),),
    )
    legacy.execute("INSERT INTO jobs VALUES ('j2', 'sync', '{}', 'running', '{}', NULL, 30, 40)")
    legacy.commit()
    legacy.close()
    journal = Journal(folder / "jobs.db", KEY)
    assert [(j.id, j.kind, j.state, j.params, j.progress) for j in journal.jobs()] == [
        ("j2", "sync", "running", {}, {}),
        ("j1", "prove", "done", {"datanet": "ward"}, {"batches_done": 2}),
    ]
    journal.close()
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("jobs.sqlite")) == []
    assert b"ward" not in (folder / "jobs.db").read_bytes()
    assert [j.id for j in Journal(folder / "jobs.db", KEY).jobs()] == ["j2", "j1"]
