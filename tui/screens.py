"""The TUI's screens, each a view of control-API answers: home (identity, node, Datanets, jobs), a Datanet (its
records, import), jobs (cancel) and the node's log (filtered). Every action is a control call the CLI makes too."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, ProgressBar, Static

from client.node.control import NodeError, RemoteError

if TYPE_CHECKING:
    from tui.app import DatanetApp


class NodeScreen(Screen[None]):
    """A screen that shows control-API answers: a banner while the node cannot be reached, and `refresh_data`."""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="banner", markup=False)
        yield from self.body()
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    @property
    def node_app(self) -> DatanetApp:
        from tui.app import DatanetApp

        assert isinstance(self.app, DatanetApp)
        return self.app

    async def on_mount(self) -> None:
        self.show_banner()
        if self.node_app.connected:
            await self.refresh_data()

    async def on_screen_resume(self) -> None:
        if self.node_app.connected:
            await self.refresh_data()

    def show_banner(self) -> None:
        try:
            banner = self.query_one("#banner", Static)
        except NoMatches:  # not composed yet: on_mount shows it
            return
        app = self.node_app
        banner.display = not app.connected
        if not app.connected:
            banner.update(
                f"No node for {app.where}: {app.problem or 'connecting…'} Trying again every few seconds; "
                "`datanet node run` starts one."
            )

    async def refresh_data(self) -> None:
        """Ask the node again and redraw."""

    async def call(self, method: str, **params: Any) -> Any | None:
        """A control call whose refusal is a notification (one sentence), not an exception."""
        try:
            return await self.node_app.call(method, **params)
        except (RemoteError, NodeError) as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return None


def _table(table: DataTable[Any], columns: tuple[str, ...], rows: list[tuple[Any, ...]], keys: list[str]) -> None:
    """Fill a table, keeping the cursor on the same row where it can."""
    row = table.cursor_row
    table.clear(columns=not table.columns)
    if not table.columns:
        table.add_columns(*columns)
    for key, values in zip(keys, rows, strict=True):
        table.add_row(*(str(v) for v in values), key=key)
    if rows:
        table.move_cursor(row=min(max(row, 0), len(rows) - 1))


class HomeScreen(NodeScreen):
    """Identity, the node and its chain, every Datanet with its counts, the latest jobs."""

    def body(self) -> ComposeResult:
        with Vertical(id="home"):
            yield Static("", id="identity", markup=False)
            yield Static("", id="node", markup=False)
            yield Label("Datanets", classes="heading")
            yield DataTable(id="datanets", cursor_type="row")
            yield Label("Jobs", classes="heading")
            yield DataTable(id="jobs", cursor_type="row")

    async def refresh_data(self) -> None:
        status = await self.call("status")
        identity = await self.call("identity")
        listed = await self.call("datanets")
        jobs = await self.call("jobs", limit=10)
        if status is None or identity is None or listed is None or jobs is None:
            return
        self.query_one("#identity", Static).update(
            f"peer id   {identity['peer_id']}\nEVM       {identity['evm_address']}\n"
            f"identity  {identity['identity_commitment'][:24]}… (commitment)"
        )
        where = "online: " + ", ".join(status["addresses"]) if status["online"] else "offline (control socket only)"
        self.query_one("#node", Static).update(
            f"node      {where}, up {status['uptime_s']:.0f} s, {status['peers_connected']} peers\n"
            f"chain     {status['chain'] or 'the embedded devnet'}"
        )
        datanets = listed["datanets"]
        _table(
            self.query_one("#datanets", DataTable),
            ("NAME", "TASK", "RECORDS", "OWN", "RECEIVED", "PENDING", "PROVEN", "SUBMITTED"),
            [
                (
                    d["name"],
                    d["task"],
                    d["records"],
                    d["own"],
                    d["peer"],
                    d["pending"],
                    d["batches"]["proven"],
                    d["batches"]["submitted"],
                )
                for d in datanets
            ],
            [d["name"] for d in datanets],
        )
        _jobs_table(self.query_one("#jobs", DataTable), jobs)


def _jobs_table(table: DataTable[Any], jobs: list[dict[str, Any]]) -> None:
    from client.cli.node_commands import _progress

    _table(
        table,
        ("ID", "KIND", "STATE", "DATANET", "PROGRESS", "ERROR"),
        [
            (j["id"], j["kind"], j["state"], j["params"].get("datanet", ""), _progress(j), j["error"] or "")
            for j in jobs
        ],
        [j["id"] for j in jobs],
    )


class DatanetScreen(NodeScreen):
    """One Datanet: its records (metadata only; a record's content is shown on request), and import."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("n", "next_datanet", "Next Datanet")]

    def __init__(self) -> None:
        super().__init__()
        self.datanet: str | None = None
        self.names: list[str] = []
        self.importing: str | None = None  # the import job this screen follows

    def body(self) -> ComposeResult:
        with Vertical(id="datanet"):
            yield Static("", id="summary", markup=False)
            with Horizontal(id="import-row"):
                yield Input(placeholder="import: a JSONL, CSV or folder path, then Enter", id="import-path")
                yield ProgressBar(total=100, id="import-progress", show_eta=False)
            yield DataTable(id="records", cursor_type="row")

    def action_next_datanet(self) -> None:
        if self.names:
            at = self.names.index(self.datanet) if self.datanet in self.names else -1
            self.datanet = self.names[(at + 1) % len(self.names)]
            self.run_worker(self.refresh_data(), exclusive=True, group="refresh")

    async def refresh_data(self) -> None:
        listed = await self.call("datanets")
        if listed is None:
            return
        self.names = [d["name"] for d in listed["datanets"]]
        if self.datanet not in self.names:
            self.datanet = self.names[0] if self.names else None
        summary = self.query_one("#summary", Static)
        if self.datanet is None:
            summary.update("No Datanets yet: `datanet create NAME`.")
            return
        d = next(d for d in listed["datanets"] if d["name"] == self.datanet)
        summary.update(
            f"{d['name']} ({d['task']}): {d['records']} records, {d['own']} own, {d['peer']} received, "
            f"{d['pending']} pending, {d['batches']['proven']} proven, {d['batches']['submitted']} submitted; "
            f"{len(d['members'])} members   [n: next Datanet]"
        )
        page = await self.call("records.list", datanet=self.datanet, limit=200)
        if page is None:
            return
        records = page["records"]
        _table(
            self.query_one("#records", DataTable),
            ("ID", "SOURCE", "IMPORTED (UTC)", "SIZE", "ORIGIN"),
            [(r["id"][:16], r["source"], r["imported_at"], r["size"], r["origin"]) for r in records],
            [r["id"] for r in records],
        )
        if self.importing is not None:
            job = await self.call("job", id=self.importing)
            bar = self.query_one("#import-progress", ProgressBar)
            if job is not None and job["state"] == "running" and job["progress"].get("total"):
                bar.update(progress=100 * job["progress"]["done"] / job["progress"]["total"])
            elif job is not None and job["state"] != "queued":
                bar.update(progress=100)
                self._imported(job)
                self.importing = None

    def _imported(self, job: dict[str, Any]) -> None:
        if job["state"] == "done":
            added = sum(i["added"] for i in job["progress"]["imported"])
            rejected = job["progress"]["rejected"]
            self.notify(
                f"{added} records added" + (f"; {rejected[0]['message']}" if rejected else "."),
                severity="warning" if rejected else "information",
            )
        else:
            self.notify(f"The import {job['state']}: {job['error']}", severity="error")

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "import-path" or not event.value.strip() or self.datanet is None:
            return
        path = _absolute(event.value.strip())  # the node reads it: an absolute path
        job = await self.call("records.import", datanet=self.datanet, paths=[path])
        if job is not None:
            self.importing = job["id"]
            self.query_one("#import-progress", ProgressBar).update(progress=0)
            event.input.value = ""
            self.query_one("#records", DataTable).focus()  # the screen keys (1-4, n) work again


def _absolute(path: str) -> str:
    """`path` made absolute against this process's working directory (no I/O but getcwd)."""
    return os.path.abspath(os.path.expanduser(path))


class JobsScreen(NodeScreen):
    """The node's jobs; `c` cancels the one under the cursor (what it committed stays)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("c", "cancel_job", "Cancel job")]

    def body(self) -> ComposeResult:
        yield DataTable(id="all-jobs", cursor_type="row")

    async def refresh_data(self) -> None:
        jobs = await self.call("jobs", limit=200)
        if jobs is not None:
            _jobs_table(self.query_one("#all-jobs", DataTable), jobs)

    async def action_cancel_job(self) -> None:
        table = self.query_one("#all-jobs", DataTable)
        if table.row_count == 0:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if key is not None and await self.call("cancel", id=key) is not None:
            self.notify(f"Job {key} cancelled.")
            await self.refresh_data()


class LogScreen(NodeScreen):
    """The node's log, newest last, filtered by level and text (never keys, passphrases or record contents)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("l", "next_level", "Level")]
    LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

    def __init__(self) -> None:
        super().__init__()
        self.level = "INFO"

    def body(self) -> ComposeResult:
        with Vertical(id="log"):
            yield Input(placeholder="filter: text the lines must contain", id="log-filter")
            yield Static("", id="log-lines", markup=False)

    def action_next_level(self) -> None:
        self.level = self.LEVELS[(self.LEVELS.index(self.level) + 1) % len(self.LEVELS)]
        self.run_worker(self.refresh_data(), exclusive=True, group="refresh")

    async def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "log-filter":
            await self.refresh_data()

    async def refresh_data(self) -> None:
        text = self.query_one("#log-filter", Input).value or None
        tail = await self.call("log.tail", lines=max(10, self.size.height - 6), level=self.level, text=text)
        if tail is not None:
            self.query_one("#log-lines", Static).update(
                f"[level {self.level}, l: next]\n" + "\n".join(line[:400] for line in tail["lines"])
            )
