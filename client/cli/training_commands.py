"""`datanet train NAME` and `datanet adapters list|show|export|merge`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client.cli.attach import attach, job_result
from client.cli.context import Context
from client.cli.output import human_bytes, table
from client.training import adapters
from client.training.base_models import MODELS
from client.training.errors import TrainingError
from client.training.settings import TrainConfig

DEFAULT = {f.name: f.default for f in dataclasses.fields(TrainConfig)}  # for --help only


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("train", help="fine-tune a LoRA adapter on a Datanet, on this machine (GPU if present)")
    p.add_argument("name", help="Datanet name")
    p.add_argument("--base", choices=sorted(MODELS), help="base model (default: the one for the Datanet's task)")
    # No defaults here: a setting left out is TrainConfig's (client/training/settings.py), the one list of them.
    p.add_argument("--epochs", type=int, help=f"passes over the data (default {DEFAULT['epochs']})")
    p.add_argument("--batch-size", type=int, help=f"examples a step (default {DEFAULT['batch_size']})")
    p.add_argument("--lr", type=float, help=f"learning rate (default {DEFAULT['learning_rate']})")
    p.add_argument("--seed", type=int, help=f"data order and initialisation (default {DEFAULT['seed']})")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads (default: all cores)")
    p.add_argument("--dp-epsilon", type=float, help="train with differential privacy (DP-SGD) at this epsilon")
    p.add_argument("--eval", type=Path, help="public evaluation split (JSONL/CSV); default: a held-out 20%%")
    p.add_argument("--fresh", action="store_true", help="start over instead of resuming an interrupted run")
    p.add_argument("--progress", action="store_true", help="print progress lines even without a terminal")
    p.add_argument(
        "--background", action="store_true", help="queue it as a job of the running node (`datanet jobs` follows it)"
    )
    p.set_defaults(handler=cmd_train)

    a = sub.add_parser("adapters", help="trained LoRA adapters: list, show, export, merge")
    asub = a.add_subparsers(dest="adapters_command", required=True, metavar="COMMAND")
    asub.add_parser("list", help="adapters on this machine").set_defaults(handler=cmd_list)
    q = asub.add_parser("show", help="an adapter's provenance manifest")
    q.add_argument("id")
    q.set_defaults(handler=cmd_show)
    q = asub.add_parser("export", help="copy an adapter (PEFT layout + manifest) to a folder")
    q.add_argument("id")
    q.add_argument("folder", type=Path)
    q.set_defaults(handler=cmd_export)
    q = asub.add_parser("merge", help="combine adapters of the same base model (exact sum of their deltas)")
    q.add_argument("ids", nargs="+", metavar="ID")
    q.add_argument("--weights", type=float, nargs="+", help="one weight per adapter (default: equal, summing to 1)")
    q.set_defaults(handler=cmd_merge)
    q = asub.add_parser("register", help="record an adapter on chain: content hash, base model, Datanet, batches")
    q.add_argument("id")
    q.set_defaults(handler=cmd_register)
    q = asub.add_parser("share", help="offer an adapter (registered on chain) to the members of its Datanet")
    q.add_argument("id")
    q.add_argument("--stop", action="store_true", help="stop offering it")
    q.set_defaults(handler=cmd_share)
    q = asub.add_parser("fetch", help="fetch an adapter a member shares (checked against its id and the chain)")
    q.add_argument("id", help="the adapter's whole id (64 hex digits)")
    q.add_argument("--peer", required=True, help="the sharing member's address (/ip4/.../tcp/.../p2p/...)")
    q.set_defaults(handler=cmd_fetch)


def _printer(enabled: bool) -> Callable[[dict[str, Any]], None]:
    """Progress on stderr: a live line on a terminal, or (with --progress) one line per step for logs."""
    interactive = sys.stderr.isatty()

    def show(event: dict[str, Any]) -> None:
        if not (enabled or interactive) or "step" not in event:
            return
        eta = f", ETA {event['eta_s']:.0f}s" if event.get("eta_s") is not None else ""
        loss = f" loss {event['loss']:.4f}" if event.get("loss") is not None else ""
        dp = (
            f", DP ε {event['dp_epsilon_spent']:.3f} of {event['dp_epsilon_target']:g}"
            if event.get("dp_epsilon_spent") is not None
            else ""
        )
        line = (
            f"step {event['step']}/{event['total_steps']} epoch {event['epoch']}{loss} "
            f"{event['samples_per_s']:.1f} samples/s{eta}{dp}"
        )
        sys.stderr.write(("\r" + line) if interactive and not enabled else line + "\n")
        sys.stderr.flush()

    return show


def cmd_train(ctx: Context, args: argparse.Namespace) -> int:
    settings = {
        "base": args.base,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "seed": args.seed,
        "threads": args.threads,
        "dp_epsilon": args.dp_epsilon,
        "eval": str(args.eval.absolute()) if args.eval else None,
        "fresh": args.fresh or None,
    }
    client = attach(ctx)
    if args.background:
        job = client.call("train", datanet=args.name, **settings)
        ctx.out.emit(job, f"Queued job {job['id']}: training on {args.name!r} on the node (`datanet jobs` shows it).")
        return 0
    summary = job_result(client.follow("train", _printer(args.progress), datanet=args.name, **settings))
    if sys.stderr.isatty() and not args.progress:
        sys.stderr.write("\n")
    m = client.call("adapters.show", id=summary["adapter_id"])["manifest"]
    ev = m["evaluation"]
    metric = "accuracy" if "accuracy" in ev["after"] else "loss"
    dp = m["dp"]
    text = (
        ("Already trained (same Datanet, records and settings): " if summary["reused"] else "Trained ")
        + f"adapter {summary['adapter_id'][:16]} on {m['trained_on']['records']} records of {args.name!r} "
        f"with {m['base_model']['name']} on {m['device']}.\n"
        f"{metric} on {ev['records']} evaluation records ({ev['source']}): "
        f"{ev['before'][metric]:.3f} before, {ev['after'][metric]:.3f} after."
        + (
            f"\nDifferential privacy: epsilon {dp['epsilon_spent']:.2f} spent (target {dp['epsilon_target']}), "
            f"delta {dp['delta']}."
            if dp
            else ""
        )
    )
    ctx.out.emit(
        {
            "job_id": summary["training_job"],
            "node_job": summary.get("id"),
            "adapter_id": summary["adapter_id"],
            "reused": summary["reused"],
            "manifest": m,
        },
        text,
    )
    return 0


def _key(ctx: Context) -> bytes:
    """The manifests' key: a read opens the vault here, whether a node runs or not."""
    return adapters.manifest_key(ctx.open(create=False).vault)


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    infos = adapters.list_adapters(ctx.config.data_dir, _key(ctx))
    rows = []
    for info in infos:
        m = info.manifest
        after = m["evaluation"]["after"]
        metric = (
            f"acc {after['accuracy']:.3f}"
            if "accuracy" in after
            else f"loss {after['loss']:.3f}"
            if "loss" in after
            else "-"
        )
        size = sum((info.path / name).stat().st_size for name in adapters.PEFT_FILES)
        rows.append(
            [
                info.adapter_id[:16],
                m["datanet"]["name"],
                m["base_model"]["name"],
                metric,
                "yes" if m.get("dp") else "no",
                human_bytes(size),
                m["created_at"],
            ]
        )
    text = table(rows, ["ID", "DATANET", "BASE", "EVAL", "DP", "SIZE", "CREATED"]) if rows else "No adapters yet."
    ctx.out.emit({"adapters": [i.manifest for i in infos]}, text)
    return 0


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    info = adapters.find(ctx.config.data_dir, args.id, _key(ctx))
    adapters.verify(info)
    ctx.out.emit(info.manifest, json.dumps(info.manifest, indent=2, sort_keys=True))
    return 0


