"""The chain commands: `chain up|status|reset|fund|deploy`, `create NAME --on-chain`, `join`, `leave`, `allow`,
`list --chain` and `submit NAME`. Without --rpc-url they use the embedded devnet in the data directory."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import sys
from typing import TYPE_CHECKING, Any

from client.chain.types import POLICIES
from client.cli.context import Context
from client.cli.output import table
from client.datanet import TASKS
from client.errors import ClientError
from client.unlock import Opened
from storage.vault import Vault

if TYPE_CHECKING:  # web3 takes about a second to import: only the chain commands pay for it
    from client.chain.session import ChainSession
    from client.chain.types import ChainStatus, DatanetInfo
    from storage.shard import ChainBinding

ETHER = 10**18


def schema_hash(task: str) -> bytes:
    """What a Datanet's records look like, as the registry stores it: the hash of its task's name."""
    return hashlib.sha256(f"datanet/task/{task}".encode()).digest()


def task_of(schema: str) -> str | None:
    return next((t for t in TASKS if "0x" + schema_hash(t).hex() == schema), None)


def _wei(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in wei (a whole number)")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
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
    p.add_argument("--ether", type=_positive, default=100)
    p.set_defaults(handler=cmd_fund)
    csub.add_parser("deploy", help="deploy the contracts to the --rpc-url chain and remember where").set_defaults(
        handler=cmd_deploy
    )

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
    p.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1, help="proofs in parallel")
    p.set_defaults(handler=cmd_submit)


def add_create_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--on-chain", action="store_true", help="also register the Datanet on chain")
    p.add_argument("--private", action="store_true", help="on chain: only allow-listed or staking members")
    p.add_argument(
        "--policy", choices=POLICIES, help="on chain: who may join (default: open, or allow-list if private)"
    )
    p.add_argument("--join-stake", type=_wei, default=0, help="on chain: wei a member deposits (policy stake)")
    p.add_argument("--batch-stake", type=_wei, default=0, help="on chain: least wei staked with each batch")


def _session(ctx: Context, opened: Opened) -> ChainSession:
    from client.chain.session import open_chain

    return open_chain(ctx.config, opened.identity.evm_private_key)


def _datanet_json(d: DatanetInfo) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "owner": d.owner,
        "visibility": d.visibility,
        "policy": d.policy,
        "task": task_of(d.schema_hash),
        "join_stake": d.join_stake,
        "batch_stake": d.batch_stake,
        "members": d.member_count,
    }


def _find(session: ChainSession, name: str) -> DatanetInfo:
    found = session.client.find_datanet(name)
    if found is None:
        raise ClientError(
            f"There is no Datanet named {name!r} on this chain; register yours with `datanet create {name} --on-chain`."
        )
    return found


def _status_json(status: ChainStatus, kind: str) -> dict[str, Any]:
    d = status.deployment
    return {
        "chain": kind,
        "rpc": status.rpc,
        "chain_id": status.chain_id,
        "block": status.block,
        "account": status.account,
        "balance_wei": status.balance,
        "contracts": None
        if d is None
        else {k: v for k, v in dataclasses.asdict(d).items() if k not in ("chain_id", "block")},
    }


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=args.chain_command == "up")
    with _session(ctx, opened) as session:
        status = session.client.status()
    data = _status_json(status, session.kind)
    contracts = data["contracts"] or {}
    text = (
        f"chain     {status.rpc} (chain id {status.chain_id}), block {status.block}\n"
        f"account   {status.account}: {status.balance / ETHER:.4f} ETH\n"
        + "\n".join(f"{name:<19} {address}" for name, address in contracts.items())
    )
    ctx.out.emit({**data, **ctx.created_fields(opened)}, text)
    return 0


def cmd_reset(ctx: Context, args: argparse.Namespace) -> int:
    if ctx.config.rpc_url is not None:
        raise ClientError("Only the embedded devnet can be reset; a real chain keeps its history.")
    if not args.yes:
        raise ClientError(
            "Resetting throws away everything recorded on the embedded devnet (Datanets, batches, stakes); "
            "re-run with --yes to do it. Your local records are not touched."
        )
    from client.chain.devnet import DEVNET_CHAIN_ID
    from client.chain.session import reset_devnet

    reset_devnet(ctx.config)
    if Vault.exists(ctx.config.data_dir):  # shards bound to the devnet's Datanets are bound to nothing now
        opened = ctx.open(create=False)
        for info in opened.vault.list_shards():
            with opened.vault.open_shard(info.name) as shard:
                binding = shard.binding()
                if binding is not None and binding.chain_id == DEVNET_CHAIN_ID:
                    shard.unbind()
    ctx.out.emit(
        {"reset": True},
        "The embedded devnet was reset; the next chain command starts a new one. `datanet submit` submits your "
        "batches again there.",
    )
    return 0


def cmd_fund(ctx: Context, args: argparse.Namespace) -> int:
    if ctx.config.rpc_url is not None:
        raise ClientError("Only the embedded devnet has a faucet; fund your account on that chain yourself.")
    opened = ctx.open(create=False)
    with _session(ctx, opened) as session:
        assert session.devnet is not None
        from client.chain.session import faucet_transfer

        faucet_transfer(session.devnet, session.client.deployment, session.client.address, args.ether * ETHER)
        balance = session.client.status().balance
    ctx.out.emit(
        {"account": session.client.address, "balance_wei": balance},
        f"{session.client.address} now holds {balance / ETHER:.4f} ETH on the devnet.",
    )
    return 0


def cmd_deploy(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=False)
    from client.chain.session import deploy_to_rpc

    deployment = deploy_to_rpc(ctx.config, opened.identity.evm_private_key)
    data = dataclasses.asdict(deployment)
    ctx.out.emit(
        data,
        f"Contracts deployed on chain {deployment.chain_id}:\n"
        + "\n".join(f"  {k:<19} {v}" for k, v in data.items() if k not in ("chain_id", "block")),
    )
    return 0


def create_on_chain(ctx: Context, opened: Opened, name: str, task: str, args: argparse.Namespace) -> dict[str, Any]:
    policy: Any = args.policy or ("allow-list" if args.private else "open")
    with _session(ctx, opened) as session:
        info = session.client.create_datanet(
            name,
            schema_hash(task),
            "private" if args.private else "public",
            policy,
            join_stake=args.join_stake,
            batch_stake=args.batch_stake,
        )
        reproved = bind_shard(ctx, opened, session, name, info)
    return {**_datanet_json(info), "batches_proved_again": reproved}


def bind_shard(ctx: Context, opened: Opened, session: ChainSession, name: str, info: DatanetInfo) -> int:
    """Bind the local shard `name` to the on-chain Datanet `info` and prove its earlier batches again for it (once);
    returns how many were proved again."""
    from client.contribution import prove_for_binding
    from storage.shard import ChainBinding

    binding = ChainBinding(session.client.status().chain_id, session.client.deployment.registry.lower(), info.id)
    with opened.vault.open_shard(name) as shard:
        shard.bind(binding)
        return prove_for_binding(shard, opened.identity, ctx.config.data_dir)


def cmd_join(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open()
    with _session(ctx, opened) as session:
        info = _find(session, args.name)
        member = session.client.is_member(info.id, session.client.address)
        local_binding = _binding_of(opened, args.name)
        if member and local_binding is not None and local_binding.datanet_id == info.id:
            raise ClientError(f"You are already a member of Datanet {args.name!r}.")
        if not member and info.policy == "stake" and info.join_stake > 0 and not args.pay_stake:
            raise ClientError(
                f"Joining {args.name!r} needs a stake of {info.join_stake} wei (refunded when you leave); re-run "
                "with --pay-stake to deposit it."
            )
        task = task_of(info.schema_hash)
        _check_bindable(opened, args.name, task, info)  # before any stake is paid
        result = None if member else session.client.join(info.id)  # a member already: binding is what is left
        created = False
        if task is not None and args.name not in set(local_names(opened)):
            with opened.vault.create_shard(args.name, task):
                created = True
        bound = args.name in set(local_names(opened))
        reproved = bind_shard(ctx, opened, session, args.name, info) if bound else 0
    ctx.out.emit(
        {
            **_datanet_json(info),
            "tx": None if result is None else result.tx_hash,
            "local_shard_created": created,
            "bound": bound,
        },
        (
            f"Joined Datanet {args.name!r} (id {info.id})."
            if result is not None
            else f"You were a member of Datanet {args.name!r} (id {info.id}) already; your shard is bound to it now."
        )
        + (f" Created its local shard ({task})." if created else "")
        + (f" Proved {reproved} earlier batch(es) again for it." if reproved else ""),
    )
    return 0


def _check_bindable(opened: Opened, name: str, task: str | None, info: DatanetInfo) -> None:
    """A local shard of that name must serve the on-chain Datanet's task and be bound to nothing else."""
    if name not in set(local_names(opened)):
        return
    with opened.vault.open_shard(name) as shard:
        binding, local_task = shard.binding(), shard.info.task
    if binding is not None and binding.datanet_id != info.id:
        raise ClientError(
            f"Your Datanet {name!r} is bound to another on-chain Datanet (id {binding.datanet_id}); nothing was joined."
        )
    if task != local_task:
        raise ClientError(
            f"Your Datanet {name!r} serves the {local_task} task, but the one on chain serves "
            f"{task or 'a task this version does not know'}; nothing was joined."
        )


