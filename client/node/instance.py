"""One node per data directory: an exclusive `flock` on `<data dir>/node/node.lock`, held for the node's life.

The kernel drops the lock when the process ends, however it ends (SIGKILL included), so a lock file left behind
never blocks a restart, and whoever holds the lock is the one live node: only it may remove a stale control
socket, re-queue jobs a crash left running, or write the journal. The file holds the holder's pid, for the
message a second node prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import time
from collections.abc import Iterator
from pathlib import Path

from client.errors import ClientError
from client.failures import EXIT_NODE


class NodeAlreadyRunning(ClientError):
    exit_code = EXIT_NODE


def lock_path(data_dir: Path) -> Path:
    return data_dir / "node" / "node.lock"


@contextlib.contextmanager
def single_instance(data_dir: Path) -> Iterator[None]:
    """Hold the data directory's node lock for the block; NodeAlreadyRunning if a live node holds it."""
    path = lock_path(data_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise NodeAlreadyRunning(
                f"A node is already running for {data_dir} (pid {holder}); use it, or stop it with "
                "`datanet node stop` first."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def recorded_pid(data_dir: Path) -> int | None:
    """The pid the last node of this data directory wrote into its lock file (it may have ended since)."""
    try:
        text = lock_path(data_dir).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def wait_exit(pid: int, timeout: float) -> bool:
    """Until process `pid` has ended (True), or `timeout` seconds (False): a pidfd, not a timer."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def exit_record_path(data_dir: Path) -> Path:
    """How the last `node run` of this data directory ended: beside the log (it is written even when the vault
    could not be opened, and never changes a vault file)."""
    return data_dir / "logs" / "node-exit.json"


def record_exit(data_dir: Path, exit_code: int, message: str) -> None:
    """Keep how this node run ended (its exit code and one sentence, never a secret) for `datanet health`."""
    path = exit_record_path(data_dir)
    with contextlib.suppress(OSError):  # a data directory that cannot be written: nothing to keep it in
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"exit_code": exit_code, "message": message, "at": time.time(), "pid": os.getpid()}, handle)


def last_exit(data_dir: Path) -> dict[str, object] | None:
    try:
        doc = json.loads(exit_record_path(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
