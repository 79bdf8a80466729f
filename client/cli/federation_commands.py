"""`datanet federation serve|join|status|leave`: federated rounds of a Datanet, through the node."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from client.cli.args import positive
from client.cli.attach import attach, job_result
from client.cli.context import Context
from client.cli.output import table
from client.federation.errors import FederationError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    f = sub.add_parser("federation", help="federated LoRA rounds across members' machines (Flower, SecAgg+)")
    fsub = f.add_subparsers(dest="federation_command", required=True, metavar="COMMAND")
    p = fsub.add_parser("serve", help="coordinate rounds of a Datanet: members train, only their sum is seen")
    p.add_argument("name", help="Datanet name")
    p.add_argument("--members", type=positive, required=True, help="members to wait for (2 or more)")
    p.add_argument("--rounds", type=positive, default=2, help="rounds to run (default 2)")
    p.add_argument("--eval", type=Path, help="held-out records (JSONL) each round's model is evaluated on")
    p.add_argument("--host", help="address the SuperLink listens on and members dial (default 127.0.0.1)")
    p.add_argument("--port", type=positive, help="the SuperLink's port (default: a free one)")
    p.add_argument("--epochs", type=positive, help="passes over each member's records a round (default 3)")
    p.add_argument("--lr", type=float, help="learning rate (default 0.01)")
    p.add_argument("--dp-epsilon", type=float, help="members train with DP-SGD to this epsilon each round")
    p.add_argument("--min-members", type=positive, help="members a round needs to finish (default: all)")
    p.add_argument(
        "--secagg-timeout",
        type=float,
        help="seconds a secure-aggregation stage waits for members, training included (default 600)",
    )
    p.add_argument("--background", action="store_true", help="queue it and return (`datanet jobs` follows it)")
    p.set_defaults(handler=cmd_serve)
    p = fsub.add_parser("join", help="take part in a coordinator's rounds of a Datanet")
    p.add_argument("name", help="Datanet name")
    p.add_argument("--coordinator", required=True, help="the coordinator's address (/ip4/.../tcp/.../p2p/...)")
    p.add_argument("--dp-epsilon", type=float, help="train every round with DP-SGD to this epsilon")
    p.add_argument("--background", action="store_true", help="queue it and return (`datanet jobs` follows it)")
    p.set_defaults(handler=cmd_join)
    fsub.add_parser("status", help="the rounds coordinated here and those taken part in").set_defaults(
        handler=cmd_status
    )
    p = fsub.add_parser("leave", help="leave the rounds this node takes part in")
    p.add_argument("name", nargs="?", help="only this Datanet's rounds")
    p.set_defaults(handler=cmd_leave)


def _printer(event: dict[str, Any]) -> None:
    stage = event.get("stage")
    if stage == "waiting for members":
        line = f"waiting for members: {event['members']} of {event['expected']} joined"
    elif stage == "running":
        line = f"all {event['members']} members joined; the rounds start"
    elif stage == "joined":
        line = f"joined federation {event['federation']} ({event['rounds']} rounds)"
    elif stage == "round":
        accuracy = (event.get("evaluation") or {}).get("accuracy")
        detail = f", accuracy {accuracy:.3f}" if accuracy is not None else ""
        who = f" with {event['participants']} members" if "participants" in event else ""
        line = f"round {event['round']} of {event['rounds']} done{who}{detail}"
    else:
        return
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def cmd_serve(ctx: Context, args: argparse.Namespace) -> int:
    params = {
        "datanet": args.name,
        "members": args.members,
        "rounds": args.rounds,
        "eval": str(args.eval.absolute()) if args.eval else None,
        "host": args.host,
        "port": args.port,
        "epochs": args.epochs,
        "learning_rate": args.lr,
        "dp_epsilon": args.dp_epsilon,
        "min_members": args.min_members,
        "secagg_timeout": args.secagg_timeout,
    }
    client = attach(ctx)
    status = client.call("status")
    if not status["online"]:
        raise FederationError(
            "Coordinating needs a node that members can reach: start it with `datanet node run`, then serve."
        )
    if args.background:
        job = client.call("federation.serve", **params)
        ctx.out.emit(job, f"Queued job {job['id']}: coordinating rounds of {args.name!r} (`datanet jobs` shows it).")
        return 0
    sys.stderr.write(f"Members join with: datanet federation join {args.name} --coordinator {status['addresses'][0]}\n")
    summary = job_result(client.follow("federation.serve", _printer, **params))
    lines = [f"Federation {summary['federation']} of {args.name!r} finished:"]
    for r in summary["rounds"]:
        accuracy = f", accuracy {r['accuracy']:.3f}" if r.get("accuracy") is not None else ""
        lines.append(f"  round {r['round']}: adapter {r['adapter_id'][:16]}, {r['participants']} members{accuracy}")
    lines.append(f"The last round's adapter is {summary['adapter_id'][:16]} (`datanet adapters show` has its lineage).")
    ctx.out.emit(summary, "\n".join(lines))
    return 0


def cmd_join(ctx: Context, args: argparse.Namespace) -> int:
    params = {"datanet": args.name, "coordinator": args.coordinator, "dp_epsilon": args.dp_epsilon}
    client = attach(ctx)
    if args.background:
        job = client.call("federation.join", **params)
        ctx.out.emit(job, f"Queued job {job['id']}: taking part in rounds of {args.name!r} (`datanet jobs`).")
        return 0
    summary = job_result(client.follow("federation.join", _printer, **params))
    ctx.out.emit(
        summary,
        f"Took part in rounds {', '.join(map(str, summary['rounds']))} of federation {summary['federation']} "
        f"of {args.name!r}; no record left this machine.",
    )
    return 0


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    data = attach(ctx).call("federation.status")
    rows = [
        ["coordinating", s["federation"], s["datanet"], f"{len(s['members'])}/{s['expected']} members", s["rounds"]]
        for s in data["serving"]
    ] + [["member", j["federation"], j["datanet"], f"trained {len(j['fitted'])}", j["rounds"]] for j in data["joined"]]
    text = table(rows, ["ROLE", "FEDERATION", "DATANET", "PROGRESS", "ROUNDS"]) if rows else "No federated rounds."
    ctx.out.emit(data, text)
    return 0


def cmd_leave(ctx: Context, args: argparse.Namespace) -> int:
    left = attach(ctx).call("federation.leave", datanet=args.name)["left"]
    ctx.out.emit({"left": left}, f"Left the rounds of {', '.join(left)}." if left else "This node takes part in none.")
    return 0