def _binding_of(opened: Opened, name: str) -> ChainBinding | None:
    if name not in set(local_names(opened)):
        return None
    with opened.vault.open_shard(name) as shard:
        return shard.binding()


def local_names(opened: Opened) -> list[str]:
    return [info.name for info in opened.vault.list_shards()]


def cmd_leave(ctx: Context, args: argparse.Namespace) -> int:
    opened = ctx.open(create=False)
    with _session(ctx, opened) as session:
        info = _find(session, args.name)
        result = session.client.leave(info.id)
    refund = sum(int(e["refund"]) for e in result.events if e["event"] == "MemberLeft")
    ctx.out.emit(
        {"datanet": args.name, "tx": result.tx_hash, "refund_wei": refund},
        f"Left Datanet {args.name!r}" + (f"; {refund} wei refunded." if refund else ".") + " Local records are kept.",
    )
    return 0


def cmd_allow(ctx: Context, args: argparse.Namespace) -> int:
    account = args.account
    if not (account.startswith("0x") and len(account) == 42):
        raise ClientError(f"{account!r} is not an account address (0x followed by 40 hex digits).")
    opened = ctx.open(create=False)
    with _session(ctx, opened) as session:
        info = _find(session, args.name)
        session.client.set_allowed(info.id, account, not args.remove)
    verb = "removed from" if args.remove else "added to"
    ctx.out.emit(
        {"datanet": args.name, "account": account, "allowed": not args.remove},
        f"{account} {verb} Datanet {args.name!r}'s allow-list.",
    )
    return 0


