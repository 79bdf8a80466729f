"""The chain commands: `chain up|status|reset|fund|deploy`, `join`, `leave`, `allow`, `list --chain`, `submit NAME`
and `adapters register` (governance and polls: gov_commands.py). Each goes through the node, which holds the
chain session (client/app/chain.py): the embedded devnet in the data directory, or --rpc-url (the node must use
the same one)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from client.chain.types import POLICIES
from client.cli.args import positive
from client.cli.attach import attach, first_run, job_result
from client.cli.context import Context
from client.cli.output import table
from client.errors import ClientError
from client.node.control import ControlClient
from storage.vault import Vault

ETHER = 10**18


def _wei(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in wei (a whole number)")
    return int(text)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chain = sub.add_parser("chain", help="the chain: the embedded devnet (default) or --rpc-url")
    csub = chain.add_subparsers(dest="chain_command", required=True, metavar="ACTION")
    csub.add_parser("up", help="make the chain ready (the devnet: create, deploy, fund) and show it").set_defaults(
        handler=cmd_status
    )
    csub.add_parser("status", help="chain id, block, contracts, your account and balance").set_defaults(
        handler=cmd_status
    )
    p = csub.add_parser("reset", help="throw the embedded devnet's state away (local records are kept)")
    p.add_argument("--yes", action="store_true", help="really reset (everything recorded on the devnet is lost)")
    p.set_defaults(handler=cmd_reset)
    p = csub.add_parser("fund", help="devnet only: send ether from the devnet faucet to your account")
    p.add_argument("--ether", type=positive, default=100)
    p.set_defaults(handler=cmd_fund)
    p = csub.add_parser("deploy", help="deploy the contracts to the --rpc-url chain and remember where")
    p.add_argument(
        "--governance",
        choices=["production", "devnet"],
        default="production",
        help="the Governor's periods: production (days) or devnet (minutes, for trying it out)",
    )
    p.set_defaults(handler=cmd_deploy)

    p = sub.add_parser("join", help="join a Datanet on chain (and create its local shard)")
    p.add_argument("name")
    p.add_argument("--pay-stake", action="store_true", help="agree to deposit the Datanet's join stake")
    p.set_defaults(handler=cmd_join)
    p = sub.add_parser("leave", help="leave a Datanet on chain (a join stake is refunded; local records are kept)")
    p.add_argument("name")
    p.set_defaults(handler=cmd_leave)
    p = sub.add_parser("allow", help="owner of a Datanet: allow an account (0x address) to join it, or --remove")
    p.add_argument("name")
    p.add_argument("account")
    p.add_argument("--remove", action="store_true")
    p.set_defaults(handler=cmd_allow)

    p = sub.add_parser("submit", help="prove pending records and submit every batch the chain does not have yet")
    p.add_argument("name", help="Datanet name")
    p.add_argument("--stake", type=_wei, help="wei staked with each batch (default: the Datanet's minimum)")
    p.add_argument("--jobs", type=positive, default=os.cpu_count() or 1, help="proofs in parallel")
    p.add_argument("--limit", type=positive, help="prove at most this many pending records first (whole batches)")
    p.set_defaults(handler=cmd_submit)


def add_create_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--on-chain", action="store_true", help="also register the Datanet on chain")
    p.add_argument("--private", action="store_true", help="on chain: only allow-listed or staking members")
    p.add_argument(
        "--policy", choices=POLICIES, help="on chain: who may join (default: open, or allow-list if private)"
    )
    p.add_argument("--join-stake", type=_wei, default=0, help="on chain: wei a member deposits (policy stake)")
    p.add_argument("--batch-stake", type=_wei, default=0, help="on chain: least wei staked with each batch")


CHAIN_TIMEOUT = 600.0  # seconds a chain call may take in the node (a first devnet deploys its contracts)


def _node(ctx: Context) -> ControlClient:
    return attach(ctx, chain=True)


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    created = first_run(ctx) if args.chain_command == "up" else {}
    data = _node(ctx).call("chain.status", timeout=CHAIN_TIMEOUT)
    contracts = data["contracts"] or {}
    text = (
        f"chain     {data['rpc']} (chain id {data['chain_id']}), block {data['block']}\n"
        f"account   {data['account']}: {data['balance_wei'] / ETHER:.4f} ETH\n"
        + "\n".join(f"{name:<19} {address}" for name, address in contracts.items())
    )
    ctx.out.emit({**data, **created}, text)
    return 0


def cmd_reset(ctx: Context, args: argparse.Namespace) -> int:
    if ctx.config.rpc_url is not None:
        raise ClientError("Only the embedded devnet can be reset; a real chain keeps its history.")
    if not args.yes:
        raise ClientError(
            "Resetting throws away everything recorded on the embedded devnet (Datanets, batches, stakes); "
            "re-run with --yes to do it. Your local records are not touched."
        )
    if Vault.exists(ctx.config.data_dir):  # the node holds the devnet: it resets it and unbinds the shards
        _node(ctx).call("chain.reset", timeout=CHAIN_TIMEOUT)
    else:  # no vault, so no node and no bound shard: only the devnet's files
        from client.chain.session import reset_devnet

        reset_devnet(ctx.config)
    ctx.out.emit(
        {"reset": True},
        "The embedded devnet was reset; the next chain command starts a new one. `datanet submit` submits your "
        "batches again there.",
    )
    return 0


def cmd_fund(ctx: Context, args: argparse.Namespace) -> int:
    if ctx.config.rpc_url is not None:
        raise ClientError("Only the embedded devnet has a faucet; fund your account on that chain yourself.")
    funded = _node(ctx).call("chain.fund", ether=args.ether, timeout=CHAIN_TIMEOUT)
    ctx.out.emit(funded, f"{funded['account']} now holds {funded['balance_wei'] / ETHER:.4f} ETH on the devnet.")
    return 0


def cmd_deploy(ctx: Context, args: argparse.Namespace) -> int:
    if ctx.config.rpc_url is None:
        raise ClientError(
            "The embedded devnet deploys its contracts by itself; `datanet chain deploy` needs --rpc-url."
        )
    data = _node(ctx).call("chain.deploy", governance=args.governance, timeout=CHAIN_TIMEOUT)
    ctx.out.emit(
        data,
        f"Contracts deployed on chain {data['chain_id']}:\n"
        + "\n".join(f"  {k:<19} {v}" for k, v in data.items() if k not in ("chain_id", "block")),
    )
    return 0


def cmd_join(ctx: Context, args: argparse.Namespace) -> int:
    created = first_run(ctx)
    joined = _node(ctx).call("join", datanet=args.name, pay_stake=args.pay_stake, timeout=CHAIN_TIMEOUT)
    reproved = joined.pop("batches_proved_again")
    ctx.out.emit(
        {**joined, **created},
        (
            f"Joined Datanet {args.name!r} (id {joined['id']})."
            if joined["tx"] is not None
            else f"You were a member of Datanet {args.name!r} (id {joined['id']}) already; your shard is bound to "
            "it now."
        )
        + (f" Created its local shard ({joined['task']})." if joined["local_shard_created"] else "")
        + (f" Proved {reproved} earlier batch(es) again for it." if reproved else "")
        + (" Your identity is in its contributor tree: you can vote in its polls." if joined["enrolled"] else ""),
    )
    return 0


def cmd_leave(ctx: Context, args: argparse.Namespace) -> int:
    left = _node(ctx).call("leave", datanet=args.name, timeout=CHAIN_TIMEOUT)
    refund = left["refund_wei"]
    ctx.out.emit(
        left,
        f"Left Datanet {args.name!r}" + (f"; {refund} wei refunded." if refund else ".") + " Local records are kept.",
    )
    return 0


def cmd_allow(ctx: Context, args: argparse.Namespace) -> int:
    account = args.account
    if not (account.startswith("0x") and len(account) == 42):
        raise ClientError(f"{account!r} is not an account address (0x followed by 40 hex digits).")
    allowed = _node(ctx).call("allow", datanet=args.name, account=account, remove=args.remove, timeout=CHAIN_TIMEOUT)
    verb = "removed from" if args.remove else "added to"
    ctx.out.emit(allowed, f"{account} {verb} Datanet {args.name!r}'s allow-list.")
    return 0


def list_on_chain(ctx: Context) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = _node(ctx).call("chain.datanets", timeout=CHAIN_TIMEOUT)
    rows = [
        [str(i[k]) for k in ("id", "name", "visibility", "policy", "members")] + ["yes" if i["member"] else ""]
        for i in items
    ]
    text = table(rows, ["ID", "NAME", "VISIBILITY", "POLICY", "MEMBERS", "JOINED"]) if rows else "No Datanets on chain."
    return items, text


def cmd_submit(ctx: Context, args: argparse.Namespace) -> int:
    def progress(event: dict[str, Any]) -> None:
        if sys.stderr.isatty():
            line = event.get("step") or (
                f"proving batch {event['batches_done']}/{event['batches']}" if "batches_done" in event else "proving"
            )
            sys.stderr.write(f"\r{line}   ")
            sys.stderr.flush()

    job = _node(ctx).follow(
        "submit", progress, datanet=args.name, stake=args.stake, workers=args.jobs, limit=args.limit
    )
    report = job_result(job)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    submitted = report["submitted"]
    sent = [s for s in submitted if s["tx"] is not None]
    found = len(submitted) - len(sent)
    records = sum(s["count"] for s in submitted)
    already = report["already_submitted"]
    text = (
        f"Datanet {args.name!r} (id {report['datanet_id']}): {len(submitted)} batch(es), {records} records submitted"
        + (f" ({found} already on chain from an earlier run)" if found else "")
        + (f"; {already} were submitted before." if already else ".")
        + "".join(f"\n  {s['root']}  {s['count']:2d} records  {s['tx'] or 'found on chain'}" for s in submitted)
    )
    ctx.out.emit(report, text)
    return 0


def register_adapter(ctx: Context, adapter_id: str) -> int:
    """`datanet adapters register ID`: the adapter's content hash, base model weights, Datanet and batches."""
    result = _node(ctx).call("adapters.register", id=adapter_id, timeout=CHAIN_TIMEOUT)
    ctx.out.emit(
        result,
        f"Adapter {result['adapter'][:16]} registered on chain for Datanet {result['datanet']!r} "
        f"({result['batches']} batches).",
    )
    return 0
