"""`datanet tui`: the contributor's terminal UI, a client of the node's control API (client/node/async_client.py).

It holds no vault and no key: everything it shows or does is a control-API call (the same ones the CLI makes), so
the UI adds no private powers. Screens are numbered (1 home, 2 Datanet, 3 jobs, 4 log); the node's events refresh
the screen on view; a node that goes away shows a banner, and the app reattaches when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches

from client.node.async_client import AsyncControlClient
from client.node.control import NodeError, RemoteError
from tui.screens import DatanetScreen, HomeScreen, JobsScreen, LogScreen, NodeScreen

RETRY_EVERY = 2.0  # seconds between attempts to reach a node that went away
REFRESH_AT_MOST = 0.25  # seconds between two refreshes caused by events


class DatanetApp(App[int]):
    TITLE = "datanet"
    CSS_PATH = "datanet.tcss"
    MODES: ClassVar[dict[str, Any]] = {
        "home": HomeScreen,
        "datanet": DatanetScreen,
        "jobs": JobsScreen,
        "log": LogScreen,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "switch_mode('home')", "Home"),
        Binding("2", "switch_mode('datanet')", "Datanet"),
        Binding("3", "switch_mode('jobs')", "Jobs"),
        Binding("4", "switch_mode('log')", "Log"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, client: AsyncControlClient, *, where: str) -> None:
        super().__init__()
        self.client = client
        self.where = where  # the data directory or socket, for the banner
        self.connected = False
        self.problem: str | None = None  # why the node cannot be reached, once it could not
        self.activity: list[str] = []  # every control call and its outcome, newest last (the activity pane)
        self._last_refresh = 0.0
        self._pending_refresh = False

    async def on_mount(self) -> None:
        self.switch_mode("home")
        self.run_worker(self._follow_node(), name="node-events", exclusive=True)

    # --- calls --------------------------------------------------------------------------------------------

    async def call(self, method: str, **params: Any) -> Any:
        """A control call, noted in the activity list; a refusal or a gone node is shown as its sentence."""
        started = time.monotonic()
        try:
            result = await self.client.call(method, **params)
        except (RemoteError, NodeError) as exc:
            self.activity.append(f"{method}: {exc}")
            if isinstance(exc, NodeError):
                self._set_connected(False, str(exc))
            raise
        self.activity.append(f"{method} ({(time.monotonic() - started) * 1000:.0f} ms)")
        return result

    # --- the node's events ----------------------------------------------------------------------------------

    async def _follow_node(self) -> None:
        """Subscribe to the node's events and refresh the screen on view as they come; when the node goes away,
        say so and try again every RETRY_EVERY seconds."""
        while True:
            try:
                await self.client.call("status")
                self._set_connected(True, None)
                async for _event in self.client.events():
                    self._refresh_soon()
            except (NodeError, RemoteError, OSError) as exc:
                self._set_connected(False, str(exc))
            else:
                self._set_connected(False, "The node stopped.")
            await asyncio.sleep(RETRY_EVERY)

    def _set_connected(self, connected: bool, problem: str | None) -> None:
        changed = connected != self.connected or problem != self.problem
        self.connected, self.problem = connected, problem
        if changed:
            for screen in self.screen_stack:
                if isinstance(screen, NodeScreen):
                    screen.show_banner()
            if connected:
                self._refresh_soon()

    def _refresh_soon(self) -> None:
        """Refresh the screen on view, at most every REFRESH_AT_MOST seconds however many events arrive."""
        if self._pending_refresh:
            return
        wait = max(0.01, self._last_refresh + REFRESH_AT_MOST - time.monotonic())  # textual: a timer of 0 fails
        self._pending_refresh = True
        self.set_timer(wait, self._refresh_now)

    async def _refresh_now(self) -> None:
        self._pending_refresh = False
        self._last_refresh = time.monotonic()
        screen = self.screen
        if isinstance(screen, NodeScreen) and self.connected:
            with contextlib.suppress(NoMatches):  # a screen being composed or taken down: nothing to redraw
                await screen.refresh_data()


def run(client: AsyncControlClient, where: Path | str) -> int:
    """Run the app until the user quits; its exit code."""
    return DatanetApp(client, where=str(where)).run() or 0
