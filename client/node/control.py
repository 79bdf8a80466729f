"""The node's control API: JSON-RPC 2.0 over a Unix domain socket (`<data dir>/node.sock`, mode 0600, in a 0700
directory), one JSON object per line. The CLI and the TUI are its clients (`ControlClient`).

Methods: status, peers, datanets, jobs, job(id), sync(datanet, peer?), members(datanet),
subscribe (the connection then receives `{"jsonrpc": "2.0", "method": "event", "params": {...}}` notifications:
sync progress, peer up/down, records received, job state changes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Generator, Iterator
from pathlib import Path
from typing import Any, TypedDict, cast

import trio

from client.errors import ClientError

logger = logging.getLogger(__name__)
MAX_REQUEST = 1 << 20
Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def socket_path(data_dir: Path) -> Path:
    return data_dir / "node.sock"


class Events:
    """Fan-out of events to every subscriber (a bounded queue each; a slow subscriber loses old events)."""

    def __init__(self) -> None:
        self._subscribers: set[trio.MemorySendChannel[dict[str, Any]]] = set()

    def publish(self, event: dict[str, Any]) -> None:
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                pass  # the subscriber is behind; it gets the next ones
            except trio.BrokenResourceError:
                self._subscribers.discard(channel)

    def subscribe(self) -> trio.MemoryReceiveChannel[dict[str, Any]]:
        send, receive = trio.open_memory_channel[dict[str, Any]](256)
        self._subscribers.add(send)
        return receive


async def serve(
    path: Path, methods: dict[str, Handler], events: Events, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> None:
    """Listen on `path` (0600) and answer requests until cancelled."""
    _remove(path)
    listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        await listener.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    listener.listen(16)
    server = trio.SocketListener(listener)
    task_status.started()
    try:
        await trio.serve_listeners(lambda stream: _connection(stream, methods, events), [server])
    finally:
        _remove(path)


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
            if len(buffer) > MAX_REQUEST:
                return
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                reply, subscribe = await _answer(line, methods)
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
    async with channel:
        async for event in channel:
            note = {"jsonrpc": "2.0", "method": "event", "params": event}
            try:
                await stream.send_all(json.dumps(note).encode() + b"\n")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return


async def _answer(line: bytes, methods: dict[str, Handler]) -> tuple[dict[str, Any], bool]:
    request_id: Any = None
    try:
        request = json.loads(line)
        if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" or "method" not in request:
            raise RpcError(-32600, "not a JSON-RPC 2.0 request")
        request_id = request.get("id")
        method = request["method"]
        params = request.get("params") or {}
        if not isinstance(params, dict):
            raise RpcError(-32602, "params must be an object")
        if method == "subscribe":
            return {"jsonrpc": "2.0", "id": request_id, "result": {"subscribed": True}}, True
        handler = methods.get(method)
        if handler is None:
            raise RpcError(-32601, f"unknown method {method!r}")
        result = await handler(params)
        return {"jsonrpc": "2.0", "id": request_id, "result": result}, False
    except json.JSONDecodeError:
        error = {"code": -32700, "message": "not JSON"}
    except RpcError as exc:
        error = {"code": exc.code, "message": str(exc)}
    except ClientError as exc:  # the storage and client errors are sentences meant for users
        error = {"code": 1, "message": str(exc)}
    except Exception as exc:
        if isinstance(exc, (KeyError, ValueError, TypeError)):
            error = {"code": -32602, "message": f"invalid params ({exc})"}
        else:
            logger.exception("control API method failed")
            error = {"code": -32603, "message": f"internal error ({type(exc).__name__}); see the node's log"}
    return {"jsonrpc": "2.0", "id": request_id, "error": error}, False


class NodeNotRunning(ClientError):
    pass


class NodeStatus(TypedDict):
    peer_id: str
    addresses: list[str]
    uptime_s: float
    datanets: int
    peers_connected: int
    jobs: dict[str, int]


class PeerInfo(TypedDict):
    peer_id: str
    address: str
    transport: str  # "direct" or "relayed"
    connected: bool
    last_sync: float | None
    last_error: str | None
    latency_ms: float | None


class JobInfo(TypedDict):
    id: str
    kind: str  # "sync" | "prove" | "train"
    params: dict[str, Any]
    state: str  # "queued" | "running" | "done" | "failed"
    progress: dict[str, Any]
    error: str | None
    created_ms: int
    updated_ms: int


class ControlClient:
    """A blocking client of the control API (the CLI, scripts); the TUI can use it from a worker thread."""

    def __init__(self, data_dir: Path, *, timeout: float = 30.0) -> None:
        self.path = socket_path(data_dir)
        self.timeout = timeout
        self._next_id = 0

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

    def call(self, method: str, **params: Any) -> Any:
        self._next_id += 1
        with self._connect() as sock:
            sock.sendall(
                json.dumps({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}).encode() + b"\n"
            )
            reply = json.loads(_read_line(sock))
        if "error" in reply:
            raise ClientError(str(reply["error"]["message"]))
        return reply["result"]

    # typed calls --------------------------------------------------------------------------------------------

    def status(self) -> NodeStatus:
        return cast(NodeStatus, self.call("status"))

    def peers(self) -> list[PeerInfo]:
        return cast(list[PeerInfo], self.call("peers"))

    def datanets(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self.call("datanets"))

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

    def _events(self, deadline: float | None) -> Generator[dict[str, Any] | None]:
        """None once the subscription stands, then each event the node publishes; ends at `deadline` (a
        time.monotonic() value) or when the node closes the connection."""
        with self._connect() as sock:
            sock.sendall(b'{"jsonrpc": "2.0", "id": 1, "method": "subscribe"}\n')
            reader = sock.makefile("rb")
            reader.readline()  # the subscription's acknowledgement
            yield None
            while True:
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    sock.settimeout(remaining)
                else:
                    sock.settimeout(None)
                try:
                    line = reader.readline()
                except TimeoutError:
                    return
                if not line:
                    return
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
        """The job once it is done or failed."""
        if not self.wait(lambda _: self.job(job_id)["state"] in ("done", "failed"), timeout=timeout, on=("job",)):
            raise ClientError(
                f"Job {job_id} has not finished after {timeout:g} s; it goes on in the node (see `datanet jobs`)."
            )
        return self.job(job_id)

    def running(self) -> bool:
        try:
            self.call("status")
        except NodeNotRunning:
            return False
        return True


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise ClientError("The node closed the control connection before answering.")
        data += chunk
    return data