def list_on_chain(ctx: Context, opened: Opened) -> tuple[list[dict[str, Any]], str]:
    with _session(ctx, opened) as session:
        me = session.client.address
        items = [{**_datanet_json(d), "member": session.client.is_member(d.id, me)} for d in session.client.datanets()]
    rows = [
        [str(i[k]) for k in ("id", "name", "visibility", "policy", "members")] + ["yes" if i["member"] else ""]
        for i in items
    ]
    text = table(rows, ["ID", "NAME", "VISIBILITY", "POLICY", "MEMBERS", "JOINED"]) if rows else "No Datanets on chain."
    return items, text


def cmd_submit(ctx: Context, args: argparse.Namespace) -> int:
    from client.submission import submit_pending

    opened = ctx.open(create=False)

    def progress(line: str) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\r{line}   ")
            sys.stderr.flush()

    with opened.vault.open_shard(args.name) as shard, _session(ctx, opened) as session:
        info = _find(session, args.name)
        report = submit_pending(
            shard,
            opened.identity,
            ctx.config.data_dir,
            session.client,
            session.chain_key,
            info,
            stake=args.stake,
            workers=args.jobs,
            on_progress=progress,
        )
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    sent = [s for s in report.submitted if s.tx_hash is not None]
    found = len(report.submitted) - len(sent)
    records = sum(s.count for s in report.submitted)
    text = (
        f"Datanet {args.name!r} (id {info.id}): {len(report.submitted)} batch(es), {records} records submitted"
        + (f" ({found} already on chain from an earlier run)" if found else "")
        + (f"; {report.already} were submitted before." if report.already else ".")
        + "".join(f"\n  {s.root:064x}  {s.count:2d} records  {s.tx_hash or 'found on chain'}" for s in report.submitted)
    )
    ctx.out.emit(
        {
            "datanet": args.name,
            "datanet_id": info.id,
            "proved": report.proved,
            "submitted": [
                {"root": f"{s.root:064x}", "count": s.count, "tx": s.tx_hash, "gas": s.gas_used}
                for s in report.submitted
            ],
            "already_submitted": report.already,
            "seconds": round(report.seconds, 3),
        },
        text,
    )
    return 0


def register_adapter(ctx: Context, adapter_id: str, manifest: dict[str, Any]) -> int:
    """`datanet adapters register ID`: the adapter's content hash, base model weights, Datanet and batches."""
    name = manifest["datanet"]["name"]
    roots = [int(root, 16) for root in manifest["trained_on"]["batch_roots"]]
    opened = ctx.open(create=False)
    with _session(ctx, opened) as session:
        info = _find(session, name)
        missing = [root for root in roots if session.client.batch(root) is None]
        if missing:
            raise ClientError(
                f"{len(missing)} of the {len(roots)} batches this adapter was trained on are not on chain yet; "
                f"run `datanet submit {name}` first."
            )
        result = session.client.register_adapter(
            bytes.fromhex(adapter_id), bytes.fromhex(manifest["base_model"]["weights_sha256"]), info.id, roots
        )
    ctx.out.emit(
        {"adapter": adapter_id, "datanet": name, "datanet_id": info.id, "batches": len(roots), "tx": result.tx_hash},
        f"Adapter {adapter_id[:16]} registered on chain for Datanet {name!r} ({len(roots)} batches).",
    )
    return 0
