"""`datanet prove NAME`: prove the not-yet-batched records of a Datanet, and `datanet batches NAME`."""

from __future__ import annotations

import argparse
import os
import sys
import time

from client.cli.context import Context
from client.cli.output import table
from client.contribution import ProvedBatch, prove_for_binding, prove_pending
from client.errors import ClientError
from prover.poseidon import FIELD


def _positive(text: str) -> int:
    """Checked while parsing, so a bad value is a usage error (exit 2), not a failure of the command."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _scalar(text: str) -> int:
    if not text.isdigit() or int(text) >= FIELD:
        raise argparse.ArgumentTypeError(f"{text!r} is not a BN254 scalar (0 <= id < r)")
    return int(text)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("prove", help="zero-knowledge proofs of contribution for records not yet in a batch")
    p.add_argument("name", help="Datanet name")
    p.add_argument("--batch", type=_positive, metavar="N", help="prove at most N records (default: all pending)")
    p.add_argument("--datanet-id", type=_scalar, help="the Datanet's on-chain id (default: derived locally)")
    p.add_argument(
        "--jobs", type=_positive, default=os.cpu_count() or 1, help="proofs in parallel (default: all cores)"
    )
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
    if args.background:
        from client.cli.attach import attach

        job = attach(ctx).call("prove", datanet=args.name, workers=args.jobs, datanet_id=args.datanet_id)
        ctx.out.emit(job, f"Queued job {job['id']}: proving {args.name!r} on the node (`datanet jobs` shows it).")
        return 0
    opened = ctx.open(create=False)

    def report(batch: ProvedBatch, number: int, total: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\rproving batch {number}/{total} ({batch.seconds:.2f}s each)")
            sys.stderr.flush()

    started = time.perf_counter()
    with opened.vault.open_shard(args.name) as shard:
        binding = shard.binding()
        if binding is not None and args.datanet_id not in (None, binding.datanet_id):
            raise ClientError(
                f"Datanet {args.name!r} is bound to on-chain Datanet {binding.datanet_id}: its proofs are made for "
                "that id; leave out --datanet-id."
            )
        prove_for_binding(shard, opened.identity, ctx.config.data_dir)
        done = prove_pending(
            shard,
            opened.identity,
            ctx.config.data_dir,
            limit=args.batch,
            datanet_id=args.datanet_id,
            workers=args.jobs,
            on_batch=report,
        )
        left = len(shard.pending())
    if sys.stderr.isatty() and done:
        sys.stderr.write("\n")
    records = sum(b.count for b in done)
    wall = time.perf_counter() - started
    text = (
        f"{len(done)} batch(es) proved, {records} records in {wall:.1f}s"
        + (f" ({records / wall:.0f} records/s, {args.jobs} at a time)" if done else "")
        + f"; {left} records still pending."
        + "".join(f"\n  {b.root:064x}  {b.count:2d} records  {b.folder}" for b in done)
    )
    ctx.out.emit(
        {
            "datanet": args.name,
            "batches": [{"root": f"{b.root:064x}", "count": b.count, "folder": str(b.folder)} for b in done],
            "records": records,
            "pending": left,
            "seconds": round(wall, 3),
        },
        text,
    )
    return 0


def cmd_batches(ctx: Context, args: argparse.Namespace) -> int:
    if args.received:
        return _received_batches(ctx, args)
    opened = ctx.open(create=False)
    with opened.vault.open_shard(args.name) as shard:
        batches = shard.batches()
        left = len(shard.pending())
    rows = [[b.root.hex()[:16], str(b.count), b.status] for b in batches]
    text = table(rows, ["ROOT", "RECORDS", "STATUS"]) if rows else "No batches yet: `datanet prove NAME`."
    ctx.out.emit(
        {
            "datanet": args.name,
            "batches": [{"root": b.root.hex(), "count": b.count, "status": b.status} for b in batches],
            "pending": left,
        },
        text + f"\n{left} records not in any batch yet.",
    )
    return 0


def _received_batches(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=False)
    with opened.vault.open_shard(args.name) as shard:
        received = shard.provenance.received_batches()
        waiting = shard.provenance.counts()["unverified"]
    rows = [
        [c.root.hex()[:16], str(c.count), f"{c.commitment:064x}"[:16], "on chain" if c.chain else ""] for c in received
    ]
    text = (
        table(rows, ["ROOT", "RECORDS", "CONTRIBUTOR", "ON CHAIN (THEIR CLAIM)"])
        if rows
        else "No verified batches of other contributors yet (they arrive with sync)."
    )
    ctx.out.emit(
        {
            "datanet": args.name,
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
        },
        text + (f"\n{waiting} carried batch(es) not checked yet." if waiting else ""),
    )
    return 0
