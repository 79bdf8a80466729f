"""The TUI's work screens: training (start a LoRA run with its settings, the loss as it falls, throughput, device,
ETA, evaluations, cancel; the adapters on this machine) and proofs and chain (prove, submit, every batch with its
status and transaction, the transactions this node sent). Every action is a control call the CLI makes too."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label, Sparkline, Static

from client.app.jobs import progress_text
from tui.screens import NodeScreen, _table

# The training form: field id -> (the `train` parameter, its type, the placeholder that says the default).
FORM: dict[str, tuple[str, type, str]] = {
    "train-base": ("base", str, "base model (default: the task's)"),
    "train-epochs": ("epochs", int, "epochs (default)"),
    "train-dp": ("dp_epsilon", float, "DP ε (empty: off)"),
    "train-threads": ("threads", int, "CPU threads (default)"),
}


def _eta(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class TrainingScreen(NodeScreen):
    """Start a LoRA run on the current Datanet (t), follow it (loss, samples/s, device, ETA), cancel it (c)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "start", "Train", id="training.start"),
        Binding("c", "cancel", "Cancel training", id="training.cancel"),
        Binding("n", "next_datanet", "Next Datanet", id="training.next"),
    ]

    def body(self) -> ComposeResult:
        with Vertical(id="training"):
            yield Static("", id="train-status", markup=False)
            with Horizontal(id="train-form"):
                for field_id, (_, _, placeholder) in FORM.items():
                    yield Input(placeholder=placeholder, id=field_id)
            yield Label("Loss", classes="heading")
            yield Sparkline([], id="loss")
            yield Static("", id="evaluation", markup=False)
            yield Label("Adapters on this machine", classes="heading")
            yield DataTable(id="adapters", cursor_type="row")

    def settings(self) -> dict[str, Any] | None:
        """The form's settings (only those filled in); None, with a notification, when one is not a number."""
        chosen: dict[str, Any] = {}
        for field_id, (param, kind, _) in FORM.items():
            value = self.query_one(f"#{field_id}", Input).value.strip()
            if not value:
                continue
            try:
                chosen[param] = kind(value)
            except ValueError:
                self.notify(f"{param.replace('_', ' ')}: {value!r} is not a number.", severity="error")
                return None
        return chosen

    async def action_start(self) -> None:
        chosen = self.settings()
        if chosen is None:
            return
        self.node_app.train_settings = chosen
        await self.node_app.start_training()
        await self.refresh_data()

    async def action_cancel(self) -> None:
        await self.node_app.cancel_training()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        await self.action_start()

    async def refresh_data(self) -> None:
        app = self.node_app
        if not await app.refresh_names():
            return
        jobs = await self.call("jobs", limit=50)
        adapters = await self.call("adapters.list")
        if jobs is None or adapters is None:
            return
        runs = [j for j in jobs if j["kind"] == "train"]
        status = self.query_one("#train-status", Static)
        head = f"Datanet {app.datanet or '(none yet)'}   [t: train with the settings below, c: cancel, n: next]\n"
        if not runs:
            status.update(head + "No training run yet.")
        else:
            run = runs[0]
            live = app.training.get(run["id"], {})
            progress = {**run["progress"], **live} if run["state"] == "running" else run["progress"]
            line = f"job {run['id']} on {run['params'].get('datanet')}: {run['state']}"
            if "step" in progress:
                line += (
                    f", step {progress['step']}/{progress.get('total_steps', '?')}, epoch {progress.get('epoch', '?')}"
                    f", loss {progress.get('loss', float('nan')):.4f}, {progress.get('samples_per_s', 0):.0f} samples/s"
                    f", {progress.get('device', '?')}, ETA {_eta(progress.get('eta_s'))}"
                )
                if isinstance(progress.get("dp_epsilon_spent"), int | float):
                    line += f", DP ε {progress['dp_epsilon_spent']:.2f} of {progress.get('dp_epsilon_target', '?')}"
            elif run["state"] == "done":
                line += f": {progress_text(run)}"
            if run["error"]:
                line += f": {run['error']}"
            status.update(head + line)
            self.query_one("#loss", Sparkline).data = list(app.losses.get(run["id"], []))
            evaluation = progress.get("evaluation")
            self.query_one("#evaluation", Static).update(
                f"evaluation {evaluation}" if evaluation else "evaluation: give a held-out file with `train --eval`"
            )
        rows = adapters["adapters"]
        _table(
            self.query_one("#adapters", DataTable),
            ("ADAPTER", "BASE", "DATANET", "RECORDS", "BATCHES", "DP ε", "CREATED"),
            [adapter_row(m) for m in rows],
            [str(m.get("adapter_id", i)) for i, m in enumerate(rows)],
        )


