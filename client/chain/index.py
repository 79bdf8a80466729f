"""The client's own index of chain events, filled from the receipts of its own transactions (and, for events
others cause, from bounded `eth_getLogs` windows after a cursor). Scanning the whole chain with getLogs grows
with its length; this never does.

One SQLite file per data directory (0600); rows are keyed by chain id and ledger address, so a devnet reset or
another network never mixes with the rest.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from client.chain.types import Deployment


class EventIndex:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
        self._con = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        with self._con:
            self._con.execute(
                "CREATE TABLE IF NOT EXISTS events (chain INTEGER, ledger TEXT, block INTEGER, tx TEXT, "
                "log_index INTEGER, event TEXT, args TEXT, PRIMARY KEY (chain, ledger, tx, log_index))"
            )
            self._con.execute("CREATE INDEX IF NOT EXISTS events_by_name ON events (chain, ledger, event)")

    def add(self, deployment: Deployment, block: int, tx: str, events: list[dict[str, Any]]) -> None:
        rows = [
            (
                deployment.chain_id,
                deployment.ledger.lower(),
                block,
                tx,
                e["logIndex"],
                e["event"],
                json.dumps({k: v for k, v in e.items() if k not in ("event", "logIndex")}, default=str),
            )
            for e in events
        ]
        with self._lock, self._con:
            self._con.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def events(self, deployment: Deployment, name: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT block, tx, event, args FROM events WHERE chain = ? AND ledger = ?"
        params: list[Any] = [deployment.chain_id, deployment.ledger.lower()]
        if name is not None:
            query += " AND event = ?"
            params.append(name)
        with self._lock:
            rows = self._con.execute(query + " ORDER BY block, log_index", params).fetchall()
        return [{"block": b, "tx": t, "event": e, **json.loads(a)} for b, t, e, a in rows]

    def close(self) -> None:
        self._con.close()
