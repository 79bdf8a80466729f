"""`datanet prove NAME`: the node proves the not-yet-batched records of a Datanet (the command follows the job, or
leaves it queued with --background), and `datanet batches NAME` (a read, from the vault here)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from client.app import records as records_app
from client.cli.args import positive
from client.cli.attach import attach, job_result
from client.cli.context import Context
from client.cli.output import table
from prover.poseidon import FIELD


def _scalar(text: str) -> int:
    if not text.isdigit() or int(text) >= FIELD:
        raise argparse.ArgumentTypeError(f"{text!r} is not a BN254 scalar (0 <= id < r)")
    return int(text)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("prove", help="zero-knowledge proofs of contribution for records not yet in a batch")
    p.add_argument("name", help="Datanet name")
    p.add_argument("--batch", type=positive, metavar="N", help="prove at most N records (default: all pending)")
    p.add_argument("--datanet-id", type=_scalar, help="the Datanet's on-chain id (default: derived locally)")
    p.add_argument("--jobs", type=positive, default=os.cpu_count() or 1, help="proofs in parallel (default: all cores)")
    p.add_argument(
        "--background", action="store_true", help="queue it as a job of the running node (`datanet jobs` follows it)"
    )
    p.set_defaults(handler=cmd_prove)
    p = sub.add_parser("batches", help="a Datanet's proven contribution batches (--received: other contributors')")
    p.add_argument("name", help="Datanet name")
    p.add_argument(
        "--received", action="store_true", help="the verified batches of other contributors that peers carried here"
    )
    p.set_defaults(handler=cmd_batches)


def cmd_prove(ctx: Context, args: argparse.Namespace) -> int:
    params = {"datanet": args.name, "workers": args.jobs, "datanet_id": args.datanet_id, "limit": args.batch}
    client = attach(ctx)
    if args.background:
        job = client.call("prove", **params)
        ctx.out.emit(job, f"Queued job {job['id']}: proving {args.name!r} on the node (`datanet jobs` shows it).")
        return 0

    def report(event: dict[str, Any]) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(
                f"\rproving batch {event['batches_done']}/{event['batches']} ({event['seconds_each']:.2f}s each)"
            )
            sys.stderr.flush()

    result = job_result(client.follow("prove", report, **params))
    done = result["batches"]
    if sys.stderr.isatty() and done:
        sys.stderr.write("\n")
    records, wall = result["records"], result["seconds"]
    text = (
        f"{len(done)} batch(es) proved, {records} records in {wall:.1f}s"
        + (f" ({records / wall:.0f} records/s, {args.jobs} at a time)" if done and wall else "")
        + f"; {result['pending']} records still pending."
        + "".join(f"\n  {b['root']}  {b['count']:2d} records  {b['folder']}" for b in done)
    )
    ctx.out.emit({k: result[k] for k in ("datanet", "batches", "records", "pending", "seconds")}, text)
    return 0


def cmd_batches(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=False)
    if args.received:
        return _received_batches(ctx, records_app.received_batches(opened.vault, args.name))
    listed = records_app.batches(opened.vault, args.name)
    rows = [[b["root"][:16], str(b["count"]), b["status"]] for b in listed["batches"]]
    text = table(rows, ["ROOT", "RECORDS", "STATUS"]) if rows else "No batches yet: `datanet prove NAME`."
    ctx.out.emit(
        {
            "datanet": args.name,
            "batches": [{k: b[k] for k in ("root", "count", "status")} for b in listed["batches"]],
            "pending": listed["pending"],
        },
        text + f"\n{listed['pending']} records not in any batch yet.",
    )
    return 0


def _received_batches(ctx: Context, listed: dict[str, Any]) -> int:
    received, waiting = listed["received_batches"], listed["unverified"]
    rows = [
        [c["root"][:16], str(c["count"]), c["contributor_commitment"][2:18], "on chain" if c["chain_claimed"] else ""]
        for c in received
    ]
    text = (
        table(rows, ["ROOT", "RECORDS", "CONTRIBUTOR", "ON CHAIN (THEIR CLAIM)"])
        if rows
        else "No verified batches of other contributors yet (they arrive with sync)."
    )
    ctx.out.emit(listed, text + (f"\n{waiting} carried batch(es) not checked yet." if waiting else ""))
    return 0
