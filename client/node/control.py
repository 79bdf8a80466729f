"""The node's control API: JSON-RPC 2.0 over a Unix domain socket (`<data dir>/node.sock`, mode 0600, in a 0700
directory), one JSON object per line, at most 1 MiB a request. The CLI and the TUI are its clients
(`ControlClient`, blocking).

The methods, their parameters and results, and the events are declared in api.py (and listed in
docs/control-api.md); every request is checked against them before a handler runs, and every error a handler
raises is put in words by client/failures.py, with the exit code a client should end with. `subscribe` turns a
connection into a stream of `{"jsonrpc": "2.0", "method": "event", "params": {...}}` notifications, each with a
sequence number; a subscriber that fell behind is told how many events it missed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Generator, Iterator
from pathlib import Path
from typing import Any, cast

import trio

from client import failures
from client.errors import ClientError
from client.node import api
from client.node.api import JobInfo, NodeStatus, PeerInfo
from client.records import MAX_DEPTH, nesting_depth

logger = logging.getLogger(__name__)
MAX_REQUEST = 1 << 20
_TOO_LARGE = "The request is over the control API's 1 MiB limit; nothing was done."
Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class NodeError(ClientError):
    """The node cannot be reached, is not the version this client speaks, or went away mid-call."""

    exit_code = failures.EXIT_NODE


class NodeNotRunning(NodeError):
    pass


class RemoteError(ClientError):
    """A method failed in the node: its sentence and the exit code it maps to (client/failures.py)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def socket_path(data_dir: Path) -> Path:
    return data_dir / "node.sock"


class Events:
    """Fan-out of events to every subscriber: a bounded queue each. Every event gets the next sequence number; a
    subscriber whose queue is full loses events, and is told how many (a `missed` event) before the next one it
    gets, never silently.

    `publish` may be called from any thread. Once `attach`ed to the loop that serves the control API (the node's
    control thread, control_loop.py), the fan-out runs there, in the order the sequence numbers were given."""

    def __init__(self, queue: int = 256) -> None:
        self._queue = queue
        self._subscribers: dict[trio.MemorySendChannel[dict[str, Any]], int] = {}  # channel -> events it missed
        self.seq = 0
        self.last_activity = time.monotonic()  # the last control request (a node started by the CLI idles out)
        self._lock = threading.Lock()
        self._token: trio.lowlevel.TrioToken | None = None
        self._observers: list[Callable[[dict[str, Any]], None]] = []  # told of every event as it is published

    def observe(self, observer: Callable[[dict[str, Any]], None]) -> None:
        """Call `observer` with every event as it is published, in the publishing thread (it must not block)."""
        self._observers.append(observer)

    def attach(self, token: trio.lowlevel.TrioToken | None) -> None:
        """Fan out in the loop of `token` from now on (None: in the caller's, as before)."""
        self._token = token

    @property
    def subscribers(self) -> int:
        """Subscribers still listening (one that hung up closed its end of the channel)."""
        return sum(1 for channel in list(self._subscribers) if channel.statistics().open_receive_channels)

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.seq += 1
            event = {**event, "seq": self.seq, "at": time.time()}
            for observer in self._observers:
                observer(event)
            if self._token is not None:
                with contextlib.suppress(trio.RunFinishedError):  # the control loop has stopped: nobody listens
                    self._token.run_sync_soon(self._fan_out, event)
                return
        self._fan_out(event)

    def _fan_out(self, event: dict[str, Any]) -> None:
        for channel, missed in list(self._subscribers.items()):
            try:
                if missed:
                    channel.send_nowait({"type": "missed", "count": missed, "seq": event["seq"], "at": event["at"]})
                    self._subscribers[channel] = missed = 0
                channel.send_nowait(event)
            except trio.WouldBlock:
                self._subscribers[channel] = missed + 1
            except trio.BrokenResourceError:
                del self._subscribers[channel]

    def subscribe(self) -> trio.MemoryReceiveChannel[dict[str, Any]]:
        """A new subscriber's channel (called in the loop that fans out)."""
        send, receive = trio.open_memory_channel[dict[str, Any]](self._queue)
        self._subscribers[send] = 0
        return receive


