"""`datanet audit export [--since DATE] [--output FILE]` (the audit log as JSON Lines, for an auditor) and
`datanet audit verify` (its hash chain checked; exit code 5 when it breaks). Both read the log directly (the node
writes it; a reader beside it is fine)."""

from __future__ import annotations

import argparse
import calendar
import json
import sys
import time
from pathlib import Path

from client.cli.context import Context
from client.errors import ClientError
from storage import audit

EXIT_BROKEN = 5  # as `vault check`: a check that found damage


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="what left this machine: export the audit log, or verify its hash chain")
    asub = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    e = asub.add_parser("export", help="the audit log as JSON Lines (records sent, proofs, transactions, refusals)")
    e.add_argument("--since", help="only entries from this day on (YYYY-MM-DD, UTC)")
    e.add_argument("--output", help="write to this file (0600) instead of standard output")
    e.set_defaults(handler=cmd_export)
    asub.add_parser("verify", help="check the audit log's hash chain (exit code 5 when it is broken)").set_defaults(
        handler=cmd_verify
    )


def _since(text: str | None) -> int:
    if text is None:
        return 0
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%d")) * 1000
    except ValueError:
        raise ClientError(f"{text!r} is not a day; write it as YYYY-MM-DD (UTC).") from None


def cmd_export(ctx: Context, args: argparse.Namespace) -> int:
    since = _since(args.since)
    log = audit.open_for(ctx.open(create=False).vault)
    try:
        lines = [json.dumps(entry, sort_keys=True) + "\n" for entry in log.entries(since)]
    finally:
        log.close()
    if args.output is None:
        sys.stdout.writelines(lines)
    else:
        from storage.key_file import write_private_file

        write_private_file(Path(args.output), "".join(lines).encode())
        print(f"{len(lines)} entries written to {args.output}.", file=sys.stderr)
    return 0


def cmd_verify(ctx: Context, args: argparse.Namespace) -> int:
    log = audit.open_for(ctx.open(create=False).vault)
    try:
        verified = log.verify()
    finally:
        log.close()
    data = {"ok": verified.ok, "entries": verified.entries, "head": verified.head, "problem": verified.problem}
    if verified.ok:
        ctx.out.emit(data, f"The audit log's chain holds: {verified.entries} entries, head {verified.head[:16]}.")
        return 0
    ctx.out.emit(data, f"{verified.problem} {verified.entries} entries before it verify.")
    return EXIT_BROKEN
