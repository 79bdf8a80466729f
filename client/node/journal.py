"""The node's durable job journal: jobs (imports, syncs, proving, submissions, training) are recorded in SQLite,
so that after a restart, crash or SIGKILL included, each job is resumed or reported failed, never left "running".

    <data dir>/node/jobs.db (0600): SQLCipher under the vault secret "journal", like a shard, since a job's
    parameters name Datanets, files and peers; an earlier build's plaintext jobs.sqlite is moved into it
    jobs(id, kind, params JSON, state, progress JSON, error, created_ms, updated_ms)
    state: queued -> running -> done | failed | cancelled ; queued -> cancelled ;
           running -> queued when the node stops, or on a restart when the kind can resume

Reads are answered from memory and writes go to SQLite in the journal's own writer thread, in order, so the
node's event loop never waits for an fsync. What a crash can lose is the last few state changes, and each job is
idempotent against that (its data is in the shard, not here): a job found "running" or "queued" again simply
runs again and finds its work done. `close` writes everything still queued.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sqlcipher3 import dbapi2 as sqlcipher

from client.errors import ClientError
from storage import sqlcipher_db
from storage.errors import StorageError

logger = logging.getLogger(__name__)

STATES: Final = ("queued", "running", "done", "failed", "cancelled")
FILE: Final = "jobs.db"
LEGACY_FILE: Final = "jobs.sqlite"  # an earlier build's: plaintext SQLite
KEY_NAME: Final = "journal"  # the vault secret that holds the journal's key
_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, params TEXT NOT NULL, "
    "state TEXT NOT NULL, progress TEXT NOT NULL DEFAULT '{}', error TEXT, created_ms INTEGER NOT NULL, "
    "updated_ms INTEGER NOT NULL)"
)
_SELECT: Final = "SELECT id, kind, params, state, progress, error, created_ms, updated_ms FROM jobs"


class UnknownJob(ClientError):
    pass


class JournalUnreadable(ClientError):
    pass


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    kind: str
    params: dict[str, Any]
    state: str
    progress: dict[str, Any]
    error: str | None
    created_ms: int
    updated_ms: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "params": self.params,
            "state": self.state,
            "progress": self.progress,
            "error": self.error,
            "created_ms": self.created_ms,
            "updated_ms": self.updated_ms,
        }


def _now() -> int:
    return int(time.time() * 1000)


def _open(path: Path, key: bytes) -> Any:
    """The journal's encrypted database, created when missing (an earlier build's plaintext one moved in first)."""
    if sqlcipher_db.adopt_plaintext(path.with_name(LEGACY_FILE), path, key):
        logger.info("the job journal moved into its encrypted file")
    connection = sqlcipher_db.open_or_create(path, key)
    connection.execute(_SCHEMA)
    return connection


class Journal:
    def __init__(self, path: Path, key: bytes) -> None:
        """Open the journal at `path` (the node's: `<data dir>/node/jobs.db`) with its key (the vault secret
        "journal"); JournalUnreadable in one sentence when the file is damaged or not this vault's."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self._con = _open(path, key)
            self._con.execute("PRAGMA synchronous=FULL")
            rows = self._con.execute(_SELECT + " ORDER BY created_ms, rowid").fetchall()
        except (StorageError, sqlite3.DatabaseError, sqlcipher.DatabaseError) as exc:
            logger.warning("the job journal %s did not open: %s", path, exc)
            raise JournalUnreadable(
                f"The job journal {path} cannot be read: it is damaged or not this vault's. Move it aside and start "
                "the node again (the list of past jobs is lost; no record is)."
            ) from exc
        self._lock = threading.Lock()  # the in-memory jobs: read and changed from the loop and from worker threads
        self._jobs = {r[0]: Job(r[0], r[1], json.loads(r[2]), r[3], json.loads(r[4]), r[5], r[6], r[7]) for r in rows}
        self._writes: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_all, name="journal-writer", daemon=True)
        self._writer.start()

    def _write_all(self) -> None:
        while (job := self._writes.get()) is not None:
            try:
                self._write(job)
            except sqlcipher.Error:  # a full or failing disk: the node goes on, the log says what was not kept
                logger.exception("job %s (%s) could not be written to the journal", job.id, job.state)

    def _write(self, job: Job) -> None:
        self._con.execute(
            "INSERT INTO jobs (id, kind, params, state, progress, error, created_ms, updated_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state, "
            "progress = excluded.progress, error = excluded.error, updated_ms = excluded.updated_ms",
            (
                job.id,
                job.kind,
                json.dumps(job.params, sort_keys=True),
                job.state,
                json.dumps(job.progress),
                job.error,
                job.created_ms,
                job.updated_ms,
            ),
        )

    def _put(self, job: Job) -> Job:
        with self._lock:
            self._jobs[job.id] = job
        self._writes.put(job)
        return job

    def add(self, kind: str, params: dict[str, Any]) -> Job:
        now = _now()
        return self._put(Job(uuid.uuid4().hex[:16], kind, params, "queued", {}, None, now, now))

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob(f"There is no job {job_id!r} here; `datanet jobs` lists them.")
        return job

    def jobs(self, *, limit: int = 100) -> list[Job]:
        with self._lock:  # the dict keeps the order jobs were added in
            newest = list(reversed(self._jobs.values()))
        return newest[:limit]

    def set_state(self, job_id: str, state: str, *, error: str | None = None) -> None:
        assert state in STATES, state
        self._put(dataclasses.replace(self.get(job_id), state=state, error=error, updated_ms=_now()))

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        self._put(dataclasses.replace(self.get(job_id), progress=progress, updated_ms=_now()))

    def recover(self, resumable: set[str]) -> tuple[list[Job], list[Job]]:
        """At start: jobs left running by a stop or a crash are queued again (kinds that resume) or failed."""
        resumed, failed = [], []
        for job in [j for j in self.jobs(limit=len(self._jobs)) if j.state == "running"]:
            if job.kind in resumable:
                self.set_state(job.id, "queued")
                resumed.append(self.get(job.id))
            else:
                self.set_state(job.id, "failed", error="interrupted by a node restart; start it again")
                failed.append(self.get(job.id))
        return resumed, failed

    def queued(self) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if j.state == "queued"]

    def close(self) -> None:
        """Write what is still queued, then close."""
        self._writes.put(None)
        self._writer.join()
        self._con.close()
