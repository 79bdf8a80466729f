"""One node per data directory: an exclusive `flock` on `<data dir>/node/node.lock`, held for the node's life.

The kernel drops the lock when the process ends, however it ends (SIGKILL included), so a lock file left behind
never blocks a restart, and whoever holds the lock is the one live node: only it may remove a stale control
socket, re-queue jobs a crash left running, or write the journal. The file holds the holder's pid, for the
message a second node prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
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