async def serve(
    path: Path, methods: dict[str, Handler], events: Events, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    """Listen on `path` (0600) and answer requests until cancelled. Only the holder of the data directory's node
    lock (instance.py) calls this, so a socket file already there is a dead node's: it is replaced."""
    server = await listen_private(path, 16)
    task_status.started()
    try:
        await trio.serve_listeners(lambda stream: _connection(stream, methods, events), [server])
    finally:
        _remove(path)


async def listen_private(path: Path, backlog: int) -> trio.SocketListener:
    """A Unix socket listening at `path`, 0600 from its creation (the caller holds the node lock: a socket file
    already there is a dead node's, and is replaced)."""
    _remove(path)
    listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        await listener.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    listener.listen(backlog)
    return trio.SocketListener(listener)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


async def _connection(stream: trio.SocketStream, methods: dict[str, Handler], events: Events) -> None:
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
            if len(buffer) > MAX_REQUEST and b"\n" not in buffer[: MAX_REQUEST + 1]:
                error = {"code": api.INVALID_REQUEST, "message": _TOO_LARGE}
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await stream.send_all(json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode() + b"\n")
                return
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                events.touch()
                reply, subscribe = await answer(line, methods)
                # Subscribed before the acknowledgement leaves: a client that checks its condition once
                # acknowledged (ControlClient.wait) misses no event published after that check.
                channel = events.subscribe() if subscribe else None
                try:
                    await stream.send_all(json.dumps(reply).encode() + b"\n")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    if channel is not None:
                        await channel.aclose()
                    return
                if channel is not None:
                    await _stream_events(stream, channel)
                    return


async def _stream_events(stream: trio.SocketStream, channel: trio.MemoryReceiveChannel[dict[str, Any]]) -> None:
    """Send each event until the subscriber hangs up: noticed at once (its end of the socket closes), not at the
    next event, so it stops counting as a subscriber (a node the CLI started idles out)."""

    async def until_hang_up(scope: trio.CancelScope) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while await stream.receive_some(4096):  # a subscriber has nothing more to say: anything is ignored
                pass
        scope.cancel()

    async with channel, trio.open_nursery() as nursery:
        nursery.start_soon(until_hang_up, nursery.cancel_scope)
        async for event in channel:
            note = {"jsonrpc": "2.0", "method": "event", "params": event}
            try:
                await stream.send_all(json.dumps(note).encode() + b"\n")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                break
        nursery.cancel_scope.cancel()


async def answer(line: bytes, methods: dict[str, Handler]) -> tuple[dict[str, Any], bool]:
    """The reply to one request line (and whether it subscribes), with `methods` answering; also the front's."""
    request_id: Any = None
    error: dict[str, Any]
    try:
        text = line.decode("utf-8", "replace")
        if text.count("[") + text.count("{") > MAX_DEPTH and nesting_depth(text) > MAX_DEPTH:
            # json's C parser recurses per level: deep enough, under the recursion limit py-evm raises, it would
            # overflow the thread's stack and take the node down (found by fuzzing; tests/test_control.py).
            raise RpcError(api.INVALID_REQUEST, f"The request nests deeper than {MAX_DEPTH} levels.")
        request = json.loads(text)
        if (
            not isinstance(request, dict)
            or request.get("jsonrpc") != "2.0"
            or not isinstance(request.get("method"), str)
        ):
            raise RpcError(api.INVALID_REQUEST, "That is not a JSON-RPC 2.0 request.")
        request_id = request.get("id")
        name = request["method"]
        params = request.get("params") or {}
        if not isinstance(params, dict):
            raise RpcError(api.INVALID_PARAMS, "The params of a request must be an object.")
        method = api.METHODS.get(name)
        handler = methods.get(name)
        if method is None or (handler is None and name != "subscribe"):
            raise RpcError(api.UNKNOWN_METHOD, f"The node has no method {name!r} (control API {api.API_VERSION}).")
        params = api.check_params(method, params)
        if name == "subscribe":
            return {"jsonrpc": "2.0", "id": request_id, "result": {"subscribed": True}}, True
        assert handler is not None
        result = await handler(params)
        return {"jsonrpc": "2.0", "id": request_id, "result": result}, False
    except json.JSONDecodeError:
        error = {"code": api.PARSE_ERROR, "message": "The request is not JSON."}
    except RpcError as exc:
        error = {"code": exc.code, "message": str(exc)}
    except api.InvalidParams as exc:
        error = {"code": api.INVALID_PARAMS, "message": str(exc)}
    except Exception as exc:
        failure = failures.describe(exc, log="the node's log")
        error = {"code": api.APPLICATION_ERROR, "message": failure.message, "data": {"exit_code": failure.exit_code}}
    return {"jsonrpc": "2.0", "id": request_id, "error": error}, False


class ControlClient:
    """A blocking client of the control API (the CLI, scripts); the TUI can use it from a worker thread."""

    def __init__(self, data_dir: Path, *, timeout: float = 30.0) -> None:
        self.path = socket_path(data_dir)
        self.timeout = timeout
        self._next_id = 0
        self._version_checked = False

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise NodeNotRunning(
                f"No node is running for {self.path.parent}; start one with `datanet node run`."
            ) from None
        return sock

    def call(self, method: str, /, *, timeout: float | None = None, **params: Any) -> Any:
        """Call a method (api.METHODS) and return its result; RemoteError with the node's sentence and exit code
        if it failed there. The first call checks that the node speaks this client's control API version.
        `timeout` (seconds) replaces the client's for this call (chain calls wait for receipts)."""
        if not self._version_checked:
            status = self._call("status")
            self._check_version(status)
            if method == "status":
                return status
        return self._call(method, timeout=timeout, **params)

    def _call(self, method: str, /, *, timeout: float | None = None, **params: Any) -> Any:
        self._next_id += 1
        request = {"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}
        limit = self.timeout if timeout is None else timeout
        try:
            with self._connect() as sock:
                sock.settimeout(limit)
                sock.sendall(json.dumps(request).encode() + b"\n")
                reply = json.loads(_read_line(sock))
        except TimeoutError:
            raise NodeError(
                f"The node did not answer {method!r} within {limit:g} s; it may be stuck (see its log)."
            ) from None
        return result_of(reply)

    def _check_version(self, status: Any) -> None:
        check_version(status, self.path.parent)
        self._version_checked = True

    # typed calls --------------------------------------------------------------------------------------------

    def status(self) -> NodeStatus:
        return cast(NodeStatus, self.call("status"))

    def peers(self) -> list[PeerInfo]:
        return cast(list[PeerInfo], self.call("peers"))

    def datanets(self) -> list[dict[str, Any]]:
        """The vault's Datanets (the `datanets` method's list; shard files that cannot be opened left out)."""
        return cast(list[dict[str, Any]], self.call("datanets")["datanets"])

    def jobs(self, limit: int = 50) -> list[JobInfo]:
        return cast(list[JobInfo], self.call("jobs", limit=limit))

    def job(self, job_id: str) -> JobInfo:
        return cast(JobInfo, self.call("job", id=job_id))

    def sync(self, datanet: str, peer: str | None = None, *, wait: bool = False) -> Any:
        """One job (with `peer`) or {"jobs": [...]} (every connected member)."""
        return self.call("sync", datanet=datanet, peer=peer, wait=wait)

    def prove(self, datanet: str, *, workers: int = 1, wait: bool = False) -> JobInfo:
        return cast(JobInfo, self.call("prove", datanet=datanet, workers=workers, wait=wait))

    def train(self, datanet: str, *, wait: bool = False, **settings: Any) -> JobInfo:
        return cast(JobInfo, self.call("train", datanet=datanet, wait=wait, **settings))

    def cancel(self, job_id: str) -> JobInfo:
        return cast(JobInfo, self.call("cancel", id=job_id))

    def stop(self) -> None:
        """Ask the node to stop (without the version check: any version's node should be stoppable)."""
        self._call("stop")

    def _events(self, deadline: float | None, tick: float | None = None) -> Generator[dict[str, Any] | None]:
        """None once the subscription stands, then each event the node publishes (with `tick`: None again after
        `tick` seconds without one, so the caller re-checks what it waits for: an event it needed may have been
        lost to a full queue); ends at `deadline` (a time.monotonic() value) or when the node closes the
        connection."""
        with self._connect() as sock:
            sock.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "subscribe"}\n')
            sock.settimeout(None)  # waits are select()'s below: a timed-out read would lose a partial line
            buffer = b""
            acknowledged = False
            while True:
                while b"\n" not in buffer:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return
                    waits = [w for w in (remaining, tick if acknowledged else None) if w is not None]
                    if not select.select([sock], [], [], min(waits) if waits else None)[0]:
                        if tick is not None and acknowledged:
                            yield None  # a tick: nothing for a while (the deadline is checked above)
                        continue
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                line, buffer = buffer.split(b"\n", 1)
                if not acknowledged:  # the subscription's acknowledgement
                    acknowledged = True
                    yield None
                    continue
                yield json.loads(line)["params"]

    def subscribe(self) -> Iterator[dict[str, Any]]:
        """Events as they happen, until the node stops (or the caller stops iterating)."""
        with contextlib.closing(self._events(None)) as events:
            yield from (event for event in events if event is not None)

    def wait(
        self, condition: Callable[[dict[str, Any] | None], bool], *, timeout: float, on: Collection[str] = ()
    ) -> bool:
        """Block until `condition` holds, without polling: it is called with None once the subscription stands
        (so no event is missed in between), then with each event the node publishes (only events whose type is
        in `on`, when given). False once `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        with contextlib.closing(self._events(deadline)) as events:
            for event in events:
                if (event is None or not on or event.get("type") in on) and condition(event):
                    return True
        if time.monotonic() < deadline:
            raise ClientError("The node stopped while this command waited for it.")
        return False

    def wait_job(self, job_id: str, *, timeout: float) -> JobInfo:
        """The job once it is done, failed or cancelled."""
        ended = ("done", "failed", "cancelled")
        if not self.wait(lambda _: self.job(job_id)["state"] in ended, timeout=timeout, on=("job",)):
            raise ClientError(
                f"Job {job_id} has not finished after {timeout:g} s; it goes on in the node (see `datanet jobs`)."
            )
        return self.job(job_id)

    def follow(
        self, method: str, /, on_progress: Callable[[dict[str, Any]], None] | None = None, **params: Any
    ) -> JobInfo:
        """Queue a job (a method that answers JobInfo), pass each of its progress events to `on_progress`, and
        return the job once it ended (done, failed or cancelled). Ctrl-C cancels the job at its next safe point
        (what it committed stays) and returns it cancelled; a node that stops meanwhile is one sentence."""
        if not self._version_checked:
            self._check_version(self._call("status"))
        ended = ("done", "failed", "cancelled")
        final: dict[str, Any] = {}  # the job's "done" event: its whole summary (the journal may keep less)
        with contextlib.closing(self._events(None, tick=5.0)) as events:
            next(events)  # the subscription stands: no event of the job can be missed
            job = cast(JobInfo, self._call(method, **params))
            job_id = job["id"]
            try:
                for event in events:
                    if event is None:  # quiet for a while: the job's last event may have been lost
                        if self.job(job_id)["state"] in ended:
                            break
                        continue
                    kind = str(event.get("type"))
                    if kind == "missed" and self.job(job_id)["state"] in ended:
                        break
                    mine = event.get("id") == job_id or (  # a sync session's progress names its Datanet
                        kind == "sync.progress" and method == "sync" and event.get("datanet") == params.get("datanet")
                    )
                    if not mine:
                        continue
                    if kind == "job" and event.get("state") in ended:
                        if event.get("state") == "done":
                            final = {
                                k: v for k, v in event.items() if k not in ("type", "id", "state", "kind", "seq", "at")
                            }
                        break
                    if kind.endswith(".progress") and on_progress is not None:
                        on_progress(event)
                else:
                    raise NodeError(
                        f"The node stopped while job {job_id} ran; it resumes when the node starts again "
                        "(`datanet jobs` shows it)."
                    )
            except KeyboardInterrupt:  # the job is cancelled at its next safe point, and this is its answer
                try:
                    return self.cancel(job_id)
                except RemoteError:  # it ended meanwhile: that is its answer
                    return self.job(job_id)
        answer = self.job(job_id)
        if final and answer["state"] == "done":
            answer["progress"] = {**answer["progress"], **final}
        return answer

    def running(self) -> bool:
        try:
            self._call("status")
        except NodeNotRunning:
            return False
        return True


def result_of(reply: dict[str, Any]) -> Any:
    """A JSON-RPC reply's result, or RemoteError with the node's sentence and exit code."""
    if "error" in reply:
        error = reply["error"]
        data = error.get("data") if isinstance(error.get("data"), dict) else {}
        raise RemoteError(str(error.get("message")), int(data.get("exit_code", failures.EXIT_ERROR)))
    return reply["result"]


def check_version(status: Any, data_dir: Path) -> None:
    """NodeError unless `status` is a node's that speaks this client's control API version."""
    version = status.get("api_version") if isinstance(status, dict) else None
    if version != api.API_VERSION:
        raise NodeError(
            f"The node running for {data_dir} speaks control API version {version or 1}, and this "
            f"datanet speaks {api.API_VERSION}; restart it (`datanet node stop`, then `datanet node run`)."
        )


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise NodeError("The node closed the control connection before answering; see its log.")
        data += chunk
    return data
