"""The control API's front: a small process of the node's own that holds the public socket (`<data dir>/node.sock`)
and answers `status` and `records.count` itself; every other request, `subscribe` included, is spliced byte for
byte to the node's own socket (`<data dir>/api.sock`, served by the node's control thread).

    client ──► node.sock (front) ── status, records.count: answered here
                                └── anything else: the connection spliced to api.sock (the node)
    node ──feed──► front: the node's status, written before each event is fanned out, and every second (the feed
                   is a socket pair of ordered datagrams: a status arrives whole or not at all)
    front ──feed──► node: "a request was answered here" (so a node the CLI started does not idle out meanwhile)

Why a process: the node's control thread shares the interpreter lock with the sync service, and under a 100,000
record sync and a training run its answers waited for the lock (bench/control.py: p99 10x the idle one, with the
switch interval already shortened). A process of its own waits for no lock of the node's: only for a core.

Status is exact where a client can tell: the node writes its status to the feed before an event leaves for any
subscriber, and the front reads everything the feed holds before it answers, so a client that saw an event (a job
done) and then asks for the status sees the status after it. The feed is a socket pair the node made; the front
leaves when the node's end closes (the node stopped or died), and removes node.sock only if it is still its own.
The front gets the vault's master key as the feed's first line (never on a command line or in the environment) to
read record counts from the shards (SQLCipher allows readers beside the node's writer). `datanet node run` spawns it
before the node lowers its own CPU priority (`[node] nice`), so that the part that answers the user keeps the
user's priority while the node's work yields.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import logging.handlers
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import trio

from client.node import control

logger = logging.getLogger(__name__)

LOCAL: Final = frozenset({"status", "records.count"})
_SNAPSHOT_EVERY = 1.0  # seconds between the node's status writes when no event happens (peers come and go)
_TOUCH_EVERY = 1.0  # seconds between the front's "a request was answered here"
_READY_WAIT = 60.0
_RESTART_PAUSE = 5.0  # seconds at least between two starts of a front that keeps ending
# What the front's environment never holds: the datanet variables (the passphrase's among them), systemd's.
_HIDDEN: Final = ("DATANET_", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_", "LISTEN_")


def internal_path(data_dir: Path) -> Path:
    """The node's own control socket, behind the front (as short a path as node.sock: Unix sockets' limit)."""
    return data_dir / "api.sock"


# -- the node's side -----------------------------------------------------------------------------------------


class FrontError(control.NodeError):
    pass


class Front:
    """Spawns the front process, writes the node's status to it, and reads its requests' "touch"."""

    def __init__(self, data_dir: Path, *, json_log: bool = False) -> None:
        self.data_dir = data_dir
        self.json_log = json_log
        self._key = b""
        self._snapshot: Callable[[], dict[str, Any]] | None = None
        self._lock = threading.Lock()  # the feed is written from any thread that publishes an event
        self._feed: socket.socket | None = None
        self._keyed = False  # the key went first: statuses may follow (set and read under the lock)
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = False

    def spawn(self) -> None:
        """Start the process (it waits for `start`): early, at the priority of whoever starts the node, with none of
        the datanet or systemd variables in its environment (the passphrase's among them)."""
        # Ordered datagrams: a status is one message, written whole or not at all (never half a line).
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        self._process = subprocess.Popen(
            [
                *(sys.executable, "-m", "client.node.front"),
                *("--data-dir", str(self.data_dir), "--feed-fd", str(theirs.fileno())),
                *(["--json-log"] if self.json_log else []),
            ],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # it logs to the data directory's log file, as the node does
            cwd=Path(__file__).resolve().parents[2],
            env={k: v for k, v in os.environ.items() if not k.startswith(_HIDDEN)},
        )
        theirs.close()
        with self._lock:
            self._feed, self._keyed = ours, False

    def start(self, master_key: bytes, snapshot: Callable[[], dict[str, Any]]) -> None:
        """Hand the front the vault's key and the first status, and wait until node.sock answers (FrontError in one
        sentence otherwise). Spawns it first if `spawn` was not called."""
        self._key, self._snapshot = master_key, snapshot
        if self._process is None:
            self.spawn()
        assert self._process is not None and self._process.stdout is not None
        with self._lock:
            assert self._feed is not None
            self._feed.setblocking(True)  # one short message into an empty socket buffer
            self._feed.send(json.dumps({"key": master_key.hex()}).encode())
            self._feed.setblocking(False)
            self._keyed = True
        for _ in range(100):  # the first status: the front binds its socket once it has one
            if self.push():
                break
            time.sleep(0.05)
        line = _read_line(self._process.stdout, _READY_WAIT)
        if line != b"ready\n":
            self.stop()
            raise FrontError(f"The node's control front did not start ({line!r}); see the node's log.")

    def event(self, event: dict[str, Any]) -> None:
        """An observer of the node's events: called before each is fanned out to subscribers."""
        self.push()

    def push(self) -> bool:
        """Write the node's status to the feed. Never blocks and never raises: a front that reads nothing loses
        status writes, not the node's time. True when one was written."""
        if self._snapshot is None:
            return False
        try:  # read from whichever thread publishes: py-libp2p's state may change under it; the next write is whole
            message = json.dumps(self._snapshot(), separators=(",", ":")).encode()
        except Exception:
            logger.debug("status not written to the control front this time", exc_info=True)
            return False
        with self._lock:
            if self._feed is None or not self._keyed:
                return False
            try:
                self._feed.send(message)
            except OSError:  # full (the front is stuck), or gone: `run` notices the latter
                return False
        return True

    async def run(self, touch: Callable[[], None]) -> None:
        """Until cancelled: the status every second, and the front's touches passed on. A front that died (the OOM
        killer, a stray signal) is started again, at most once every few seconds; the node goes on meanwhile."""
        while not self._stopping:
            feed = self._feed
            gone = feed is None
            if feed is not None:
                with trio.move_on_after(_SNAPSHOT_EVERY):
                    try:
                        await trio.lowlevel.wait_readable(feed.fileno())
                    except trio.ClosedResourceError:  # aclose: the node is stopping
                        return
                    try:
                        gone = not feed.recv(64)
                    except BlockingIOError:
                        pass
                    except OSError:  # the front ended with statuses unread: the kernel says "reset"
                        gone = True
                    if not gone:
                        touch()
            if gone and not self._stopping:
                logger.error("the control front process ended; starting it again")
                await trio.to_thread.run_sync(self._close)
                try:
                    await trio.to_thread.run_sync(self._restart)
                except Exception:
                    logger.exception("the control front could not be started again; trying again soon")
                await trio.sleep(_RESTART_PAUSE)
                continue
            self.push()

    def _restart(self) -> None:
        assert self._snapshot is not None
        self.start(self._key, self._snapshot)

    async def aclose(self) -> None:
        """`stop` from the node's loop, where `run` may be waiting on the feed."""
        self._stopping = True
        feed = self._feed
        if feed is not None:
            trio.lowlevel.notify_closing(feed.fileno())
        await trio.to_thread.run_sync(self.stop)

    def stop(self) -> None:
        """For good: close the feed (the front leaves) and wait for the process."""
        self._stopping = True
        self._close()

    def _close(self) -> None:
        with self._lock:
            feed, self._feed, self._keyed = self._feed, None, False
        if feed is not None:
            feed.close()
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _read_line(pipe: Any, timeout: float) -> bytes:
    import select

    deadline, data = time.monotonic() + timeout, b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([pipe], [], [], remaining)[0]:
            break
        chunk = os.read(pipe.fileno(), 256)
        if not chunk:
            break
        data += chunk
    return data


# -- the front process ---------------------------------------------------------------------------------------


class _State:
    def __init__(self, data_dir: Path, feed: socket.socket) -> None:
        self.data_dir = data_dir
        self.feed = feed
        self.vault: Any = None  # opened with the key the feed's first message brings
        self.status: dict[str, Any] = {}
        self._touched = 0.0
        self.counts = ShardCounts(lambda name: trio.to_thread.run_sync(lambda: self.vault.open_shard(name)))

    def drain(self) -> bool:
        """Read every message the feed holds now (never waits): the vault's key first, then statuses, of which the
        newest counts. False when the node's end is closed."""
        while True:
            try:
                message = self.feed.recv(1 << 20)
            except BlockingIOError:
                return True
            if not message:
                return False
            try:
                if self.vault is None:
                    from storage.vault import Vault

                    self.vault = Vault(self.data_dir, bytes.fromhex(json.loads(message)["key"]), "node")
                else:
                    self.status = json.loads(message)
            except (ValueError, KeyError, TypeError):  # never from our node; kept out of the answers if it were
                logger.warning("the control front skipped a message from the node it could not read")

    def touch(self) -> None:
        now = time.monotonic()
        if now - self._touched >= _TOUCH_EVERY:
            self._touched = now
            with contextlib.suppress(BlockingIOError, OSError):
                self.feed.send(b"t")

    async def status_now(self, params: dict[str, Any]) -> dict[str, Any]:
        self.drain()
        self.touch()
        return answer_status(self.status, self.data_dir)

    async def records_count(self, params: dict[str, Any]) -> dict[str, Any]:
        self.touch()
        return await self.counts(str(params["datanet"]))


def answer_status(snapshot: dict[str, Any], data_dir: Path) -> dict[str, Any]:
    """The node's status snapshot (Handlers.status_snapshot) as `status` answers it, for the front and the node's
    own socket alike: the uptime and the number of Datanets (shard files, none opened) as of now."""
    from storage.vault import Vault

    status = dict(snapshot)
    status["uptime_s"] = round(time.time() - status.pop("started"), 1)
    status["datanets"] = len(Vault.shard_files(data_dir))
    return status


class ShardCounts:
    """`records.count` for the node's handler and the front alike: one row read (the writers keep the counts) on a
    connection kept open per Datanet, so it answers promptly while a sync writes the same shard."""

    def __init__(self, open_shard: Callable[[str], Awaitable[Any]]) -> None:
        self._open_shard = open_shard  # opens a Datanet's shard off the event loop
        self._open: dict[str, Any] = {}  # Datanet name -> its shard

    async def __call__(self, name: str) -> dict[str, Any]:
        shard = self._open.get(name)
        if shard is None:
            opened = await self._open_shard(name)
            shard = self._open.setdefault(name, opened)
            if shard is not opened:  # another request opened it meanwhile
                opened.close()
        try:
            by_origin = shard.count_by_origin()
        except Exception:  # a shard that changed under the cached connection: open it again next time
            self._open.pop(name, None)
            shard.close()
            raise
        return {"datanet": name, "records": sum(by_origin.values()), **by_origin}

    def close(self) -> None:
        for shard in self._open.values():
            shard.close()
        self._open.clear()


def _method_of(line: bytes) -> str | None:
    """The method a request line asks for, if it is one the front may answer; anything else (or anything odd)
    goes to the node, which answers it, errors included."""
    if len(line) > 4096:
        return None
    try:
        request = json.loads(line)
    except (ValueError, RecursionError):
        return None
    method = request.get("method") if isinstance(request, dict) else None
    return method if method in LOCAL else None


async def _splice(client: trio.SocketStream, upstream_path: Path, first: bytes) -> None:
    try:
        upstream = await trio.open_unix_socket(str(upstream_path))
    except OSError:
        return  # the node is gone: the client sees the connection close (NodeError: it went away)

    async def requests() -> None:  # the client's side ending (even half-closed) is passed on, and answers still come
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while data := await client.receive_some(65536):
                await upstream.send_all(data)
            await upstream.send_eof()

    async def answers(scope: trio.CancelScope) -> None:  # the node's side ending ends the connection
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while data := await upstream.receive_some(65536):
                await client.send_all(data)
        scope.cancel()

    async with upstream:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await upstream.send_all(first)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(requests)
            nursery.start_soon(answers, nursery.cancel_scope)


async def _connection(stream: trio.SocketStream, state: _State, local: dict[str, control.Handler]) -> None:
    upstream = internal_path(state.data_dir)
    buffer = b""
    async with stream:
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return
            if not data:
                return
            buffer += data
            while b"\n" in buffer:
                line, rest = buffer.split(b"\n", 1)
                if _method_of(line) is None:
                    await _splice(stream, upstream, line + b"\n" + rest)
                    return
                reply, _ = await control.answer(line, local)
                buffer = rest
                try:
                    await stream.send_all(json.dumps(reply).encode() + b"\n")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
            if len(buffer) > 4096:  # a long request is never one of ours: the node reads (or refuses) it
                await _splice(stream, upstream, buffer)
                return


async def _serve(data_dir: Path, feed: socket.socket) -> None:
    state = _State(data_dir, feed)
    while not state.status:  # the key, then the first status
        await trio.lowlevel.wait_readable(feed.fileno())
        if not state.drain():
            return  # the node stopped (or never unlocked its vault) before it started us
    path = control.socket_path(data_dir)
    listener = await control.listen_private(path, 64)  # for the node, which holds the data directory's lock
    ours = path.stat().st_ino
    local: dict[str, control.Handler] = {"status": state.status_now, "records.count": state.records_count}
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        async with trio.open_nursery() as nursery:

            async def until_node_leaves() -> None:
                while True:
                    await trio.lowlevel.wait_readable(feed.fileno())
                    if not state.drain():
                        nursery.cancel_scope.cancel()
                        return

            nursery.start_soon(until_node_leaves)
            await trio.serve_listeners(lambda stream: _connection(stream, state, local), [listener])
    finally:
        with contextlib.suppress(OSError):
            if path.stat().st_ino == ours:  # not a newer node's socket
                path.unlink()


def _log_to(path: Path, json_lines: bool) -> None:
    """The data directory's log file, as the node writes it (warnings and errors: the front says little)."""
    from client import log_setup

    with contextlib.suppress(OSError):
        handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")  # the node rotates it
        handler.setFormatter(log_setup.formatter(json_lines))
        handler.addFilter(log_setup.AddressFilter())
        logging.getLogger().addHandler(handler)


def main() -> None:
    from client import children, log_setup

    children.no_core_dumps()
    # Ctrl-C, a terminal's hang-up and systemd's stop reach the whole process group: the node handles them, and
    # the front leaves when the node's end of the feed closes (a front gone first would leave clients without it).
    for number in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    parser = argparse.ArgumentParser(description="the node's control front (started by the node)")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--feed-fd", type=int, required=True)
    parser.add_argument("--json-log", action="store_true")
    args = parser.parse_args()
    _log_to(args.data_dir / log_setup.LOG_FILE, args.json_log)
    feed = socket.socket(fileno=args.feed_fd)
    feed.setblocking(False)
    try:
        trio.run(_serve, args.data_dir, feed)
    except Exception:
        logger.exception("the control front failed")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
