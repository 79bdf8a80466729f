"""The terminal UI driven by Textual's pilot against a real node (started in the background by the CLI, real vault):
the home screen shows the Datanet and its counts; an import from the Datanet screen changes them; a node that goes
away shows the banner, and the app reattaches when it comes back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static

from client.node.async_client import AsyncControlClient
from tests.conftest import Cli
from tests.test_node import jsonl
from tui.app import DatanetApp
from tui.dialogs import Confirm, Form, ImportableTree, PickFile


async def until(pilot: Pilot[int], holds: Callable[[], bool], within: float = 30.0) -> None:
    """Let the app run until `holds()` (the UI reacts to the node's events), failing after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not holds():
        assert asyncio.get_running_loop().time() < deadline, "the UI did not get there in time; its activity: " + (
            " | ".join(list(pilot.app.activity)[-5:]) if isinstance(pilot.app, DatanetApp) else ""
        )
        await pilot.pause(0.1)


def run(scenario: Callable[[], Coroutine[Any, Any, None]], within: float = 300.0) -> None:
    """Run a pilot scenario, bounded: a UI that stops reacting fails the test instead of hanging it."""
    asyncio.run(asyncio.wait_for(scenario(), within))


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
            await pilot.press("i")  # the file picker: a path typed in its field
            await until(pilot, lambda: isinstance(app.screen, PickFile))
            field = app.screen.query_one("#pick-path", Input)
            field.focus()
            field.value = str(records)
            await pilot.press("enter")
            await until(pilot, lambda: "ward (intent-classification): 30 records, 30 own" in text(app, "#summary"))
            await until(pilot, lambda: len(rows(app, "#records")) == 30)
            assert {r[4] for r in rows(app, "#records")} == {"own"}

            # ...or a file chosen in its tree (this machine's files from where the app started; Enter imports it)
            (tmp_path / "picked").mkdir()
            more = jsonl(tmp_path / "picked" / "more.jsonl", range(30, 35))
            app.files_from = tmp_path / "picked"
            await pilot.press("i")
            await until(pilot, lambda: isinstance(app.screen, PickFile))
            tree = app.screen.query_one(ImportableTree)
            await until(pilot, lambda: len(tree.root.children) > 0)
            assert [node.data.path.name for node in tree.root.children if node.data is not None] == ["more.jsonl"]
            tree.move_cursor(tree.root.children[0])
            await pilot.press("enter")
            await until(pilot, lambda: "35 records" in text(app, "#summary"))
            assert more.name in text(app, "#import-status")

            await pilot.press("8")
            await until(pilot, lambda: any(r[1:3] == ["import", "done"] for r in rows(app, "#all-jobs")))
            await pilot.press("1")
            await until(pilot, lambda: rows(app, "#datanets")[0][2] == "35")

    run(scenario)


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

    run(scenario)


def test_training_starts_from_the_form_shows_its_loss_and_is_cancelled_after_a_confirmation(
    cli: Cli, tmp_path: Path
) -> None:
    cli.ok("import", "ward", str(jsonl(tmp_path / "ward.jsonl", range(40))))

    async def scenario() -> None:
        app = DatanetApp(AsyncControlClient(cli.data_dir), where=str(cli.data_dir))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("4")
            await until(pilot, lambda: "Datanet ward" in text(app, "#train-status"))
            app.screen.query_one("#train-base", Input).value = "tiny-classifier"
            app.screen.query_one("#train-epochs", Input).value = "400"
            app.screen.query_one("#train-threads", Input).value = "1"
            app.screen.query_one("#train-dp", Input).value = "a lot"  # not a number: refused, nothing queued
            app.screen.query_one("#adapters", DataTable).focus()
            await pilot.press("t")
            await until(pilot, lambda: any("not a number" in str(n.message) for n in app._notifications))
            jobs = await app.client.call("jobs")
            assert not [j for j in jobs if j["kind"] == "train"]

            app.screen.query_one("#train-dp", Input).value = ""
            await pilot.press("t")
            await until(pilot, lambda: "running, step" in text(app, "#train-status"), within=120)
            await until(pilot, lambda: len(app.losses.get(next(iter(app.losses), ""), [])) >= 3, within=120)
            (job_id,) = app.losses
            job = await app.client.call("job", id=job_id)
            assert job["params"]["base"] == "tiny-classifier" and job["params"]["epochs"] == 400

            await pilot.press("8")  # the jobs screen: cancel asks first, and "n" keeps the job
            await until(pilot, lambda: any(r[0] == job_id for r in rows(app, "#all-jobs")))
            await pilot.press("c")
            await until(pilot, lambda: app.screen.__class__.__name__ == "Confirm")
            await pilot.press("n")
            assert (await app.client.call("job", id=job_id))["state"] == "running"
            await pilot.press("4", "c")  # the training screen cancels the running run at once
            await until(pilot, lambda: f"job {job_id} on ward: cancelled" in text(app, "#train-status"), within=60)
            assert any(f"job {job_id} (train) cancelled" in line for line in app.activity)

    run(scenario)


def test_prove_then_submit_on_the_embedded_devnet_asks_once_before_anything_leaves(cli: Cli, tmp_path: Path) -> None:
    cli.ok("create", "clinic", "--task", "intent-classification", "--on-chain")
    cli.ok("import", "clinic", str(jsonl(tmp_path / "clinic.jsonl", range(20))))

    async def scenario() -> None:
        app = DatanetApp(AsyncControlClient(cli.data_dir), where=str(cli.data_dir))
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("5")
            await until(pilot, lambda: "on devnet" in text(app, "#chain-status"), within=60)
            while app.datanet != "clinic":
                await pilot.press("n")
                await pilot.pause(0.1)
            await pilot.press("p")
            proven = [["16", "proved"], ["4", "proved"]]
            await until(pilot, lambda: [r[1:3] for r in rows(app, "#batches")] == proven, within=180)

            await pilot.press("s")  # the first submission to this chain: a confirmation, and "n" sends nothing
            await until(pilot, lambda: app.screen.__class__.__name__ == "Confirm")
            assert "no record content" in str(app.screen.query_one("#question", Static).render())
            await pilot.press("n")
            await until(pilot, lambda: any("submit clinic: not confirmed" in line for line in app.activity))
            assert [r[2] for r in rows(app, "#batches")] == ["proved", "proved"] and not app.txs

            await pilot.press("s", "y")
            await until(pilot, lambda: [r[2] for r in rows(app, "#batches")] == ["submitted"] * 2, within=120)
            await until(pilot, lambda: len(rows(app, "#txs")) == 2)
            txs = {r[4] for r in rows(app, "#txs")}
            assert txs == {r[4] for r in rows(app, "#batches")} and all(t.startswith("0x") for t in txs)
            assert all(r[2] == "confirmed" and 250_000 < int(r[3]) < 1_600_000 for r in rows(app, "#txs"))  # gas
            assert all(any(tx in line for line in app.activity) for tx in txs)

            await pilot.press("6")  # what left: the two proofs and their transactions, to the chain
            await until(pilot, lambda: sorted(r[5] for r in rows(app, "#sent")) == sorted(txs))

    run(scenario)


def test_the_command_palette_reaches_the_screens_and_a_record_is_deleted_only_once_confirmed(
    cli: Cli, tmp_path: Path
) -> None:
    cli.ok("import", "ward", str(jsonl(tmp_path / "ward.jsonl", range(3))))

    async def scenario() -> None:
        app = DatanetApp(AsyncControlClient(cli.data_dir), where=str(cli.data_dir))
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.connected)
            await pilot.press("ctrl+p")
            await pilot.press(*"go to datanet")
            await pilot.press("enter")
            await until(pilot, lambda: len(rows(app, "#records")) == 3)
            first = rows(app, "#records")[0][0]
            await until(pilot, lambda: first in text(app, "#record") and "(Enter shows it)" in text(app, "#record"))
            app.screen.query_one("#records", DataTable).focus()
            await pilot.press("d", "n")
            await until(pilot, lambda: any(f"delete {first}: not confirmed" in line for line in app.activity))
            assert len(rows(app, "#records")) == 3
            await pilot.press("d", "y")
            await until(pilot, lambda: len(rows(app, "#records")) == 2)
            assert first not in [r[0] for r in rows(app, "#records")]
            assert (await app.client.call("records.count", datanet="ward"))["records"] == 2

    run(scenario)