def cmd_export(ctx: Context, args: argparse.Namespace) -> int:
    info = adapters.find(ctx.config.data_dir, args.id, _key(ctx))
    target = adapters.export(info, args.folder)
    ctx.out.emit(
        {"adapter_id": info.adapter_id, "folder": str(target)},
        f"Adapter {info.adapter_id[:16]} written to {target} (PEFT layout + manifest.json). The manifest names the "
        "Datanet and its labels in clear: share the folder only with whom may know them.",
    )
    return 0


def cmd_merge(ctx: Context, args: argparse.Namespace) -> int:
    from client.training.aggregation import merge

    key = _key(ctx)
    infos = [adapters.find(ctx.config.data_dir, i, key) for i in args.ids]
    weights = args.weights or [1.0 / len(infos)] * len(infos)
    if len(weights) != len(infos):
        raise TrainingError(f"Give one weight per adapter ({len(infos)}), not {len(weights)}.")
    merged = merge(infos, weights, ctx.config.data_dir, key)
    ctx.out.emit(
        {"adapter_id": merged.adapter_id, "manifest": merged.manifest},
        f"Merged adapter {merged.adapter_id[:16]} from {len(infos)} adapters (exact sum of their deltas).",
    )
    return 0


def cmd_register(ctx: Context, args: argparse.Namespace) -> int:
    from client.cli import chain_commands

    folder = adapters.find_folder(ctx.config.data_dir, args.id)  # an unknown id: a sentence before a node starts
    return chain_commands.register_adapter(ctx, folder.name)


def cmd_share(ctx: Context, args: argparse.Namespace) -> int:
    folder = adapters.find_folder(ctx.config.data_dir, args.id)  # an unknown id: a sentence before a node starts
    result = attach(ctx).call("adapters.share", id=folder.name, stop=args.stop or None, timeout=300)
    text = (
        f"Adapter {result['adapter_id'][:16]} is offered to the members of its Datanet (`datanet adapters fetch "
        f"{result['adapter_id']} --peer <this node>`); each copy that leaves is in the audit log."
        if result["shared"]
        else f"Adapter {result['adapter_id'][:16]} is no longer offered."
    )
    ctx.out.emit(result, text)
    return 0


def cmd_fetch(ctx: Context, args: argparse.Namespace) -> int:
    result = attach(ctx).call("adapters.fetch", id=args.id, peer=args.peer, timeout=330)
    ctx.out.emit(
        result,
        f"Fetched adapter {result['adapter_id'][:16]} of {result['datanet']!r} from {result['peer']}: its files match "
        "its id and its registration on chain (`datanet adapters show` has its manifest).",
    )
    return 0
