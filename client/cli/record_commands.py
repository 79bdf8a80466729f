"""`datanet create|list|import` and `datanet records NAME ...`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from client.app import records as records_app
from client.cli import chain_commands
from client.cli.attach import attach, first_run, job_result
from client.cli.context import Context
from client.cli.output import human_bytes, table
from client.datanet import DEFAULT_TASK, TASKS
from client.errors import ClientError, ImportRejected
from storage.key_file import write_private_file
from storage.shard import OWN, Shard


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


def _provenance_text(items: list[dict[str, Any]]) -> str:
    if not items:
        return "provenance  none known: not in a proven batch here, and no verified batch of it was received\n"
    lines = []
    for p in items:
        who = "you (proved here)" if p["own"] else f"contributor {p['contributor_commitment']}"
        lines.append(
            f"provenance  {who}\n            batch {p['batch_root']} (record {p['position'] + 1} of {p['count']})"
            + ("" if p["own"] else f", carried by peer {p['carried_by']}, proof verified here")
            + (
                f"\n            submitted on chain {p['chain'].split(':')[0]} in {p['tx']}"
                if p["own"] and p.get("chain")
                else ""
            )
        )
    return "\n".join(lines) + "\n"


def cmd_create(ctx: Context, args: argparse.Namespace) -> int:
    on_chain_only = ("--private", "--policy", "--join-stake", "--batch-stake")
    if not args.on_chain and (args.private or args.policy or args.join_stake or args.batch_stake):
        raise ClientError(f"{', '.join(on_chain_only)} describe the on-chain Datanet; add --on-chain.")
    created = first_run(ctx)
    options: dict[str, Any] = {}
    if args.on_chain:
        options = {
            "on_chain": True,
            "private": args.private,
            "policy": args.policy,
            "join_stake": args.join_stake,
            "batch_stake": args.batch_stake,
        }
    result = attach(ctx, chain=args.on_chain).call(
        "create", datanet=args.name, task=args.task, timeout=chain_commands.CHAIN_TIMEOUT, **options
    )
    chain = result["chain"]
    ctx.out.emit(
        {**result, **created},
        f"Datanet {result['datanet']!r} created ({result['task']})"
        + (f" and registered on chain: id {chain['id']}, {chain['visibility']}, {chain['policy']}." if chain else "."),
    )
    return 0


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    if args.chain:
        on_chain, text = chain_commands.list_on_chain(ctx)
        ctx.out.emit({"datanets": on_chain}, text)
        return 0
    opened = ctx.open(create=False)  # a read: the vault is opened here, whether a node runs or not
    listed = records_app.datanets(opened.vault)
    items = [
        {k: d[k] for k in ("name", "task", "records", "own", "peer", "bytes", "pending", "created_at")}
        for d in listed["datanets"]
    ]
    rows = [[str(i["name"]), str(i["task"]), str(i["records"]), human_bytes(int(i["bytes"]))] for i in items]
    text = table(rows, ["NAME", "TASK", "RECORDS", "SIZE"]) if rows else "No Datanets yet: `datanet create NAME`."
    if listed["unreadable"]:
        text += (
            f"\n{len(listed['unreadable'])} shard file(s) could not be opened: run `datanet vault check` for details."
        )
    ctx.out.emit({"datanets": items, "unreadable": listed["unreadable"]}, text)
    return 0


def _import_progress(lines: bool) -> Any:
    """Progress on stderr: a live line on a terminal, or (with --progress) one line per percent for logs."""
    if not (lines or sys.stderr.isatty()):
        return None
    last: list[Any] = [None, -1]

    def report(event: dict[str, Any]) -> None:
        done, total, label = int(event["done"]), int(event["total"]), str(event.get("file", ""))
        pct = 100 * done // total if total else 100
        if [label, pct] == last:
            return
        last[:] = [label, pct]
        if lines:
            sys.stderr.write(f"importing {label}: {pct}%\n")
        else:
            sys.stderr.write(f"\rimporting {label}: {pct:3d}%" + ("\n" if done >= total else ""))
        sys.stderr.flush()

    return report


def cmd_import(ctx: Context, args: argparse.Namespace) -> int:
    job = attach(ctx).follow(
        "records.import",
        _import_progress(args.progress),
        datanet=args.name,
        paths=[str(path.absolute()) for path in args.files],
        format=args.format,
        skip_bad=args.skip_bad,
    )
    result = job_result(job)
    lines = []
    for summary in result["imported"]:
        bad = f", {summary['skipped_count']} bad lines skipped" if summary["skipped_count"] else ""
        theirs = (
            f" ({summary['already_received']} of them received from peers earlier: they stay received, not yours)"
            if summary["already_received"]
            else ""
        )
        lines.append(
            f"{summary['file']}: {summary['added']} added, {summary['duplicates']} duplicates skipped{theirs}{bad}"
        )
        lines += [f"  skipped {problem}" for problem in summary["skipped"]]
        if summary["skipped_count"] > len(summary["skipped"]):
            lines.append(f"  (the first {len(summary['skipped'])} of {summary['skipped_count']} listed)")
    for refusal in result["rejected"]:
        lines.append(refusal["message"])
        lines += [f"  {problem}" for problem in refusal["problems"]]
    lines.append(f"Datanet {args.name!r} now holds {result['records']} records.")
    ctx.out.emit(result, "\n".join(lines))
    return ImportRejected.exit_code if result["rejected"] else 0


def cmd_list_records(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=False)
    listed = records_app.list_records(opened.vault, args.name, limit=args.limit, offset=args.offset, source=args.source)
    metas, total = listed["records"], listed["total"]
    rows = [[m["id"][:16], m["source"], m["imported_at"], human_bytes(m["size"]), m["origin"]] for m in metas]
    text = table(rows, ["ID", "SOURCE", "IMPORTED (UTC)", "SIZE", "ORIGIN"]) if rows else "No records."
    if len(metas) < total:
        text += f"\n{len(metas)} of {total} shown (--limit, --offset)."
    ctx.out.emit(listed, text)
    return 0


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=False)
    shown = records_app.show(opened.vault, args.name, args.id)
    origin = "imported here (own)" if shown["origin"] == OWN else f"received from peer {shown['received_from']}"
    ctx.out.emit(
        shown,
        f"id        {shown['id']}\nsource    {shown['source']}\norigin    {origin}\n"
        f"imported  {shown['imported_at']} UTC\nsize      {shown['size']} bytes\n"
        + _provenance_text(shown["provenance"])
        + json.dumps(shown["record"], indent=2, ensure_ascii=False),
    )
    return 0


def cmd_export(ctx: Context, args: argparse.Namespace) -> int:
    target: Path = args.file
    if target.exists() and not args.force:
        raise ClientError(f"{target} exists; choose another file or pass --force to overwrite it.")
    opened = ctx.open(create=False)
    written = 0

    def lines(shard: Shard) -> Iterator[bytes]:  # streamed from the shard to the file, one record at a time
        nonlocal written
        for _, body in shard.iter_bodies():
            written += 1
            yield body + b"\n"

    with opened.vault.open_shard(args.name) as shard:
        write_private_file(target.absolute(), lines(shard))
    ctx.out.emit(
        {"datanet": args.name, "file": str(target), "records": written},
        f"{written} records written to {target}. That file is NOT encrypted: keep it safe, delete it after use.",
    )
    return 0


def cmd_delete(ctx: Context, args: argparse.Namespace) -> int:
    if not args.ids and args.source is None and args.before is None:
        raise ClientError("Say what to delete: record ids, --source GLOB, or --before DATE.")
    if args.ids and (args.source is not None or args.before is not None):
        raise ClientError("Delete either by ids or by filter (--source/--before), not both at once.")
    result = attach(ctx).call(
        "records.delete", datanet=args.name, ids=args.ids or None, source=args.source, before_ms=args.before
    )
    ctx.out.emit(result, f"{result['deleted']} record(s) deleted; {result['records']} left.")
    return 0


def cmd_count(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=False)
    with opened.vault.open_shard(args.name) as shard:
        total, size = shard.count(), shard.total_bytes()
    ctx.out.emit({"datanet": args.name, "records": total, "bytes": size}, f"{total} records, {human_bytes(size)}")
    return 0
