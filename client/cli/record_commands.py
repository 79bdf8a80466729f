"""`datanet create|list|import` and `datanet records NAME ...`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from client.cli import chain_commands
from client.cli.context import Context
from client.cli.output import human_bytes, table
from client.datanet import DEFAULT_TASK, TASKS
from client.errors import ClientError, ImportRejected
from client.importers import ImportSummary, ProgressCallback, import_path
from storage.key_file import write_private_file
from storage.provenance import Provenance
from storage.shard import OWN, RecordMeta
from storage.vault import BrokenShard


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("create", help="create a Datanet shard in your vault")
    p.add_argument("name")
    p.add_argument("--task", choices=sorted(TASKS), default=DEFAULT_TASK, help="what the records are for")
    chain_commands.add_create_options(p)
    p.set_defaults(handler=cmd_create)

    p = sub.add_parser("list", help="list your Datanets (--chain: the Datanets registered on chain)")
    p.add_argument("--chain", action="store_true", help="list the Datanets on chain instead")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("import", help="import JSONL, CSV or a folder of text files into a Datanet")
    p.add_argument("name")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--skip-bad", action="store_true", help="import the good records and list the bad lines")
    p.add_argument("--format", choices=["jsonl", "csv", "text"], help="input format (default: from the name)")
    p.add_argument("--progress", action="store_true", help="print progress lines on stderr even without a terminal")
    p.set_defaults(handler=cmd_import)

    p = sub.add_parser("records", help="list, show, export, delete or count a Datanet's records")
    p.add_argument("name")
    rsub = p.add_subparsers(dest="records_command", metavar="COMMAND")
    p.set_defaults(handler=cmd_list_records, limit=20, offset=0, source=None)
    q = rsub.add_parser("list", help="record ids with their source, time and size (default)")
    q.add_argument("--limit", type=int, default=20)
    q.add_argument("--offset", type=int, default=0)
    q.add_argument("--source", help="only records whose source matches this glob, e.g. 'notes.csv:*'")
    q.set_defaults(handler=cmd_list_records)
    q = rsub.add_parser("show", help="one record, by id (8 or more hex digits)")
    q.add_argument("id")
    q.set_defaults(handler=cmd_show)
    q = rsub.add_parser("export", help="write the records to a JSONL file (unencrypted, mode 0600)")
    q.add_argument("file", type=Path)
    q.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    q.set_defaults(handler=cmd_export)
    q = rsub.add_parser("delete", help="delete records by id or by filter")
    q.add_argument("ids", nargs="*", metavar="ID")
    q.add_argument("--source", help="delete records whose source matches this glob")
    q.add_argument("--before", type=_date, help="delete records imported before this date (YYYY-MM-DD, UTC)")
    q.set_defaults(handler=cmd_delete)
    rsub.add_parser("count", help="number of records and their total size").set_defaults(handler=cmd_count)


def _date(text: str) -> int:
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-24") from None
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _meta(meta: RecordMeta) -> dict[str, object]:
    return {
        "id": meta.record_id.hex(),
        "source": meta.source,
        "imported_at": _when(meta.imported_at_ms),
        "size": meta.size,
        "origin": meta.origin,
        "received_from": meta.received_from,
    }


def _provenance(items: list[Provenance], leaves: dict[bytes, list[tuple[bytes, int]]]) -> list[dict[str, object]]:
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


def _provenance_text(items: list[Provenance]) -> str:
    if not items:
        return "provenance  none known: not in a proven batch here, and no verified batch of it was received\n"
    lines = []
    for p in items:
        who = "you (proved here)" if p.own else f"contributor {p.commitment:#066x}"
        lines.append(
            f"provenance  {who}\n            batch {p.root.hex()} (record {p.position + 1} of {p.count})"
            + ("" if p.own else f", carried by peer {p.from_peer}, proof verified here")
            + (f"\n            submitted on chain {p.chain.split(':')[0]} in {p.tx_hash}" if p.chain and p.own else "")
        )
    return "\n".join(lines) + "\n"


def cmd_create(ctx: Context, args: argparse.Namespace) -> int:
    on_chain_only = ("--private", "--policy", "--join-stake", "--batch-stake")
    if not args.on_chain and (args.private or args.policy or args.join_stake or args.batch_stake):
        raise ClientError(f"{', '.join(on_chain_only)} describe the on-chain Datanet; add --on-chain.")
    opened = ctx.open()
    if args.on_chain and args.name in chain_commands.local_names(opened):  # registering an existing Datanet
        with opened.vault.open_shard(args.name) as shard:
            info = shard.info
    else:
        with opened.vault.create_shard(args.name, args.task) as shard:
            info = shard.info
    chain: dict[str, object] | None = None
    if args.on_chain:
        try:
            chain = chain_commands.create_on_chain(ctx, opened, info.name, info.task, args)
        except ClientError as exc:
            raise ClientError(
                f"Datanet {info.name!r} is in your vault but not on chain: {exc} Once that is fixed, register "
                f"it with `datanet create {info.name} --on-chain`."
            ) from exc
    ctx.out.emit(
        {"datanet": info.name, "task": info.task, "uuid": info.uuid, "chain": chain, **ctx.created_fields(opened)},
        f"Datanet {info.name!r} created ({info.task})"
        + (f" and registered on chain: id {chain['id']}, {chain['visibility']}, {chain['policy']}." if chain else "."),
    )
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=False)
    if args.chain:
        on_chain, text = chain_commands.list_on_chain(ctx, opened)
        ctx.out.emit({"datanets": on_chain}, text)
        return 0
    items, broken = [], []
    for item in opened.vault.each_shard():
        if isinstance(item, BrokenShard):
            broken.append(item)
            continue
        with item as shard:
            info = shard.info
            items.append(
                {
                    "name": info.name,
                    "task": info.task,
                    "records": shard.count(),
                    "bytes": shard.total_bytes(),
                    "created_at": _when(info.created_at_ms),
                }
            )
    items.sort(key=lambda i: str(i["name"]).lower())
    rows = [[str(i["name"]), str(i["task"]), str(i["records"]), human_bytes(int(str(i["bytes"])))] for i in items]
    text = table(rows, ["NAME", "TASK", "RECORDS", "SIZE"]) if rows else "No Datanets yet: `datanet create NAME`."
    if broken:
        text += f"\n{len(broken)} shard file(s) could not be opened: run `datanet vault check` for details."
    ctx.out.emit({"datanets": items, "unreadable": [str(b.path) for b in broken]}, text)
    return 0


def _progress(label: str, lines: bool) -> ProgressCallback | None:
    """Progress on stderr: a live line on a terminal, or (with --progress) one line per percent for logs."""
    if not (lines or sys.stderr.isatty()):
        return None
    last = -1

    def report(done: int, total: int) -> None:
        nonlocal last
        pct = 100 * done // total if total else 100
        if pct == last:
            return
        last = pct
        if lines:
            sys.stderr.write(f"importing {label}: {pct}%\n")
        else:
            sys.stderr.write(f"\rimporting {label}: {pct:3d}%" + ("\n" if done >= total else ""))
        sys.stderr.flush()

    return report


def cmd_import(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=False)
    summaries: list[ImportSummary] = []
    rejected: list[ImportRejected] = []
    with opened.vault.open_shard(args.name) as shard:
        for path in args.files:
            try:
                summaries.append(
                    import_path(
                        shard,
                        path,
                        fmt=args.format,
                        skip_bad=args.skip_bad,
                        progress=_progress(path.name, args.progress),
                    )
                )
            except ImportRejected as exc:
                rejected.append(exc)
        total = shard.count()
    lines = []
    for summary in summaries:
        bad = f", {len(summary.skipped)} bad lines skipped" if summary.skipped else ""
        theirs = (
            f" ({summary.already_received} of them received from peers earlier: they stay received, not yours)"
            if summary.already_received
            else ""
        )
        lines.append(f"{summary.path}: {summary.added} added, {summary.duplicates} duplicates skipped{theirs}{bad}")
        lines += [f"  skipped {problem}" for problem in summary.skipped]
    for refusal in rejected:
        lines.append(str(refusal))
        lines += [f"  {problem}" for problem in refusal.problems]
    lines.append(f"Datanet {args.name!r} now holds {total} records.")
    ctx.out.emit(
        {
            "datanet": args.name,
            "imported": [s.as_dict() for s in summaries],
            "rejected": [{"message": str(e), "problems": e.problems} for e in rejected],
            "records": total,
        },
        "\n".join(lines),
    )
    return ImportRejected.exit_code if rejected else 0


def cmd_list_records(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=False)
    with opened.vault.open_shard(args.name) as shard:
        metas = shard.list_records(limit=args.limit, offset=args.offset, source_glob=args.source)
        total = shard.count()
    rows = [[m.record_id.hex()[:16], m.source, _when(m.imported_at_ms), human_bytes(m.size), m.origin] for m in metas]
    text = table(rows, ["ID", "SOURCE", "IMPORTED (UTC)", "SIZE", "ORIGIN"]) if rows else "No records."
    if len(metas) < total:
        text += f"\n{len(metas)} of {total} shown (--limit, --offset)."
    ctx.out.emit({"datanet": args.name, "total": total, "records": [_meta(m) for m in metas]}, text)
    return 0


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=False)
    with opened.vault.open_shard(args.name) as shard:
        record = shard.get(shard.resolve(args.id))
        known = shard.provenance.of_record(record.meta.record_id)
        leaves = {p.root: shard.provenance.leaves_of(p.root) for p in known}
    content = json.loads(record.body)
    origin = "imported here (own)" if record.meta.origin == OWN else f"received from peer {record.meta.received_from}"
    ctx.out.emit(
        {**_meta(record.meta), "provenance": _provenance(known, leaves), "record": content},
        f"id        {record.meta.record_id.hex()}\nsource    {record.meta.source}\norigin    {origin}\n"
        f"imported  {_when(record.meta.imported_at_ms)} UTC\nsize      {record.meta.size} bytes\n"
        + _provenance_text(known)
        + json.dumps(content, indent=2, ensure_ascii=False),
    )
    return 0


def cmd_export(ctx: Context, args: argparse.Namespace) -> int:
    target: Path = args.file
    if target.exists() and not args.force:
        raise ClientError(f"{target} exists; choose another file or pass --force to overwrite it.")
    opened = ctx.open(create=False)
    with opened.vault.open_shard(args.name) as shard:
        chunks = [body + b"\n" for _, body in shard.iter_bodies()]
    write_private_file(target.absolute(), b"".join(chunks))
    ctx.out.emit(
        {"datanet": args.name, "file": str(target), "records": len(chunks)},
        f"{len(chunks)} records written to {target}. That file is NOT encrypted: keep it safe, delete it after use.",
    )
    return 0


def cmd_delete(ctx: Context, args: argparse.Namespace) -> int:
    if not args.ids and args.source is None and args.before is None:
        raise ClientError("Say what to delete: record ids, --source GLOB, or --before DATE.")
    if args.ids and (args.source is not None or args.before is not None):
        raise ClientError("Delete either by ids or by filter (--source/--before), not both at once.")
    opened = ctx.open(create=False)
    with opened.vault.open_shard(args.name) as shard:
        if args.ids:
            deleted = shard.delete([shard.resolve(i) for i in args.ids])
        else:
            deleted = shard.delete_where(source_glob=args.source, imported_before_ms=args.before)
        total = shard.count()
    ctx.out.emit(
        {"datanet": args.name, "deleted": deleted, "records": total}, f"{deleted} record(s) deleted; {total} left."
    )
    return 0


def cmd_count(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=False)
    with opened.vault.open_shard(args.name) as shard:
        total, size = shard.count(), shard.total_bytes()
    ctx.out.emit({"datanet": args.name, "records": total, "bytes": size}, f"{total} records, {human_bytes(size)}")
    return 0