def test_a_datanet_is_created_on_chain_and_joined_from_the_datanet_screen(cli: Cli) -> None:
    async def scenario() -> None:
        app = DatanetApp(AsyncControlClient(cli.data_dir), where=str(cli.data_dir))
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: app.connected and bool(rows(app, "#datanets")))
            await pilot.press("2", "c")  # create: name, task, on chain; then a confirmation (a transaction)
            await until(pilot, lambda: isinstance(app.screen, Form))
            app.screen.query_one("#form-task", Select).value = "intent-classification"
            app.screen.query_one("#form-chain", Select).value = "yes"
            name = app.screen.query_one("#form-name", Input)
            name.focus()
            name.value = "clinic"
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, Confirm))
            await pilot.press("y")
            await until(pilot, lambda: "clinic (intent-classification): 0 records" in text(app, "#summary"), 120)
            chain = await app.client.call("chain.datanets")
            assert [(d["name"], d["member"]) for d in chain] == [("clinic", True)]

            await asyncio.to_thread(cli.ok, "leave", "clinic")  # no longer a member: the screen can join it again
            await pilot.press("j")
            await until(pilot, lambda: isinstance(app.screen, Form))
            assert app.screen.query_one("#form-join", Select).value == "clinic"
            await pilot.click("#ok")
            await until(pilot, lambda: isinstance(app.screen, Confirm))
            await pilot.press("y")
            await until(pilot, lambda: any("Joined 'clinic'" in str(n.message) for n in app._notifications), 120)
            chain = await app.client.call("chain.datanets")
            assert [(d["name"], d["member"]) for d in chain] == [("clinic", True)]

    run(scenario)
