"""The TUI's screens, each a view of control-API answers: home (identity, node, Datanets, jobs), a Datanet (its
records with their provenance, import, delete), jobs (cancel) and the node's log (filtered); the base of every
screen (banner, activity pane). Every action is a control call the CLI makes too."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Header, Input, Label, Log, ProgressBar, Static

from client.app.jobs import progress_text
from tui.keybar import KeyBar

if TYPE_CHECKING:
    from tui.app import DatanetApp

PAGE = 100  # records a Datanet screen lists (the newest; search narrows them)


class NodeScreen(Screen[None]):
    """A screen that shows control-API answers: a banner while the node cannot be reached, and `refresh_data`.
    Its table has the focus when it opens, so the screen keys (1-8 and the screen's own) work at once; a text field
    is reached with its key or the mouse, and Escape leaves it."""

    AUTO_FOCUS = "DataTable"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "leave_field", "Leave field", show=False)]

    def action_leave_field(self) -> None:
        if isinstance(self.focused, Input):
            self.set_focus(None)

    def action_next_datanet(self) -> None:  # the screens that act on a Datanet bind it to n
        self.node_app.next_datanet()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="banner", markup=False)
        yield from self.body()
        yield Log(id="activity", max_lines=500)
        yield KeyBar()

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
        self.show_banner()  # the node may have come or gone while another screen was on view
        pane = self.query_one("#activity", Log)
        pane.display = self.node_app.show_activity
        if pane.display:
            pane.clear()
            pane.write_lines(list(self.node_app.activity))
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
        return await self.node_app.try_call(method, **params)


def _table(table: DataTable[Any], columns: tuple[str, ...], rows: list[tuple[Any, ...]], keys: list[str]) -> None:
    """Fill a table, keeping the cursor on the same row where it can. The same rows as before (by key, in order)
    have only their changed cells redrawn: a refresh under load costs what changed, not the whole table."""
    cells = [tuple(str(v) for v in values) for values in rows]
    if not table.columns:
        table.add_columns(*columns)
    elif [k.value for k in table.rows] == keys:
        column_keys = list(table.columns)
        for key, values in zip(keys, cells, strict=True):
            old = table.get_row(key)
            for column, (before, after) in enumerate(zip(old, values, strict=True)):
                if before != after:
                    table.update_cell(key, column_keys[column], after)
        return
    row = table.cursor_row
    table.clear()
    for key, values in zip(keys, cells, strict=True):
        table.add_row(*values, key=key)
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
        self.node_app.set_datanets([d["name"] for d in listed["datanets"]])
        chain = await self.node_app.chain_status()
        self.query_one("#identity", Static).update(
            f"peer id   {identity['peer_id']}\nEVM       {identity['evm_address']}\n"
            f"identity  {identity['identity_commitment'][:24]}… (commitment)"
        )
        where = "online: " + ", ".join(status["addresses"]) if status["online"] else "offline (control socket only)"
        failed = [j for j in jobs if j["state"] == "failed"]
        alerts = [f"{len(failed)} failed job(s), the latest: {failed[0]['error']} (8: jobs)"] if failed else []
        alerts += [f"{len(listed['unreadable'])} shard file(s) cannot be opened"] if listed["unreadable"] else []
        alerts += ["the chain cannot be reached"] if chain is None else []
        self.query_one("#node", Static).update(
            f"node      {where}, up {status['uptime_s']:.0f} s, {status['peers_connected']} peers\n"
            f"chain     {status['chain'] or 'the embedded devnet'}"
            + (
                f", block {chain['block']}, balance {int(chain['balance_wei']) / 10**18:.4f} ETH"
                if chain is not None
                else ", not reached"
            )
            + f"\nalerts    {'; '.join(alerts) or 'none'}"
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
    _table(
        table,
        ("ID", "KIND", "STATE", "DATANET", "PROGRESS", "ERROR"),
        [
            (j["id"], j["kind"], j["state"], j["params"].get("datanet", ""), progress_text(j), j["error"] or "")
            for j in jobs
        ],
        [j["id"] for j in jobs],
    )


class DatanetScreen(NodeScreen):
    """One Datanet: its records (metadata; the one under the cursor with its provenance, its content decrypted in
    memory on Enter), import with progress, and delete after a confirmation."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "next_datanet", "Next Datanet", id="datanet.next"),
        Binding("d", "delete_record", "Delete record", id="datanet.delete"),
        Binding("slash", "search", "Search", id="datanet.search"),
        Binding("i", "import_file", "Import", id="datanet.import"),
        Binding("c", "create", "Create", id="datanet.create"),
        Binding("j", "join", "Join", id="datanet.join"),
    ]

    def action_create(self) -> None:
        self.run_worker(self.node_app.create_datanet(), group="actions")  # it asks: a worker

    def action_join(self) -> None:
        self.run_worker(self.node_app.join_datanet(), group="actions")

    def __init__(self) -> None:
        super().__init__()
        self.importing: str | None = None  # the import job this screen follows
        self.shown: str | None = None  # the record whose details are on view

    def body(self) -> ComposeResult:
        with Vertical(id="datanet"):
            yield Static("", id="summary", markup=False)
            with Horizontal(id="import-row"):
                yield Static("import (i): no import running", id="import-status", markup=False)
                yield ProgressBar(total=100, id="import-progress", show_eta=False)
            yield Input(placeholder="search: records whose source matches this glob (Enter)", id="record-search")
            yield DataTable(id="records", cursor_type="row")
            yield Static("", id="record", markup=False)

    def action_search(self) -> None:
        self.query_one("#record-search", Input).focus()

    def action_import_file(self) -> None:
        self.run_worker(self._pick_and_import(), group="actions")

    async def _pick_and_import(self) -> None:
        """The file picker, then the import job this screen follows with its progress bar."""
        from tui.dialogs import PickFile

        datanet = self.node_app.datanet
        if datanet is None:
            self.notify("No Datanet yet: create one first (`datanet create NAME`).", severity="warning")
            return
        path = await self.app.push_screen_wait(PickFile(self.node_app.files_from))
        if path is None:
            return
        job = await self.call("records.import", datanet=datanet, paths=[path])
        if job is not None:
            self.importing = job["id"]
            self.query_one("#import-progress", ProgressBar).update(progress=0)
            self.query_one("#import-status", Static).update(f"import (i): {Path(path).name}")

    async def refresh_data(self) -> None:
        listed = await self.call("datanets")
        if listed is None:
            return
        app = self.node_app
        app.set_datanets([d["name"] for d in listed["datanets"]])
        summary = self.query_one("#summary", Static)
        if app.datanet is None:
            summary.update("No Datanets yet: `datanet create NAME`.")
            return
        d = next(d for d in listed["datanets"] if d["name"] == app.datanet)
        summary.update(
            f"{d['name']} ({d['task']}): {d['records']} records, {d['own']} own, {d['peer']} received, "
            f"{d['pending']} pending, {d['batches']['proven']} proven, {d['batches']['submitted']} submitted; "
            f"{len(d['members'])} members   [n: next Datanet]"
        )
        source = self.query_one("#record-search", Input).value.strip() or None
        page = await self.call(
            "records.list", datanet=app.datanet, limit=PAGE, **({"source": source} if source else {})
        )
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

    def _current(self) -> str | None:
        table = self.query_one("#records", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    async def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if event.data_table.id == "records" and key is not None and key != self.shown:
            await self._show(str(key), content=False)

    async def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "records" and event.row_key.value is not None:
            await self._show(str(event.row_key.value), content=True)

    async def _show(self, record_id: str, *, content: bool) -> None:
        """The record's provenance (who contributed it, from which peer, in which proven batch); its content only
        when asked for with Enter, decrypted by the node for this answer and held in this widget alone."""
        if self.node_app.datanet is None:
            return
        shown = await self.call("records.show", datanet=self.node_app.datanet, id=record_id)
        if shown is None:
            return
        self.shown = record_id
        lines = [
            f"record {shown['id']}  {shown['origin']}"
            + (f" (from {shown['received_from']})" if shown.get("received_from") else ""),
            "provenance " + _provenance(shown.get("provenance")),
        ]
        if content:
            lines.append("content    " + str(shown["record"])[:600])
        else:
            lines.append("content    (Enter shows it)")
        self.query_one("#record", Static).update("\n".join(lines))

    def action_delete_record(self) -> None:
        self.run_worker(self._delete_record(), group="actions")  # it asks first: a worker

    async def _delete_record(self) -> None:
        record_id, datanet = self._current(), self.node_app.datanet
        if record_id is None or datanet is None:
            return
        if not await self.node_app.confirm(
            f"Delete record {record_id[:16]} from {datanet}? It is gone from this machine (peers keep their copies).",
            yes="Delete",
        ):
            self.node_app.note(f"delete {record_id[:16]}: not confirmed")
            return
        deleted = await self.call("records.delete", datanet=datanet, ids=[record_id])
        if deleted is not None:
            self.notify(f"{deleted['deleted']} record deleted from {datanet}.")
            await self.refresh_data()

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
        if event.input.id == "record-search":
            await self.refresh_data()
            self.query_one("#records", DataTable).focus()
            return


def _provenance(provenance: Any) -> str:
    """A record's provenance in one line a batch: contributor commitment, batch root, Datanet, where it was
    accepted (own batches) or claimed to be (received ones)."""
    if not isinstance(provenance, list) or not provenance:
        return "in no proven batch yet (`prove` puts an own record in one)"
    parts = []
    for p in provenance:
        chain = p.get("chain") or p.get("chain_claimed")
        tx = p.get("tx") or p.get("tx_claimed")
        parts.append(
            f"contributor {str(p['contributor_commitment'])[:12]}…, batch {str(p['batch_root'])[:12]}… "
            f"(#{p['position']} of {p['count']}), Datanet id {p['datanet_id']}, "
            + ("own" if p.get("own") else f"carried by {str(p.get('carried_by'))[:16]}…")
            + (f", on {chain} in tx {str(tx)[:14]}…" if tx else ", not submitted")
            + ("" if p.get("own") or not tx else " (claimed)")
        )
    return "; ".join(parts)


class JobsScreen(NodeScreen):
    """The node's jobs; `c` cancels the one under the cursor (what it committed stays)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("c", "cancel_job", "Cancel job", id="jobs.cancel")]

    def body(self) -> ComposeResult:
        yield DataTable(id="all-jobs", cursor_type="row")

    async def refresh_data(self) -> None:
        jobs = await self.call("jobs", limit=200)
        if jobs is not None:
            _jobs_table(self.query_one("#all-jobs", DataTable), jobs)

    def action_cancel_job(self) -> None:
        self.run_worker(self._cancel_job(), group="actions")  # it asks first: a worker

    async def _cancel_job(self) -> None:
        table = self.query_one("#all-jobs", DataTable)
        if table.row_count == 0:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if key is None:
            return
        if not await self.node_app.confirm(f"Cancel job {key}? What it committed stays.", yes="Cancel"):
            self.node_app.note(f"cancel {key}: not confirmed")
            return
        if await self.call("cancel", id=key) is not None:
            self.notify(f"Job {key} cancelled.")
            await self.refresh_data()


class LogScreen(NodeScreen):
    """The node's log, newest last, filtered by level, area and text (never keys, passphrases or record
    contents)."""

    AUTO_FOCUS = ""  # nothing: the filter field is reached with /
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "next_level", "Level", id="log.level"),
        Binding("r", "next_area", "Area", id="log.area"),
        Binding("slash", "filter", "Filter", id="log.filter"),
    ]
    AREAS = (None, "node", "p2p", "chain", "training", "import", "vault", "identity", "cli")

    def action_filter(self) -> None:
        self.query_one("#log-filter", Input).focus()

    LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

    def __init__(self) -> None:
        super().__init__()
        self.level = "INFO"
        self.area: str | None = None

    def body(self) -> ComposeResult:
        with Vertical(id="log"):
            yield Input(placeholder="filter: text the lines must contain", id="log-filter")
            yield Static("", id="log-lines", markup=False)

    def action_next_level(self) -> None:
        self.level = self.LEVELS[(self.LEVELS.index(self.level) + 1) % len(self.LEVELS)]
        self.run_worker(self.refresh_data(), exclusive=True, group="refresh")

    def action_next_area(self) -> None:
        self.area = self.AREAS[(self.AREAS.index(self.area) + 1) % len(self.AREAS)]
        self.run_worker(self.refresh_data(), exclusive=True, group="refresh")

    async def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "log-filter":
            await self.refresh_data()

    async def refresh_data(self) -> None:
        text = self.query_one("#log-filter", Input).value or None
        tail = await self.call(
            "log.tail", lines=max(10, self.size.height - 6), level=self.level, text=text, area=self.area
        )
        if tail is not None:
            self.query_one("#log-lines", Static).update(
                f"[level {self.level}, l: next; area {self.area or 'all'}, r: next]\n"
                + "\n".join(line[:400] for line in tail["lines"])
            )
