"""The TUI's network screens: peers and sync (every peer seen, direct or relayed, latency, last error; each sync
with records and bytes done and left, rate and ETA; start one) and what leaves this machine (what was sent, to
which peer or chain, and what would be). Every action is a control call the CLI makes too."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Label, Static

from tui.screens import NodeScreen, _table


def _when(ms: Any) -> str:
    """Unix milliseconds as local time to the minute ("" for none)."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ms / 1000)) if isinstance(ms, int | float) else ""


class PeersScreen(NodeScreen):
    """Peers and syncs; Enter in the field syncs the current Datanet with that peer, or with every connected
    member when it is empty (a peer never synced with before is confirmed first)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "sync_members", "Sync with members", id="peers.sync"),
        Binding("n", "next_datanet", "Next Datanet", id="peers.next"),
    ]

    def body(self) -> ComposeResult:
        with Vertical(id="peers-screen"):
            yield Static("", id="peers-summary", markup=False)
            yield Input(placeholder="sync with: /ip4/…/tcp/…/p2p/12D3KooW… then Enter", id="sync-peer")
            yield Label("Peers", classes="heading")
            yield DataTable(id="peers", cursor_type="row")
            yield Label("Syncs", classes="heading")
            yield DataTable(id="syncs", cursor_type="row")

    def action_sync_members(self) -> None:
        self.run_worker(self.node_app.sync(None), group="actions")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "sync-peer":
            self.run_worker(self.node_app.sync(event.value.strip() or None), group="actions")  # it may ask first
            event.input.value = ""
            self.query_one("#peers", DataTable).focus()

    async def refresh_data(self) -> None:
        app = self.node_app
        if not await app.refresh_names():
            return
        peers = await self.call("peers")
        jobs = await self.call("jobs", limit=50)
        if peers is None or jobs is None:
            return
        connected = sum(1 for p in peers if p["connected"])
        self.query_one("#peers-summary", Static).update(
            f"Datanet {app.datanet or '(none yet)'}: {len(peers)} peers seen, {connected} connected   "
            "[s: sync with every connected member, n: next Datanet]"
        )
        _table(
            self.query_one("#peers", DataTable),
            ("PEER", "ADDRESS", "TRANSPORT", "CONNECTED", "LATENCY MS", "LAST SYNC", "LAST ERROR"),
            [
                (
                    p["peer_id"][:20] + "…",
                    p["address"] or "",
                    p["transport"] or "",
                    "yes" if p["connected"] else "no",
                    "" if p["latency_ms"] is None else f"{p['latency_ms']:.1f}",
                    _when(p["last_sync"] * 1000) if isinstance(p["last_sync"], int | float) else "",
                    p["last_error"] or "",
                )
                for p in peers
            ],
            [p["peer_id"] for p in peers],
        )
        rows: list[tuple[Any, ...]] = []
        keys: list[str] = []
        for (datanet, peer), e in sorted(app.syncs.items()):  # live sessions, from the node's events
            rows.append(
                (
                    datanet,
                    peer[:20] + "…",
                    e.get("phase", ""),
                    f"{e['records_done']} done, {e['records_left']} left",
                    f"{e['bytes_done'] / 1e6:.1f} MB, {e['bytes_left'] / 1e6:.1f} MB left",
                    f"{e.get('rate', 0):.0f}/s" if e.get("rate") else "",
                    f"{e['eta']:.0f} s" if e.get("eta") else "",
                )
            )
            keys.append(f"live:{datanet}:{peer}")
        for j in jobs:
            if j["kind"] == "sync":
                progress = j["progress"]
                rows.append(
                    (
                        j["params"].get("datanet", ""),
                        str(j["params"].get("peer", "")).rsplit("/p2p/", 1)[-1][:20] + "…",
                        j["state"],
                        f"{progress.get('received', 0)} in, {progress.get('sent', 0)} out",
                        "",
                        "",
                        j["error"] or "",
                    )
                )
                keys.append(j["id"])
        _table(
            self.query_one("#syncs", DataTable),
            ("DATANET", "PEER", "PHASE / STATE", "RECORDS", "BYTES", "RATE", "ETA / ERROR"),
            rows,
            keys,
        )


class LeavesScreen(NodeScreen):
    """Everything that left this machine (records to peers, proofs and transactions to chains), newest first, and
    what would leave next (to which members, what a submission sends)."""

    def body(self) -> ComposeResult:
        with Vertical(id="leaves"):
            yield Static(
                "What leaves this machine. Records leave only to members of their Datanet, encrypted in transit; "
                "a submission sends proofs and batch roots, never record content; training keeps records here.",
                id="leaves-intro",
                markup=False,
            )
            yield Label("Sent", classes="heading")
            yield DataTable(id="sent", cursor_type="row")
            yield Label("Would be sent", classes="heading")
            yield DataTable(id="would", cursor_type="row")

    async def refresh_data(self) -> None:
        app = self.node_app
        jobs = await self.call("jobs", limit=200)
        listed = await self.call("datanets")
        if jobs is None or listed is None:
            return
        rows: list[tuple[Any, ...]] = []
        keys: list[str] = []
        for j in jobs:
            progress, datanet = j["progress"], j["params"].get("datanet", "")
            if j["kind"] == "sync" and progress.get("sent"):
                peer = str(j["params"].get("peer", "")).rsplit("/p2p/", 1)[-1]
                rows.append((_when(j["updated_ms"]), "records", progress["sent"], f"peer {peer}", datanet, ""))
                keys.append(j["id"])
            elif j["kind"] == "submit" and progress.get("submitted"):
                for k, sent in enumerate(progress["submitted"]):
                    rows.append(
                        (
                            _when(j["updated_ms"]),
                            "proof + transaction",
                            sent.get("count", ""),
                            "chain",
                            datanet,
                            sent.get("tx") or "",
                        )
                    )
                    keys.append(f"{j['id']}:{k}")
        for k, t in enumerate(list(app.txs)[::-1]):
            if t["method"] != "submitBatch":  # submissions are listed with their job above
                rows.append(("this session", f"transaction {t['method']}", "", "chain", t["datanet"], t["tx"]))
                keys.append(f"tx:{k}:{t['tx']}")
        _table(
            self.query_one("#sent", DataTable),
            ("WHEN", "WHAT", "COUNT", "TO", "DATANET", "TX"),
            rows,
            keys,
        )
        would: list[tuple[Any, ...]] = []
        for d in listed["datanets"]:
            members = ", ".join(m[:16] + "…" for m in d["members"]) or "no member listed (on-chain members only)"
            would.append((d["name"], f"{d['records']} records", f"on sync, to members: {members}"))
            if d["pending"]:
                would.append((d["name"], f"{d['pending']} pending records", "on submit: proofs and roots, no content"))
        _table(
            self.query_one("#would", DataTable),
            ("DATANET", "WHAT", "TO"),
            would,
            [f"{i}" for i in range(len(would))],
        )
