"""`datanet node run|stop`, `status`, `peers`, `jobs [--wait|--cancel ID]`, `sync NAME --peer ADDR` and
`members NAME [add|remove] PEER`.

The node is the long-running process and the one writer of its data directory; these commands ask it over the
control API (starting an offline one in the background when none runs: client/cli/attach.py). `members` lists
from the vault directly (a read)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from client import failures
from client.app import records as records_app
from client.app.jobs import progress_text
from client.cli.attach import job_result
from client.cli.context import Context
from client.cli.output import table
from client.errors import ClientError, ConfigError

SECRET_VARIABLES = ("DATANET_PASSPHRASE", "DATANET_NEW_PASSPHRASE")
DEFAULT_LISTEN = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/tcp/4002/ws"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    node = sub.add_parser("node", help="the long-running node: libp2p host, sync, control API")
    nsub = node.add_subparsers(dest="node_command", required=True, metavar="ACTION")
    p = nsub.add_parser("run", help="run the node until SIGTERM or Ctrl-C")
    p.add_argument(
        "--listen",
        action="append",
        metavar="MULTIADDR",
        help="listen address, repeatable (default: TCP 4001 and WebSocket 4002 on all interfaces)",
    )
    p.add_argument("--bootstrap", action="append", metavar="MULTIADDR", help="a peer to stay connected to, repeatable")
    p.add_argument(
        "--headless",
        action="store_true",
        help="a server nobody watches: never prompts (passphrase from a systemd credential, a 0600 file or the "
        "environment), no LAN discovery unless configured (mdns)",
    )
    p.add_argument("--mdns", action=argparse.BooleanOptionalAction, help="find peers on the LAN (multicast DNS)")
    p.add_argument(
        "--outbound-only",
        action="store_true",
        default=None,
        help="listen on no port at all (strict firewalls): peers reach this node through --relay",
    )
    p.add_argument("--relay", action="append", metavar="MULTIADDR", help="keep a reservation on this relay, repeatable")
    p.add_argument(
        "--relay-service", action="store_true", default=None, help="relay circuits for other members (opt-in)"
    )
    p.add_argument("--swarm-key", metavar="FILE", help="a private swarm's key: only nodes holding it can connect")
    p.add_argument(
        "--metrics",
        metavar="ADDR:PORT",
        help="serve Prometheus metrics here, on the loopback interface only (e.g. 127.0.0.1:9464; [metrics] listen)",
    )
    # A node the CLI starts for itself (client/cli/attach.py): offline, passphrase on stdin, stops when idle.
    p.add_argument("--background", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--idle-exit", type=float, metavar="SECONDS", help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_run)
    nsub.add_parser(
        "stop", help="stop this data directory's node cleanly (its jobs resume at the next start)"
    ).set_defaults(handler=cmd_stop)
    p = nsub.add_parser("swarm-key", help="write a new private swarm key (0600) for a consortium's nodes to share")
    p.add_argument("file", help="where to write it (never over an existing file)")
    p.set_defaults(handler=cmd_swarm_key)
    sub.add_parser("status", help="the running node: peer id, addresses, peers, jobs").set_defaults(handler=cmd_status)
    p = sub.add_parser(
        "health",
        help="for monitoring: 0 healthy; 3 vault locked; 7 no node; 20 no peers, 21 chain unreachable, 22 disk low, "
        "23 jobs failing",
    )
    p.add_argument("--no-peers-minutes", type=int, default=30, help="an online node alone this long is unhealthy")
    p.add_argument("--disk-free-mb", type=int, default=1024, help="less free space than this is unhealthy")
    p.set_defaults(handler=cmd_health)
    sub.add_parser("peers", help="peers the node knows: address, direct or relayed, last error").set_defaults(
        handler=cmd_peers
    )
    p = sub.add_parser("jobs", help="the node's jobs (sync, prove, train) and their state")
    p.add_argument("--wait", metavar="JOB_ID", help="wait until this job is done or failed (exit 1 if it failed)")
    p.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS", help="how long --wait waits")
    p.add_argument("--cancel", metavar="JOB_ID", help="cancel a queued or running job (what it committed stays)")
    p.set_defaults(handler=cmd_jobs)
    p = sub.add_parser("sync", help="sync a Datanet with a peer now")
    p.add_argument("name")
    p.add_argument(
        "--peer",
        metavar="MULTIADDR",
        help="e.g. /ip4/10.0.0.5/tcp/4001/p2p/12D3KooW... (default: every connected member, through the node)",
    )
    p.set_defaults(handler=cmd_sync)
    p = sub.add_parser("tui", help="the terminal UI: attaches to this data directory's node (starting one)")
    p.add_argument(
        "--socket", metavar="PATH", help="attach to the node on this control socket instead (e.g. SSH-forwarded)"
    )
    p.add_argument("--keys", action="store_true", help="list the key bindings (ids for <config dir>/tui.toml)")
    p.set_defaults(handler=cmd_tui)
    p = sub.add_parser("members", help="the peers allowed to sync a Datanet: list, add PEER_ID, remove PEER_ID")
    p.add_argument("name")
    p.add_argument("action", nargs="?", choices=["list", "add", "remove"], default="list")
    p.add_argument("peer", nargs="?", help="a peer id (12D3KooW...)")
    p.set_defaults(handler=cmd_members)


def _client(ctx: Context) -> Any:
    from client.cli.attach import attach

    return attach(ctx)


def cmd_run(ctx: Context, args: argparse.Namespace) -> int:
    """`node run`, and how it ended kept for `datanet health` (a node that could not unlock its vault is reported
    as locked, not only as absent)."""
    from client.node import instance

    try:
        code = _run_node(ctx, args)
    except BaseException as exc:
        if not isinstance(exc, instance.NodeAlreadyRunning):  # that one is another node's run, not this one's end
            failure = failures.describe(exc) if failures.expected(exc) else None  # else main logs its traceback
            instance.record_exit(
                ctx.config.data_dir,
                failure.exit_code if failure else failures.EXIT_ERROR,
                failure.message if failure else f"Unexpected error ({type(exc).__name__}); see the log.",
            )
        raise
    instance.record_exit(ctx.config.data_dir, code, "stopped cleanly")
    return code


def _run_node(ctx: Context, args: argparse.Namespace) -> int:
    import trio

    from client import config as config_mod
    from client.config import loopback_address
    from client.node.control import socket_path
    from client.node.node import Node, NodeSettings
    from client.node.supervisor import Supervisor
    from client.unlock import NoPrompter

    supervisor = Supervisor()  # systemd's variables read, and removed before any child starts
    if args.headless:  # nobody is there to answer a prompt: the passphrase comes from a credential, file or env
        ctx = dataclasses.replace(ctx, prompter=NoPrompter())
    from client.node.front import Front

    # The control front first, at the priority of whoever started the node (it answers them); it waits for the
    # vault's key and leaves by itself if this process ends before handing it over (a second node, a locked vault).
    front = Front(ctx.config.data_dir, json_log=ctx.config.log_format == "json")
    front.spawn()
    try:
        current = os.nice(0)
        if ctx.config.node_nice > current:  # so every thread and child process the node starts inherits it
            os.nice(ctx.config.node_nice - current)
        if args.background:  # the passphrase (if any) arrives on stdin; it never enters os.environ or a child's
            secret = sys.stdin.readline().rstrip("\n")
            sys.stdin.close()
            env = {k: v for k, v in ctx.env.items() if k != "DATANET_PASSPHRASE"}
            ctx = dataclasses.replace(ctx, env={**env, "DATANET_PASSPHRASE": secret} if secret else env)
        if not args.background:
            _replace_background_node(ctx)
        network = {} if args.background else _network(ctx, args)  # its errors before the vault is touched
        opened = ctx.open(create=not args.background)
        # The vault is open: the passphrase leaves the environment before the node starts any child (the prover's,
        # the trainer's, the checker's processes inherit os.environ).
        for name in SECRET_VARIABLES:
            os.environ.pop(name, None)
        settings = NodeSettings(
            listen=() if args.background else tuple(args.listen or ctx.config.node_listen or DEFAULT_LISTEN),
            bootstrap=() if args.background else tuple(args.bootstrap or ()) + ctx.config.bootstrap,
            announce_every=ctx.config.announce_every,
            mdns=False if args.background else _mdns(args.mdns, ctx.config.mdns, headless=args.headless),
            discover_every=ctx.config.discover_every,
            offline=args.background,
            idle_exit=args.idle_exit,
            metrics=None
            if args.background
            else loopback_address(args.metrics, "--metrics")
            if args.metrics
            else ctx.config.metrics,
            **network,
        )
        from client.chain import session as chain_session
        from client.node.chain_admission import chain_admission

        admission = chain_admission(
            ctx.config, opened.identity.evm_private_key, opened.vault.key_for(chain_session.KEY_NAME)
        )
        env = {k: v for k, v in ctx.env.items() if k not in SECRET_VARIABLES}

        def reload_config() -> config_mod.Config:
            return config_mod.load(env, data_dir=args.data_dir, key_store=args.key_store, rpc_url=args.rpc_url)

        node = Node(
            opened.vault,
            opened.identity,
            ctx.config.data_dir,
            settings,
            config=ctx.config,
            chain_member=admission,
            supervisor=supervisor,
            reload_config=reload_config,
            front=front,
        )

        def ready(n: Node) -> None:
            addresses = n.addresses()
            data = {"peer_id": str(n.host.get_id()), "addresses": addresses, "control": str(socket_path(n.data_dir))}
            if n.metrics.port is not None:
                host = n.settings.metrics[0] if n.settings.metrics else "127.0.0.1"
                data["metrics"] = f"http://{'[' + host + ']' if ':' in host else host}:{n.metrics.port}/metrics"
            if ctx.out.json_mode:  # one line: a supervisor or a test reads it as soon as the node is ready
                print(json.dumps(data), flush=True)
                if args.background:  # the CLI that started it has what it waited for: its pipes close now
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, 1)
                    os.dup2(devnull, 2)
                    os.close(devnull)
            else:
                print(f"node {n.host.get_id()} listening on\n" + "\n".join(f"  {a}" for a in addresses), flush=True)
                if "metrics" in data:
                    print(f"metrics at {data['metrics']}", flush=True)

        trio.run(lambda: node.run(ready=ready))
        ctx.out.note("datanet: node stopped.")
        return 0
    finally:
        front.stop()  # (the node stopped it already; a run that ended before the node started did not)


def _network(ctx: Context, args: argparse.Namespace) -> dict[str, Any]:
    """The node's reachability and limits from flags over [node] and [limits]: outbound only, relays, the relay
    service, the swarm key, connection and per-peer caps."""
    from client.p2p import swarm_key
    from client.p2p.host import ConnectionCaps
    from client.p2p.service import PeerCaps

    config = ctx.config
    key_file = Path(args.swarm_key) if args.swarm_key else config.swarm_key
    relays = tuple(args.relay or config.relays)
    relay_service = config.relay_service if args.relay_service is None else args.relay_service
    if key_file is not None and (relays or relay_service):
        raise ConfigError(
            "A private swarm key cannot be combined with relays yet: py-libp2p 0.8.1 does not protect a relayed "
            "connection with the key; use one or the other."
        )
    return {
        "outbound_only": config.outbound_only if args.outbound_only is None else args.outbound_only,
        "relays": relays,
        "relay_service": relay_service,
        "psk": None if key_file is None else swarm_key.read(key_file),
        "caps": ConnectionCaps(config.max_connections, config.max_connections_per_peer),
        "peer_caps": PeerCaps(
            sessions=config.max_syncs_per_peer,
            memory=config.max_memory_mb_per_peer << 20,
            upload_rate=config.max_upload_mbps_per_peer * 1e6,
        ),
    }


def cmd_swarm_key(ctx: Context, args: argparse.Namespace) -> int:
    from client.p2p import swarm_key

    path = Path(args.file)
    swarm_key.write_new(path)
    ctx.out.emit(
        {"swarm_key": str(path)},
        f"A new swarm key is in {path} (0600). Copy it to every member's node (over a channel you trust) and set "
        "[node] swarm_key, or pass --swarm-key.",
    )
    return 0


def _replace_background_node(ctx: Context) -> None:
    """`datanet node run` is the node that goes online: one a command started in the background (offline) hands
    over to it, stopping cleanly (its jobs resume here). A node someone started with `node run` stays, and the
    node lock refuses this one in one sentence."""
    from client.cli.attach import stop_node
    from client.node.control import ControlClient, NodeError, RemoteError

    client = ControlClient(ctx.config.data_dir, timeout=10)
    try:
        status = client.call("status")
    except (NodeError, RemoteError):  # none, or one of another version: the lock decides
        return
    if not status.get("online", True):
        stop_node(ctx, client)


def _mdns(flag: bool | None, configured: bool | None, *, headless: bool) -> bool:
    """--mdns/--no-mdns, else [node] mdns, else on for a desktop and off for a headless node."""
    if flag is not None:
        return flag
    if configured is not None:
        return configured
    return not headless


class VaultLockedNode(ClientError):
    exit_code = 3


def cmd_health(ctx: Context, args: argparse.Namespace) -> int:
    """Asks the running node only (it never starts one: a monitor must see a node that is down)."""
    from client.node import instance
    from client.node.control import ControlClient, NodeError

    try:
        data = ControlClient(ctx.config.data_dir, timeout=60).call(
            "health", no_peers_minutes=args.no_peers_minutes, disk_free_mb=args.disk_free_mb
        )
    except NodeError:
        ended = instance.last_exit(ctx.config.data_dir)
        if ended is not None and ended.get("exit_code") == failures.EXIT_LOCKED:  # it could not unlock the vault
            raise VaultLockedNode(
                f"No node runs: the last one could not unlock the vault ({ended['message']})"
            ) from None
        raise
    lines = [f"{p['check']:<6} {p['problem']}" for p in data["problems"]]
    ctx.out.emit(
        data,
        "\n".join(lines)
        if lines
        else f"healthy: {data['peers_connected']} peers, chain block "
        f"{data['chain_block']}, {data['disk_free_mb']} MB free",
    )
    return 0 if data["healthy"] else int(data["problems"][0]["exit_code"])


def cmd_status(ctx: Context, args: argparse.Namespace) -> int:
    status = _client(ctx).call("status")
    jobs = status["jobs"]
    ctx.out.emit(
        status,
        f"node      {status['peer_id']} (up {status['uptime_s']:.0f} s)\n"
        + "".join(f"address   {a}\n" for a in status["addresses"])
        + f"datanets  {status['datanets']}\npeers     {status['peers_connected']} connected\n"
        + f"jobs      {jobs['running']} running, {jobs['queued']} queued, {jobs['failed']} failed",
    )
    return 0


def cmd_peers(ctx: Context, args: argparse.Namespace) -> int:
    peers = _client(ctx).call("peers")
    rows = [
        [p["peer_id"][:20] + "…", "yes" if p["connected"] else "", p["transport"], p["address"], p["last_error"] or ""]
        for p in peers
    ]
    ctx.out.emit(
        peers, table(rows, ["PEER", "CONNECTED", "PATH", "ADDRESS", "LAST ERROR"]) if rows else "No peers yet."
    )
    return 0


def cmd_stop(ctx: Context, args: argparse.Namespace) -> int:
    import signal

    from client.node import instance
    from client.node.control import ControlClient, NodeError, NodeNotRunning, RemoteError

    pid = instance.recorded_pid(ctx.config.data_dir)
    try:
        ControlClient(ctx.config.data_dir).stop()
    except NodeNotRunning:
        ctx.out.emit({"stopped": False}, f"No node was running for {ctx.config.data_dir}.")
        return 0
    except (NodeError, RemoteError):  # a node of another API version: SIGTERM stops any node as cleanly
        if pid is None:
            raise
        os.kill(pid, signal.SIGTERM)
    if pid is not None and not instance.wait_exit(pid, 60):
        raise ClientError(f"The node (pid {pid}) was asked to stop but still runs after 60 s; see its log.")
    ctx.out.emit({"stopped": True}, "Node stopped; its unfinished jobs resume at the next start.")
    return 0


def cmd_jobs(ctx: Context, args: argparse.Namespace) -> int:
    if args.cancel:
        job = _client(ctx).cancel(args.cancel)
        ctx.out.emit(job, f"Job {job['id']} ({job['kind']}) is {job['state']}.")
        return 0
    if args.wait:
        job = _client(ctx).wait_job(args.wait, timeout=args.timeout)
        if job["state"] == "failed":
            raise ClientError(f"Job {job['id']} ({job['kind']}) failed: {job['error']}")
        ctx.out.emit(job, f"Job {job['id']} ({job['kind']}) is done: {progress_text(job) or 'nothing left to do'}.")
        return 0
    jobs = _client(ctx).call("jobs")
    rows = [
        [j["id"], j["kind"], j["state"], j["params"].get("datanet", ""), progress_text(j), j["error"] or ""]
        for j in jobs
    ]
    headers = ["ID", "KIND", "STATE", "DATANET", "PROGRESS", "ERROR"]
    ctx.out.emit(jobs, table(rows, headers) if rows else "No jobs yet.")
    return 0


def cmd_sync(ctx: Context, args: argparse.Namespace) -> int:
    """The node syncs: an online one with every connected member (or the peer given), one the CLI started (offline)
    only with the peer given, which it dials for this sync alone."""

    def show(event: dict[str, Any]) -> None:
        if sys.stderr.isatty() and event.get("type") == "sync.progress":
            eta = f", {event['eta']:.0f} s left" if event.get("eta") else ""
            done, left = event["records_done"], event["records_left"]
            sys.stderr.write(f"\r{event['phase']}: {done}/{done + left}{eta}  ")

    client = _client(ctx)
    if args.peer:
        job = client.follow("sync", show, datanet=args.name, peer=args.peer)
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        jobs = [job]
    else:
        jobs = client.call("sync", datanet=args.name, wait=True, timeout=24 * 3600.0)["jobs"]
    failed = [j for j in jobs if j["state"] == "failed"]
    if failed:
        error = ClientError(f"The sync with {failed[0]['params']['peer']} failed: {failed[0]['error']}")
        progress = failed[0].get("progress")
        error.exit_code = int(progress.get("exit_code", 1)) if isinstance(progress, dict) else 1  # as the job's error
        raise error
    results = [job_result(j) for j in jobs]  # a cancelled one is its own sentence
    received, sent = sum(r["received"] for r in results), sum(r["sent"] for r in results)
    seconds = max(r["seconds"] for r in results)
    ctx.out.emit(
        {"datanet": args.name, "peers": len(results), "received": received, "sent": sent, "seconds": seconds},
        f"Synced {args.name!r} with {len(results)} peer(s): {received} records received, {sent} sent "
        f"({seconds:.1f} s).",
    )
    return 0


def cmd_members(ctx: Context, args: argparse.Namespace) -> int:
    if args.action != "list" and not args.peer:
        raise ClientError(f"`datanet members {args.name} {args.action}` needs a peer id (12D3KooW...).")
    if args.peer:
        records_app.check_peer_id(args.peer)
    if args.action == "list":  # a read: the vault is opened here
        answer = records_app.members(ctx.open(create=False).vault, args.name)
    else:
        answer = _client(ctx).call("members", datanet=args.name, action=args.action, peer=args.peer)
    members, changed = answer["members"], answer["changed"]
    text = "\n".join(members) if members else f"No members: nobody may sync {args.name!r} with you yet."
    if args.action == "add":
        text = f"{args.peer} may now sync {args.name!r}." if changed else f"{args.peer} was already a member."
    elif args.action == "remove":
        text = f"{args.peer} may no longer sync {args.name!r}." if changed else f"{args.peer} was not a member."
    ctx.out.emit(answer, text)
    return 0


def cmd_tui(ctx: Context, args: argparse.Namespace) -> int:
    """The terminal UI, a client of the node like this CLI: of the data directory's (started if none runs), or of
    the one behind --socket. Keys come from <config dir>/tui.toml; --keys lists them."""
    from pathlib import Path

    from client.node.async_client import AsyncControlClient
    from tui.app import bindings, run

    if args.keys:
        rows = [[binding_id, keys, what] for binding_id, keys, what in bindings()]
        ctx.out.emit(
            [{"id": i, "keys": k, "action": w} for i, k, w in rows],
            table(rows, ["ID", "KEYS", "ACTION"]) + f"\nRemap in {ctx.config.config_dir / 'tui.toml'}.",
        )
        return 0
    if args.socket:
        socket = Path(args.socket).expanduser()
        return run(AsyncControlClient(socket=socket), socket, ctx.config.config_dir)
    from functools import partial

    from client import failures
    from client.cli.attach import start_background_node
    from client.node.control import NodeError

    try:
        _client(ctx)  # a node to attach to: started in the background when none runs
    except NodeError as exc:  # the vault wants a passphrase none of our sources has: the app asks for it
        if exc.exit_code != failures.EXIT_LOCKED or not sys.stdin.isatty():
            raise
        unlock = partial(start_background_node, ctx)
        return run(
            AsyncControlClient(ctx.config.data_dir), ctx.config.data_dir, ctx.config.config_dir, unlock, Path.cwd()
        )
    return run(AsyncControlClient(ctx.config.data_dir), ctx.config.data_dir, ctx.config.config_dir, None, Path.cwd())
