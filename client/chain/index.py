"""The client's own index of chain events, filled from the receipts of its own transactions (and, for events
others cause, from bounded `eth_getLogs` windows after a cursor). Scanning the whole chain with getLogs grows
with its length; this never does.

One SQLCipher file per data directory (0600, under the vault secret "chain": the events name Datanets and this
client's account); rows are keyed by chain id and ledger address, so a devnet reset or another network never mixes
with the rest.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from client.chain.types import Deployment
from storage import sqlcipher_db


class EventIndex:
    def __init__(self, path: Path, key: bytes, *, legacy: Path | None = None) -> None:
        """Open (or create) the index at `path` with its key; an earlier build's plaintext `legacy` file is moved in
        first. ShardUnreadable (a StorageError) when the file does not decrypt."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if legacy is not None:
            sqlcipher_db.adopt_plaintext(legacy, path, key)
        self._con = sqlcipher_db.open_or_create(path, key)
        self._lock = threading.Lock()
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
        with self._lock:
            self._con.execute("BEGIN")
            try:
                self._con.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

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
