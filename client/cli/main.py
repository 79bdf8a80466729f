"""`datanet`: the entry point. Parses flags, reads the configuration once, and turns errors into one sentence.

Exit codes (client/failures.py): 0 success; 1 an error the message explains; 2 bad usage or configuration; 3 the
vault cannot be unlocked (key missing, wrong passphrase, no way to ask); 4 input rejected (malformed records); 5 an
integrity check found problems; 6 the chain refused or could not be reached; 7 the node (none running, another
already running, gone mid-call); 130 interrupted. Tracebacks go to the log file, never to the terminal.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata

from client import config as config_mod
from client import failures, log_setup
from client.children import no_core_dumps
from client.cli import (
    audit_commands,
    chain_commands,
    demo,
    doctor,
    federation_commands,
    gov_commands,
    node_commands,
    prompts,
    prove_commands,
    record_commands,
    training_commands,
    vault_commands,
)
from client.cli.context import Context
from client.cli.output import Output
from client.errors import ClientError

logger = logging.getLogger("client.cli.main")  # not __name__: that is "__main__" under `python -m`


def _version() -> str:
    try:
        return metadata.version("datanet-client")
    except metadata.PackageNotFoundError:  # running from a source tree without installing
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="datanet",
        description="Local-first contributor client for a Datanet network: your records stay encrypted on "
        "this machine.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage/config, 3 vault locked, 4 input rejected, 5 check failed, "
        "6 chain error, 7 node, 130 interrupted. The global flags (--json, --data-dir, --key-store, --rpc-url) may "
        "also come after the command.",
    )
    parser.add_argument("--version", action="version", version=f"datanet {_version()}")
    parser.add_argument("--data-dir", help="data directory (default: DATANET_DATA_DIR or the user data dir)")
    parser.add_argument("--key-store", choices=config_mod.KEY_STORES, help="where the vault key is kept")
    parser.add_argument("--rpc-url", help="an Ethereum JSON-RPC endpoint (default: the embedded devnet)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo.register(sub)
    doctor.register(sub)
    vault_commands.register(sub)
    record_commands.register(sub)
    training_commands.register(sub)
    federation_commands.register(sub)
    prove_commands.register(sub)
    chain_commands.register(sub)
    gov_commands.register(sub)
    audit_commands.register(sub)
    node_commands.register(sub)
    return parser


# The flags every command takes, and whether each takes a value. They may come after the command too.
GLOBAL_FLAGS = {"--json": False, "--data-dir": True, "--key-store": True, "--rpc-url": True}


def hoist_global_flags(argv: Sequence[str]) -> list[str]:
    """`datanet status --json` as `datanet --json status`: global flags (with their values) moved to the front,
    wherever they are; the order of everything else kept, and nothing after `--` touched."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_FLAGS:
            takes = 2 if GLOBAL_FLAGS[name] and "=" not in arg else 1
            front.extend(argv[i : i + takes])
            i += takes
            continue
        rest.append(arg)
        i += 1
    return front + rest


def run(argv: Sequence[str], env: Mapping[str, str], out: Output) -> int:
    parser = build_parser()
    args = parser.parse_args(hoist_global_flags(argv))
    out.json_mode = args.json
    try:
        config = config_mod.load(env, data_dir=args.data_dir, key_store=args.key_store, rpc_url=args.rpc_url)
    except ClientError as exc:
        out.note(f"datanet: {exc}")
        return exc.exit_code
    log_file = None
    try:
        log_file = log_setup.configure(config)
    except OSError as exc:
        out.note(f"datanet: cannot write the log in {config.data_dir} ({exc.strerror}); check --data-dir.")
        return 2
    logger.info("datanet %s: %s", _version(), args.command)
    ctx = Context(config=config, env=env, out=out, prompter=prompts.terminal())
    try:
        code: int = args.handler(ctx, args)
        return code
    except (Exception, KeyboardInterrupt) as exc:
        failure = failures.describe(exc, log=str(log_file))
        if failure.expected:
            logger.info("command %s failed: %s (exit %d)", args.command, failures.causes(exc), failure.exit_code)
        out.note(f"datanet: {failure.message}")
        return failure.exit_code


def main() -> None:
    no_core_dumps()  # first: the node, the prover and the trainer inherit it
    sys.exit(run(sys.argv[1:], os.environ, Output(json_mode=False)))


if __name__ == "__main__":
    main()
