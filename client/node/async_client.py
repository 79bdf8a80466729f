"""The control API's asyncio client, for the TUI (Textual runs on asyncio): the same calls, checks and sentences as
the blocking `control.ControlClient`, one connection per call, and `events()`, the node's event stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any, cast

from client.node.api import JobInfo, NodeStatus
from client.node.control import MAX_REQUEST, NodeError, NodeNotRunning, check_version, result_of, socket_path

READ_LIMIT = 64 << 20  # one answer line (a page of records, a log tail) can be large


class AsyncControlClient:
    def __init__(self, data_dir: Path | None = None, *, socket: Path | None = None, timeout: float = 30.0) -> None:
        """The node of `data_dir`, or the one listening on `socket` (e.g. a hospital's node through an SSH-forwarded
        socket)."""
        if socket is None and data_dir is None:
            raise ValueError("give a data directory or a socket path")
        self.path = socket if socket is not None else socket_path(cast(Path, data_dir))
        self.timeout = timeout
        self._next_id = 0
        self._version_checked = False

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_unix_connection(str(self.path), limit=READ_LIMIT)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NodeNotRunning(f"No node is listening on {self.path}; start one with `datanet node run`.") from None

    async def call(self, method: str, /, **params: Any) -> Any:
        """Call a method (api.METHODS); RemoteError with the node's sentence and exit code if it failed there. The
        first call checks the node's control API version. Each answer is waited for `timeout` seconds (chain calls
        wait for receipts: a client for them is made with a longer one)."""
        if not self._version_checked:
            status = await self._call("status")
            check_version(status, self.path.parent)
            self._version_checked = True
            if method == "status":
                return status
        return await self._call(method, **params)

    async def _call(self, method: str, /, **params: Any) -> Any:
        self._next_id += 1
        request = json.dumps({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params}).encode()
        if len(request) >= MAX_REQUEST:
            raise NodeError("The request is over the control API's 1 MiB limit; nothing was sent.")
        limit = self.timeout
        reader, writer = await self._open()
        try:
            writer.write(request + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), limit)
        except TimeoutError:
            raise NodeError(f"The node did not answer {method!r} within {limit:g} s; it may be stuck.") from None
        finally:
            writer.close()
        if not line.endswith(b"\n"):
            raise NodeError("The node closed the control connection before answering; see its log.")
        return result_of(json.loads(line))

    async def status(self) -> NodeStatus:
        return cast(NodeStatus, await self.call("status"))

    async def job(self, job_id: str) -> JobInfo:
        return cast(JobInfo, await self.call("job", id=job_id))

    async def events(self, on_subscribed: Callable[[], None] | None = None) -> AsyncGenerator[dict[str, Any]]:
        """The node's events as they are published (each with `seq` and `at`; `missed` when this client fell
        behind), until the node stops or the caller stops iterating. `on_subscribed` is called once the
        subscription stands: whatever the caller reads after it, no later event is missed."""
        reader, writer = await self._open()
        try:
            writer.write(b'{"jsonrpc": "2.0", "id": 1, "method": "subscribe"}\n')
            await writer.drain()
            result_of(json.loads(await reader.readline()))  # the subscription stands
            if on_subscribed is not None:
                on_subscribed()
            while line := await reader.readline():
                yield json.loads(line)["params"]
        finally:
            writer.close()
