"""The terminal UI driven by Textual's pilot against a real node (started in the background by the CLI, real vault):
the home screen shows the Datanet and its counts; an import from the Datanet screen changes them; a node that goes
away shows the banner, and the app reattaches when it comes back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from client.node.async_client import AsyncControlClient
from tests.conftest import Cli
from tests.test_node import jsonl
from tui.app import DatanetApp


async def until(pilot: Pilot[int], holds: Callable[[], bool], within: float = 30.0) -> None:
    """Let the app run until `holds()` (the UI reacts to the node's events), failing after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not holds():
        assert asyncio.get_running_loop().time() < deadline, "the UI did not get there in time"
        await pilot.pause(0.1)


def text(app: DatanetApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def rows(app: DatanetApp, selector: str) -> list[list[str]]:
    table = app.screen.query_one(selector, DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


@pytest.fixture
def cli(headless_cli: Cli) -> Cli:
    headless_cli.env["DATANET_PASSPHRASE"] = "tui tests passphrase"
    headless_cli.ok("create", "ward", "--task", "intent-classification")  # a node now runs, in the background
    return headless_cli


def test_home_shows_the_datanet_and_an_import_from_the_datanet_screen_changes_the_counts(
    cli: Cli, tmp_path: Path
) -> None:
    peer_id = cli.ok("--json", "identity", "show").json()["peer_id"]
    records = jsonl(tmp_path / "ward.jsonl", range(30))

    async def scenario() -> None:
        app = DatanetApp(AsyncControlClient(cli.data_dir), where=str(cli.data_dir))
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: bool(rows(app, "#datanets")))
            assert rows(app, "#datanets")[0][:3] == ["ward", "intent-classification", "0"]
            assert peer_id in text(app, "#identity") and "offline" in text(app, "#node")

            await pilot.press("2")
            await until(pilot, lambda: "ward (intent-classification): 0 records" in text(app, "#summary"))
            app.screen.query_one("#import-path", Input).value = str(records)
            await pilot.press("enter")
            await until(pilot, lambda: "ward (intent-classification): 30 records, 30 own" in text(app, "#summary"))
            await until(pilot, lambda: len(rows(app, "#records")) == 30)
            assert {r[4] for r in rows(app, "#records")} == {"own"}

            await pilot.press("3")
            await until(pilot, lambda: any(r[1:3] == ["import", "done"] for r in rows(app, "#all-jobs")))
            await pilot.press("1")
            await until(pilot, lambda: rows(app, "#datanets")[0][2] == "30")

    asyncio.run(scenario())


def test_a_node_that_goes_away_shows_the_banner_and_the_app_reattaches_when_it_is_back(cli: Cli) -> None:
    async def scenario() -> None:
        app = DatanetApp(AsyncControlClient(cli.data_dir), where=str(cli.data_dir))
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.connected and bool(rows(app, "#datanets")))
            banner = app.screen.query_one("#banner", Static)
            assert not banner.display

            await asyncio.to_thread(cli.ok, "node", "stop")
            await until(pilot, lambda: banner.display and "No node for" in text(app, "#banner"))
            await asyncio.to_thread(cli.ok, "status")  # a command starts a node again
            await until(pilot, lambda: app.connected and not banner.display, within=60)
            await until(pilot, lambda: bool(rows(app, "#datanets")))

    asyncio.run(scenario())
