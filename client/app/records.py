"""Datanets and their records in the vault, as plain values: create, list, show, import, delete, members
and batches. Every function takes the unlocked `Vault` and a Datanet's exact name and returns a JSON-ready dict;
errors are the vault's and the importers' own (one sentence each, client/failures.py)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from client.datanet import TASKS
from client.errors import ClientError, ImportRejected
from client.importers import Format, ImportSummary, ProgressCallback, import_path
from storage.provenance import Provenance
from storage.shard import RecordMeta, Shard
from storage.vault import BrokenShard, Vault

PEER_ID_PREFIXES = ("12D3KooW", "Qm")


def when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def meta_json(meta: RecordMeta) -> dict[str, Any]:
    return {
        "id": meta.record_id.hex(),
        "source": meta.source,
        "imported_at": when(meta.imported_at_ms),
        "size": meta.size,
        "origin": meta.origin,
        "received_from": meta.received_from,
    }


def _binding_json(shard: Shard) -> dict[str, Any] | None:
    binding = shard.binding()
    if binding is None:
        return None
    return {"chain_id": binding.chain_id, "registry": binding.registry, "datanet_id": str(binding.datanet_id)}


def summary(shard: Shard) -> dict[str, Any]:
    """One Datanet as `datanets` lists it."""
    info = shard.info
    batches = shard.batches()
    return {
        "name": info.name,
        "task": info.task,
        "uuid": info.uuid,
        "created_at": when(info.created_at_ms),
        "records": shard.count(),
        **shard.count_by_origin(),
        "bytes": shard.total_bytes(),
        "pending": len(shard.pending()),
        "batches": {
            "proven": sum(1 for b in batches if b.status != "submitted"),
            "submitted": sum(1 for b in batches if b.status == "submitted"),
        },
        "members": shard.members(),
        "binding": _binding_json(shard),
    }


def datanets(vault: Vault) -> dict[str, Any]:
    """Every Datanet in the vault, by name; shard files that cannot be opened are listed apart."""
    items, broken = [], []
    for item in vault.each_shard():
        if isinstance(item, BrokenShard):
            broken.append(str(item.path))
            continue
        with item as shard:
            items.append(summary(shard))
    items.sort(key=lambda i: str(i["name"]).lower())
    return {"datanets": items, "unreadable": broken}


def create(vault: Vault, name: str, task: str) -> dict[str, Any]:
    if task not in TASKS:
        raise ClientError(f"{task!r} is not a task this version knows ({', '.join(sorted(TASKS))}).")
    with vault.create_shard(name, task) as shard:
        return {"datanet": shard.info.name, "task": shard.info.task, "uuid": shard.info.uuid}


def list_records(
    vault: Vault, name: str, *, limit: int = 20, offset: int = 0, source: str | None = None
) -> dict[str, Any]:
    if limit < 0 or offset < 0:
        raise ClientError("--limit and --offset are 0 or more.")
    with vault.open_shard(name) as shard:
        metas = shard.list_records(limit=limit, offset=offset, source_glob=source)
        total = shard.count()
    return {"datanet": name, "total": total, "records": [meta_json(m) for m in metas]}


def _provenance_json(items: list[Provenance], leaves: dict[bytes, list[tuple[bytes, int]]]) -> list[dict[str, Any]]:
    from client.provenance import merkle_path

    return [
        {
            "contributor_commitment": f"{p.commitment:#066x}",
            "batch_root": p.root.hex(),
            "position": p.position,
            "count": p.count,
            "salt": f"{p.salt:#066x}",
            "merkle_path": [f"{h:#066x}" for h in merkle_path(leaves[p.root], p.commitment, p.position)],
            "datanet_id": str(p.datanet_id),
            "recipient": f"{p.recipient:#042x}",
            "own": p.own,
            "carried_by": p.from_peer,
            # where the batch was accepted on chain: this node's receipt for its own, the contributor's word (not
            # checked here) for a received one
            "chain" if p.own else "chain_claimed": p.chain,
            "tx" if p.own else "tx_claimed": p.tx_hash,
        }
        for p in items
    ]


def show(vault: Vault, name: str, record_id: str) -> dict[str, Any]:
    """One record (by id or a prefix of 8 or more hex digits): its metadata, provenance and content."""
    with vault.open_shard(name) as shard:
        record = shard.get(shard.resolve(record_id))
        known = shard.provenance.of_record(record.meta.record_id)
        leaves = {p.root: shard.provenance.leaves_of(p.root) for p in known}
    return {**meta_json(record.meta), "provenance": _provenance_json(known, leaves), "record": json.loads(record.body)}


def import_files(
    vault: Vault,
    name: str,
    paths: Sequence[Path],
    *,
    fmt: Format | None = None,
    skip_bad: bool = False,
    progress: ProgressCallback | None = None,
    on_file: Any = None,
    stop: threading.Event | None = None,
) -> dict[str, Any]:
    """Import each file (one transaction each); a rejected file is listed with its problems and the rest go on.
    `on_file(path)` is told when a file starts; `stop` is looked at between files."""
    summaries: list[ImportSummary] = []
    rejected: list[ImportRejected] = []
    with vault.open_shard(name) as shard:
        for path in paths:
            if stop is not None and stop.is_set():
                break
            if on_file is not None:
                on_file(path)
            try:
                summaries.append(import_path(shard, path, fmt=fmt, skip_bad=skip_bad, progress=progress))
            except ImportRejected as exc:
                rejected.append(exc)
        total = shard.count()
    return {
        "datanet": name,
        "imported": [s.as_dict() for s in summaries],
        "rejected": [{"message": str(e), "problems": e.problems} for e in rejected],
        "records": total,
    }


def delete(
    vault: Vault,
    name: str,
    *,
    ids: Sequence[str] = (),
    source: str | None = None,
    before_ms: int | None = None,
) -> dict[str, Any]:
    if not ids and source is None and before_ms is None:
        raise ClientError("Say what to delete: record ids, --source GLOB, or --before DATE.")
    if ids and (source is not None or before_ms is not None):
        raise ClientError("Delete either by ids or by filter (--source/--before), not both at once.")
    with vault.open_shard(name) as shard:
        if ids:
            deleted = shard.delete([shard.resolve(i) for i in ids])
        else:
            deleted = shard.delete_where(source_glob=source, imported_before_ms=before_ms)
        total = shard.count()
    return {"datanet": name, "deleted": deleted, "records": total}


def check_peer_id(peer: str) -> None:
    if not (peer.startswith(PEER_ID_PREFIXES) and 40 <= len(peer) <= 60):
        raise ClientError(f"{peer!r} is not a peer id; peer ids look like 12D3KooW... (`datanet identity show`).")


def members(vault: Vault, name: str, action: str = "list", peer: str | None = None) -> dict[str, Any]:
    """The peers allowed to sync a Datanet; `action` add or remove changes that list."""
    if action not in ("list", "add", "remove"):
        raise ClientError(f"members takes list, add or remove, not {action!r}.")
    if action != "list":
        if not peer:
            raise ClientError(f"`datanet members {name} {action}` needs a peer id (12D3KooW...).")
        check_peer_id(peer)
    with vault.open_shard(name) as shard:
        changed = shard.set_member(peer, action == "add") if action != "list" and peer else False
        listed = shard.members()
    return {"datanet": name, "members": listed, "changed": changed}


def batches(vault: Vault, name: str) -> dict[str, Any]:
    """A Datanet's own proven batches (pending, proven, submitted) and how many records are in none yet."""
    with vault.open_shard(name) as shard:
        own = shard.batches()
        left = len(shard.pending())
    return {
        "datanet": name,
        "batches": [
            {"root": b.root.hex(), "count": b.count, "status": b.status, "chain": b.chain, "tx": b.tx_hash} for b in own
        ],
        "pending": left,
    }


def received_batches(vault: Vault, name: str) -> dict[str, Any]:
    """Other contributors' batches that peers carried here and that were verified; how many wait for a check."""
    with vault.open_shard(name) as shard:
        received = shard.provenance.received_batches()
        waiting = shard.provenance.counts()["unverified"]
    return {
        "datanet": name,
        "received_batches": [
            {
                "root": c.root.hex(),
                "count": c.count,
                "contributor_commitment": f"{c.commitment:#066x}",
                "datanet_id": str(c.datanet_id),
                "records": [record_id.hex() for record_id, _ in c.records],
                "chain_claimed": c.chain,
                "tx_claimed": c.tx_hash,
            }
            for c in received
        ],
        "unverified": waiting,
    }
