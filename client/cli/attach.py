"""The CLI as a client of its data directory's node: attach to the running one, or start one in the background.

A node the CLI starts is detached (its own session, no terminal), offline (its control socket only: no listening
port, no dialling, no discovery) and stops itself after `IDLE_EXIT` seconds without a request, a subscriber or a
job; `datanet node run` is what puts a node online. The node unlocks the vault itself: with the keyring, or with
the passphrase this process has from its own sources (`DATANET_PASSPHRASE_FILE`, the systemd credential,
`DATANET_PASSPHRASE`), handed over a pipe, never on a command line or in the child's environment. Its log goes
to the data directory's log file, as any node's does.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import time
from collections.abc import Iterator
from typing import Any

from client import failures
from client.cli.context import Context
from client.errors import ClientError
from client.node.api import JobInfo
from client.node.control import ControlClient, NodeError
from client.unlock import passphrase_from_environment
from storage.vault import Vault

IDLE_EXIT = 600.0  # seconds a node started by the CLI waits for something to do before it stops
READY_TIMEOUT = 60.0


def attach(ctx: Context, *, chain: bool = False) -> ControlClient:
    """A client of this data directory's node, started now (in the background, offline) if none runs. With
    `chain`, the node must use the chain this command is configured for (the devnet, or the same --rpc-url)."""
    client = ControlClient(ctx.config.data_dir)
    if not client.running():
        try:
            start_background_node(ctx)
        except NodeError:
            if not client.running():  # another command started the node at the same moment: use that one
                raise
    if chain:
        status = client.call("status")
        used = status.get("chain")
        if used != ctx.config.rpc_url:
            busy = status["jobs"]["running"] or status["jobs"]["queued"]
            if status.get("online", True) or busy:  # someone's online node, or jobs that would be interrupted
                raise NodeError(
                    f"The node running for {ctx.config.data_dir} uses {used or 'the embedded devnet'}, not "
                    f"{ctx.config.rpc_url or 'the embedded devnet'}; stop it (`datanet node stop`) to use another "
                    "chain."
                )
            stop_node(ctx, client)  # an idle node this CLI started: one for this chain replaces it
            start_background_node(ctx)
    return client


def stop_node(ctx: Context, client: ControlClient) -> None:
    """Stop the data directory's node cleanly and wait until its process has ended."""
    from client.node import instance

    pid = instance.recorded_pid(ctx.config.data_dir)
    client.stop()
    if pid is not None and not instance.wait_exit(pid, 60):
        raise NodeError(f"The node (pid {pid}) did not stop within 60 s; see its log.")


def first_run(ctx: Context) -> dict[str, object]:
    """Create the vault and identity here if there is none yet (its recovery code is shown once, by this
    command), so the node can unlock it; the JSON fields saying so, or none."""
    if Vault.exists(ctx.config.data_dir):
        return {}
    return ctx.created_fields(ctx.open(create=True))


@contextlib.contextmanager
def exclusive(ctx: Context) -> Iterator[None]:
    """For the commands that rewrite the vault's keys or files (rekey, passphrase, recover, identity import):
    no node may run meanwhile. A node the CLI started for itself is stopped first; one a person started
    (`datanet node run`) is theirs to stop, and the command says so."""
    from client.node import instance

    client = ControlClient(ctx.config.data_dir)
    if client.running():
        status = client.call("status")
        if status.get("online", True) or status["jobs"]["running"] or status["jobs"]["queued"]:
            raise NodeError(
                f"A node runs for {ctx.config.data_dir}"
                + ("" if status.get("online", True) else " with jobs (`datanet jobs`)")
                + "; stop it with `datanet node stop` first (this command rewrites the vault)."
            )
        stop_node(ctx, client)
    if not Vault.exists(ctx.config.data_dir):
        yield
        return
    with instance.single_instance(ctx.config.data_dir):
        yield


def start_background_node(ctx: Context, passphrase: str | None = None) -> None:
    """Start the data directory's node detached and wait until its control socket answers; a node that cannot
    start (a locked vault, another node starting at the same moment) is its own one sentence here. The vault's
    passphrase is `passphrase` (the TUI's dialog) or this process's own sources, handed over a pipe."""
    env = {k: v for k, v in ctx.env.items() if k != "DATANET_PASSPHRASE"}
    if ctx.config.rpc_url is not None:  # in the environment, not argv: a provider URL may carry a key
        env["DATANET_RPC_URL"] = ctx.config.rpc_url
    secret = passphrase if passphrase is not None else passphrase_from_environment(ctx.env) or ""
    argv = [sys.executable, "-m", "client.cli.main", "--json", "--data-dir", str(ctx.config.data_dir)]
    argv += ["--key-store", ctx.config.key_store, "node", "run", "--background", "--idle-exit", str(IDLE_EXIT)]
    stdin_r, stdin_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        pid = os.posix_spawn(
            sys.executable,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, stdin_r, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ],
            setsid=True,  # detached: no terminal, and a Ctrl-C of this command does not reach it
        )
    finally:
        for fd in (stdin_r, out_w, err_w):
            os.close(fd)
    try:
        with contextlib.suppress(BrokenPipeError):
            os.write(stdin_w, secret.encode() + b"\n")
        os.close(stdin_w)
        ready = _read_line(out_r, READY_TIMEOUT)
        if not ready:
            # The pipe ends a moment before the process can be reaped: wait for its exit status a little while
            # (the read above came back early only because the node closed its output, that is, it is exiting).
            status = _exit_status(pid, 0 if ready is None else 10)
            if status is None:
                raise NodeError(
                    f"The node started for {ctx.config.data_dir} is not ready after {READY_TIMEOUT:g} s; see its log."
                )
            problem = os.read(err_r, 65536).decode("utf-8", "replace").strip().removeprefix("datanet: ")
            code = os.waitstatus_to_exitcode(status)
            failed = NodeError(problem or f"The node for {ctx.config.data_dir} did not start (exit code {code}).")
            failed.exit_code = code if code > 0 else failures.EXIT_NODE  # a locked vault stays exit code 3
            raise failed
        json.loads(ready)  # the node's ready line
    finally:
        os.close(out_r)
        os.close(err_r)


def job_result(job: JobInfo) -> dict[str, Any]:
    """A finished job's summary; a failed or cancelled job is its own sentence (and exit code)."""
    if job["state"] == "failed":
        error = ClientError(str(job["error"]))
        error.exit_code = int(job["progress"].get("exit_code", 1)) if isinstance(job["progress"], dict) else 1
        raise error
    if job["state"] == "cancelled":  # by Ctrl-C here or by `jobs --cancel`; the job may say where it stopped
        cancelled = ClientError(
            job["error"] or f"Job {job['id']} ({job['kind']}) was cancelled; what it had done stays."
        )
        cancelled.exit_code = failures.EXIT_ERROR if job["error"] else failures.EXIT_INTERRUPTED
        raise cancelled
    result: dict[str, Any] = job["progress"]
    return result


def _read_line(fd: int, timeout: float) -> str | None:
    """One line from `fd` within `timeout` seconds; "" if the writer closes it first, None if the time passes."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return ""
        data += chunk
    return data.decode()


def _exit_status(pid: int, timeout: float) -> int | None:
    """The wait status of child `pid` once it has exited, waiting up to `timeout` seconds; None if it still runs."""
    done, status = os.waitpid(pid, os.WNOHANG)
    if done or timeout <= 0:
        return status if done else None
    pidfd = os.pidfd_open(pid)  # readable once the process has exited
    try:
        select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    done, status = os.waitpid(pid, os.WNOHANG)
    return status if done else None
