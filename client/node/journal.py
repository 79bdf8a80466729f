"""The node's durable job journal: long jobs (syncs, proving, training) are recorded in SQLite before they start
and after every change of state, so that after a restart, crash or SIGKILL included, each job is resumed or
reported failed, never left "running".

    <data dir>/node/jobs.sqlite (0600)
    jobs(id, kind, params JSON, state, progress JSON, error, created_ms, updated_ms)
    state: queued -> running -> done | failed | cancelled ; queued -> cancelled ;
           running -> queued when the node stops, or on a restart when the kind can resume
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from client.errors import ClientError

STATES: Final = ("queued", "running", "done", "failed", "cancelled")


class UnknownJob(ClientError):
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


class Journal:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
        self._con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=FULL")  # a state change is durable before the job acts on it
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, params TEXT NOT NULL, "
            "state TEXT NOT NULL, progress TEXT NOT NULL DEFAULT '{}', error TEXT, created_ms INTEGER NOT NULL, "
            "updated_ms INTEGER NOT NULL)"
        )

    def add(self, kind: str, params: dict[str, Any]) -> Job:
        job_id = uuid.uuid4().hex[:16]
        now = _now()
        self._con.execute(
            "INSERT INTO jobs (id, kind, params, state, created_ms, updated_ms) VALUES (?, ?, ?, 'queued', ?, ?)",
            (job_id, kind, json.dumps(params, sort_keys=True), now, now),
        )
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        row = self._con.execute(
            "SELECT id, kind, params, state, progress, error, created_ms, updated_ms FROM jobs WHERE id = ?",
            (job_id,),
        ).fetchone()
        if row is None:
            raise UnknownJob(f"There is no job {job_id!r} here; `datanet jobs` lists them.")
        return Job(row[0], row[1], json.loads(row[2]), row[3], json.loads(row[4]), row[5], row[6], row[7])

    def jobs(self, *, limit: int = 100) -> list[Job]:
        ids = [r[0] for r in self._con.execute("SELECT id FROM jobs ORDER BY created_ms DESC LIMIT ?", (limit,))]
        return [self.get(i) for i in ids]

    def set_state(self, job_id: str, state: str, *, error: str | None = None) -> None:
        assert state in STATES, state
        self._con.execute(
            "UPDATE jobs SET state = ?, error = ?, updated_ms = ? WHERE id = ?", (state, error, _now(), job_id)
        )

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        self._con.execute(
            "UPDATE jobs SET progress = ?, updated_ms = ? WHERE id = ?", (json.dumps(progress), _now(), job_id)
        )

    def recover(self, resumable: set[str]) -> tuple[list[Job], list[Job]]:
        """At start: jobs left running by a stop or a crash are queued again (kinds that resume) or failed."""
        resumed, failed = [], []
        for (job_id,) in self._con.execute("SELECT id FROM jobs WHERE state = 'running'").fetchall():
            job = self.get(job_id)
            if job.kind in resumable:
                self.set_state(job_id, "queued")
                resumed.append(self.get(job_id))
            else:
                self.set_state(job_id, "failed", error="interrupted by a node restart; start it again")
                failed.append(self.get(job_id))
        return resumed, failed

    def queued(self) -> list[Job]:
        ids = [r[0] for r in self._con.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_ms")]
        return [self.get(i) for i in ids]

    def close(self) -> None:
        self._con.close()
