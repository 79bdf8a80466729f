"""Proving a Datanet's pending own records into batches of 16 (client/contribution.py does the proving), as a
plain call with progress and a stop flag."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client.contribution import ProvedBatch, prove_for_binding, prove_pending
from client.errors import ClientError
from client.identity import Identity
from storage.vault import Vault

Progress = Callable[[dict[str, Any]], None]
_PROVING: dict[str, threading.Lock] = {}  # one proving run per Datanet at a time (prove and submit jobs both prove)
_PROVING_LOCK = threading.Lock()


def _proving(name: str) -> threading.Lock:
    with _PROVING_LOCK:
        return _PROVING.setdefault(name, threading.Lock())


def prove(
    vault: Vault,
    identity: Identity,
    data_dir: Path,
    name: str,
    *,
    limit: int | None = None,
    datanet_id: int | None = None,
    workers: int = 1,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    isolate: bool = True,
) -> dict[str, Any]:
    """Prove up to `limit` pending records of `name` (all of them by default). A shard bound to an on-chain
    Datanet proves for that id (and first proves its earlier batches again for it, once); an unbound one for
    `datanet_id`, or else an id derived from the shard. `stop` ends it between batches; each stored batch stays."""
    started = time.perf_counter()

    def on_batch(batch: ProvedBatch, number: int, total: int) -> None:
        if progress is not None:
            progress({"batches_done": number, "batches": total, "seconds_each": round(batch.seconds, 3)})

    with _proving(name), vault.open_shard(name) as shard:  # a second run waits, then finds what is left
        binding = shard.binding()
        if binding is not None and datanet_id not in (None, binding.datanet_id):
            raise ClientError(
                f"Datanet {name!r} is bound to on-chain Datanet {binding.datanet_id}: its proofs are made for "
                "that id; leave out --datanet-id."
            )
        prove_for_binding(shard, identity, data_dir)
        done = prove_pending(
            shard,
            identity,
            data_dir,
            limit=limit,
            datanet_id=None if binding is not None else datanet_id,
            workers=workers,
            on_batch=on_batch,
            stop=stop,
            isolate=isolate,
        )
        left = len(shard.pending())
    return {
        "datanet": name,
        "batches": [{"root": f"{b.root:064x}", "count": b.count, "folder": str(b.folder)} for b in done],
        "records": sum(b.count for b in done),
        "pending": left,
        "seconds": round(time.perf_counter() - started, 3),
        "workers": workers,
    }