def adapter_row(manifest: dict[str, Any]) -> tuple[str, ...]:
    """An adapter's provenance manifest (client/training/job.py) as a row: base model, Datanet, what it was trained
    on, the differential-privacy budget spent (or "off")."""

    def part(name: str) -> dict[str, Any]:
        value = manifest.get(name)
        return value if isinstance(value, dict) else {}

    trained, dp = part("trained_on"), part("dp")
    spent = dp.get("epsilon_spent", dp.get("epsilon_target"))
    return (
        str(manifest.get("adapter_id", ""))[:16],
        str(part("base_model").get("name", "")),
        str(part("datanet").get("name", "")),
        str(trained.get("records", "")),
        str(len(trained.get("batch_roots") or [])),
        f"{spent:.2f}" if isinstance(spent, int | float) else "off",
        str(manifest.get("created_at", "")).replace("T", " ").removesuffix("Z"),
    )


class ChainScreen(NodeScreen):
    """Prove (p) and submit (s) the current Datanet's records; its batches; the transactions this node sent."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "prove", "Prove", id="chain.prove"),
        Binding("s", "submit", "Submit", id="chain.submit"),
        Binding("n", "next_datanet", "Next Datanet", id="chain.next"),
    ]

    def body(self) -> ComposeResult:
        with Vertical(id="chain"):
            yield Static("", id="chain-status", markup=False)
            yield Static("", id="proof-progress", markup=False)
            yield Label("Batches", classes="heading")
            yield DataTable(id="batches", cursor_type="row")
            yield Label("Transactions sent", classes="heading")
            yield DataTable(id="txs", cursor_type="row")

    def action_prove(self) -> None:
        self.run_worker(self.node_app.prove(), group="actions")

    def action_submit(self) -> None:
        self.run_worker(self.node_app.submit(), group="actions")  # it may ask first: a worker

    async def refresh_data(self) -> None:
        app = self.node_app
        if not await app.refresh_names():
            return
        jobs = await self.call("jobs", limit=50)
        if jobs is None:
            return
        chain = await app.chain_status()
        where = (
            "no chain reached yet"
            if chain is None
            else (
                f"{chain['chain']} (chain id {chain['chain_id']}), block {chain['block']}, account {chain['account']}, "
                f"balance {int(chain['balance_wei']) / 10**18:.4f} ETH"
            )
        )
        self.query_one("#chain-status", Static).update(
            f"Datanet {app.datanet or '(none yet)'} on {where}   [p: prove, s: submit, n: next Datanet]"
        )
        work = [j for j in jobs if j["kind"] in ("prove", "submit")]
        line = "No proving or submission yet."
        if work:
            job = work[0]
            live = app.work.get(job["id"], {}) if job["state"] == "running" else {}
            line = f"{job['kind']} job {job['id']}: {job['state']}"
            text = progress_text({"progress": {**job["progress"], **live}})
            line += f", {text}" if text else ""
            if live.get("eta_s"):
                line += f", ETA {_eta(live['eta_s'])}"
            line += f": {job['error']}" if job["error"] else ""
        self.query_one("#proof-progress", Static).update(line)
        if app.datanet is not None:
            batches = await self.call("batches", datanet=app.datanet)
            if batches is not None:
                _table(
                    self.query_one("#batches", DataTable),
                    ("ROOT", "RECORDS", "STATUS", "CHAIN", "TX"),
                    [
                        (b["root"][:16], b["count"], b["status"], b["chain"] or "", b["tx"] or "")
                        for b in batches["batches"]
                    ],
                    [b["root"] for b in batches["batches"]],
                )
        txs = list(app.txs)[::-1]
        _table(
            self.query_one("#txs", DataTable),
            ("METHOD", "DATANET", "STATUS", "GAS", "TX"),
            [(t["method"], t["datanet"] or "", "confirmed", t.get("gas") or "", t["tx"]) for t in txs],
            [f"{i}:{t['tx']}" for i, t in enumerate(txs)],
        )
