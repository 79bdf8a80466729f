"""`datanet tui`: the contributor's terminal UI, a client of the node's control API (client/node/async_client.py).

It holds no vault and no key: everything it shows or does is a control-API call (the same ones the CLI makes), so
the UI adds no private powers. Screens are numbered (1 home, 2 Datanet, 3 peers and sync, 4 training, 5 proofs and
chain, 6 what leaves this machine, 7 log, 8 jobs); Ctrl+P reaches every action; `a` shows the activity pane
(every call, transaction and proof). The node's events refresh the screen on view; a node that goes away shows a
banner, and the app reattaches when it comes back. Keys can be remapped, or the vi preset chosen, in
`<config dir>/tui.toml` (tui/keymap.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.widgets import Input, Log

from client import failures
from client.app.jobs import progress_text
from client.errors import ClientError
from client.node.async_client import AsyncControlClient
from client.node.control import NodeError, RemoteError
from tui import keymap
from tui.dialogs import Actions, Confirm, Passphrase
from tui.network import LeavesScreen, PeersScreen
from tui.screens import DatanetScreen, HomeScreen, JobsScreen, LogScreen, NodeScreen
from tui.work import ChainScreen, TrainingScreen

RETRY_EVERY = 2.0  # seconds between attempts to reach a node that went away
REFRESH_AT_MOST = 0.25  # seconds between two refreshes caused by events
NAMES_EVERY = 10.0  # seconds the Datanets' names serve the training, chain and peers screens before a new read
CHAIN_EVERY = 10.0  # seconds a chain status is shown before it is asked again
KEPT = 500  # activity lines, transactions and loss points kept in memory
DP_WARN_AT = 0.9  # a training run's privacy budget is "running out" from this share of it on


class DatanetApp(App[int]):
    TITLE = "datanet"
    CSS_PATH = "datanet.tcss"
    COMMANDS = App.COMMANDS | {Actions}
    MODES: ClassVar[dict[str, Any]] = {
        "home": HomeScreen,
        "datanet": DatanetScreen,
        "peers": PeersScreen,
        "training": TrainingScreen,
        "chain": ChainScreen,
        "leaves": LeavesScreen,
        "log": LogScreen,
        "jobs": JobsScreen,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "switch_mode('home')", "Home", id="screen.home"),
        Binding("2", "switch_mode('datanet')", "Datanet", id="screen.datanet"),
        Binding("3", "switch_mode('peers')", "Peers", id="screen.peers"),
        Binding("4", "switch_mode('training')", "Training", id="screen.training"),
        Binding("5", "switch_mode('chain')", "Proofs", id="screen.chain"),
        Binding("6", "switch_mode('leaves')", "Leaves", id="screen.leaves"),
        Binding("7", "switch_mode('log')", "Log", id="screen.log"),
        Binding("8", "switch_mode('jobs')", "Jobs", id="screen.jobs"),
        Binding("a", "toggle_activity", "Activity", id="app.activity"),
        Binding("f1", "toggle_help", "Help", id="app.help"),
        Binding("q", "quit", "Quit", id="app.quit"),
    ]

    def __init__(
        self,
        client: AsyncControlClient,
        *,
        where: str,
        config_dir: Path | None = None,
        unlock: Callable[[str], None] | None = None,
        files_from: Path | None = None,
    ) -> None:
        super().__init__()
        self.client = client
        # where the import picker starts browsing this machine's files; None: the node is elsewhere (--socket),
        # so only a typed path (on the node's machine) makes sense
        self.files_from = files_from
        self.unlock = unlock  # starts the node with a passphrase the user types (none of our sources had one)
        self.where = where  # the data directory or socket, for the banner
        self.connected = False
        self.problem: str | None = None  # why the node cannot be reached, once it could not
        self.activity: deque[str] = deque(maxlen=KEPT)  # every call and its outcome, newest last
        self.show_activity = False
        self.datanet: str | None = None  # the Datanet the screens act on
        self.datanet_names: list[str] = []
        self.txs: deque[dict[str, Any]] = deque(maxlen=KEPT)  # chain.tx events seen, oldest first
        self.syncs: dict[tuple[str, str], dict[str, Any]] = {}  # (datanet, peer) -> its latest sync.progress
        self.losses: dict[str, deque[float]] = {}  # training job id -> its loss at each progress event
        self.training: dict[str, dict[str, Any]] = {}  # training job id -> its latest train.progress
        self.work: dict[str, dict[str, Any]] = {}  # prove or submit job id -> its latest progress
        self.peers_seen: set[str] = set()
        self.train_settings: dict[str, Any] = {}  # what the training screen's form holds
        self._last_refresh = 0.0
        self._pending_refresh = False
        self._dp_warned: set[str] = set()  # training jobs whose privacy budget was said to be nearly spent
        self._chain: tuple[float, dict[str, Any]] | None = None  # when chain.status was asked, and its answer
        self._names_at = -NAMES_EVERY  # when the Datanets' names were last read (never yet)
        self.keymap_problem: str | None = None
        self.vi = False
        if config_dir is not None:
            try:
                keys = keymap.load(config_dir / keymap.FILE, known={i for i, _, _ in bindings()})
            except keymap.KeymapError as exc:
                self.keymap_problem = str(exc)
            else:
                self.vi = keys.vi
                if keys.bindings:
                    self.set_keymap(keys.bindings)

    async def on_mount(self) -> None:
        self.switch_mode("home")
        if self.keymap_problem:
            self.notify(self.keymap_problem, severity="warning", timeout=10)
        if self.unlock is not None:
            self.run_worker(self._ask_passphrase(), name="unlock")
        else:
            self.run_worker(self._follow_node(), name="node-events", exclusive=True)

    async def _ask_passphrase(self) -> None:
        """Ask for the vault's passphrase until the node it starts unlocks the vault (each refusal said in the
        dialog), then follow that node; Escape quits with exit code 3, the vault still locked."""
        assert self.unlock is not None
        problem: str | None = None
        while True:
            passphrase = await self.push_screen_wait(Passphrase(self.where, problem))
            if passphrase is None:
                self.exit(failures.EXIT_LOCKED)
                return
            try:
                await asyncio.to_thread(self.unlock, passphrase)
            except ClientError as exc:
                problem = str(exc)
                continue
            break
        self.note("the node started and unlocked the vault")
        self.run_worker(self._follow_node(), name="node-events", exclusive=True)

    def on_key(self, event: events.Key) -> None:
        """The vi preset: h j k l, g and G move in tables and lists (not while typing in a field)."""
        if not self.vi or isinstance(self.focused, Input) or self.focused is None:
            return
        action = keymap.VI_MOVES.get(event.character or "")
        if action is not None and hasattr(self.focused, f"action_{action}"):
            getattr(self.focused, f"action_{action}")()
            event.stop()

    # --- calls --------------------------------------------------------------------------------------------

    async def call(self, method: str, **params: Any) -> Any:
        """A control call, noted in the activity pane; a refusal or a gone node is shown as its sentence."""
        started = time.monotonic()
        try:
            result = await self.client.call(method, **params)
        except (RemoteError, NodeError) as exc:
            self.note(f"{method}: {exc}")
            if isinstance(exc, NodeError):
                self._set_connected(False, str(exc))
            raise
        ms = (time.monotonic() - started) * 1000
        if isinstance(result, dict) and {"id", "kind", "state"} <= result.keys():
            self.note(f"{method} -> job {result['id']} ({result['kind']}, {result['state']}) ({ms:.0f} ms)")
        elif method not in _QUIET:
            self.note(f"{method} ({ms:.0f} ms)")
        return result

    async def try_call(self, method: str, **params: Any) -> Any | None:
        """A control call whose refusal is a notification (one sentence), not an exception."""
        try:
            return await self.call(method, **params)
        except (RemoteError, NodeError) as exc:
            self.notify(str(exc), severity="error", timeout=8)
            return None

    def note(self, line: str) -> None:
        """One line in the activity pane (never a key, a passphrase or a record's content)."""
        self.activity.append(f"{time.strftime('%H:%M:%S')} {line}")
        with contextlib.suppress(NoMatches):
            self.screen.query_one("#activity", Log).write_line(self.activity[-1])

    async def confirm(self, question: str, *, yes: str = "Yes") -> bool:
        """Ask before something destructive, or before something leaves the machine for the first time. Call it
        from a worker (the screen that asks keeps processing its messages meanwhile): every action that asks runs
        in one."""
        answer: bool = await self.push_screen_wait(Confirm(question, yes=yes))
        return answer

    async def chain_status(self) -> dict[str, Any] | None:
        """The chain's status, asked at most every CHAIN_EVERY seconds (and again after each transaction)."""
        if self._chain is None or time.monotonic() - self._chain[0] > CHAIN_EVERY:
            status = await self.try_call("chain.status")
            self._chain = (time.monotonic(), status) if status is not None else None
        return self._chain[1] if self._chain is not None else None

    def run_action_named(self, method: str, args: tuple[Any, ...]) -> None:
        """Run one of the palette's actions (tui/dialogs.ACTIONS)."""
        if method == "exit":
            self.exit(0)
            return
        outcome = getattr(self, method)(*args)
        if inspect.isawaitable(outcome):
            self.run_worker(outcome, group="actions")

    # --- actions every screen and the palette share ------------------------------------------------------------

    def action_toggle_activity(self) -> None:
        self.toggle_activity()

    def toggle_activity(self) -> None:
        self.show_activity = not self.show_activity
        with contextlib.suppress(NoMatches):
            pane = self.screen.query_one("#activity", Log)
            pane.display = self.show_activity
            if self.show_activity:
                pane.clear()
                pane.write_lines(list(self.activity))

    def next_datanet(self) -> None:
        if self.datanet_names:
            at = self.datanet_names.index(self.datanet) if self.datanet in self.datanet_names else -1
            self.datanet = self.datanet_names[(at + 1) % len(self.datanet_names)]
            self._refresh_soon()

    def set_datanets(self, names: list[str]) -> None:
        self.datanet_names = names
        self._names_at = time.monotonic()
        if self.datanet not in names:
            self.datanet = names[0] if names else None

    async def refresh_names(self) -> bool:
        """The Datanets' names, for the screens that need no more of `datanets` (which reads every shard): asked
        at most every NAMES_EVERY seconds, and whenever home or the Datanet screen lists them. False: the node
        refused or is away."""
        if time.monotonic() - self._names_at > NAMES_EVERY:
            listed = await self.try_call("datanets")
            if listed is None:
                return False
            self.set_datanets([d["name"] for d in listed["datanets"]])
        return True

    def _has_datanet(self) -> bool:
        """Whether there is a Datanet to act on; a notification that says how to make one when there is not."""
        if self.datanet is None:
            self.notify("No Datanet yet: create one first (`datanet create NAME`).", severity="warning")
        return self.datanet is not None

    async def prove(self) -> None:
        if not self._has_datanet():
            return
        job = await self.try_call("prove", datanet=self.datanet)
        if job is not None:
            self.notify(f"Proving {self.datanet}'s pending records (job {job['id']}).")

    async def submit(self) -> None:
        if not self._has_datanet():
            return
        batches = await self.try_call("batches", datanet=self.datanet)
        status = await self.try_call("status")
        if batches is None or status is None:
            return
        chain = status["chain"] or "the embedded devnet"
        if not any(b["status"] == "submitted" for b in batches["batches"]) and not await self.confirm(
            f"Submitting sends {self.datanet}'s proofs (no record content: roots, counts and zero-knowledge proofs) "
            f"and transactions from your account to {chain}, for the first time. Continue?",
            yes="Submit",
        ):
            self.note(f"submit {self.datanet}: not confirmed")
            return
        job = await self.try_call("submit", datanet=self.datanet)
        if job is not None:
            self.notify(f"Submitting {self.datanet}'s batches (job {job['id']}).")

    async def start_training(self) -> None:
        if not self._has_datanet():
            return
        job = await self.try_call("train", datanet=self.datanet, **self.train_settings)
        if job is not None:
            self.notify(f"Training on {self.datanet} (job {job['id']}).")

    async def cancel_training(self) -> None:
        jobs = await self.try_call("jobs", limit=50)
        running = [j for j in jobs or [] if j["kind"] == "train" and j["state"] in ("queued", "running")]
        if not running:
            self.notify("No training job is queued or running.", severity="warning")
            return
        if await self.try_call("cancel", id=running[0]["id"]) is not None:
            self.notify(f"Training job {running[0]['id']} cancelled; it stops at its next step (a checkpoint stays).")

    async def sync(self, peer: str | None) -> None:
        if not self._has_datanet():
            return
        if peer is not None:
            peer_id = peer.rsplit("/p2p/", 1)[-1]
            jobs = await self.try_call("jobs", limit=200) or []
            synced_before = any(
                j["kind"] == "sync" and j["state"] == "done" and peer_id in str(j["params"].get("peer", ""))
                for j in jobs
            )
            if not synced_before and not await self.confirm(
                f"Syncing sends {self.datanet}'s records (their content, encrypted in transit) to peer {peer_id}, "
                "for the first time. Only a member of the Datanet is answered. Continue?",
                yes="Sync",
            ):
                self.note(f"sync {self.datanet} with {peer_id}: not confirmed")
                return
        params = {"peer": peer} if peer else {}
        if await self.try_call("sync", datanet=self.datanet, **params) is not None:
            self.notify(f"Syncing {self.datanet}" + (f" with {peer}." if peer else " with every connected member."))

    # --- the node's events ----------------------------------------------------------------------------------

    async def _follow_node(self) -> None:
        """Subscribe to the node's events and refresh the screen on view as they come; when the node goes away,
        say so and try again every RETRY_EVERY seconds."""
        while True:
            try:
                await self.client.call("status")
                self._set_connected(True, None)
                async for event in self.client.events():
                    self._take(event)
                    self._refresh_soon()
            except (NodeError, RemoteError, OSError) as exc:
                self._set_connected(False, str(exc))
            else:
                self._set_connected(False, "The node stopped.")
            await asyncio.sleep(RETRY_EVERY)

    async def create_datanet(self) -> None:
        """Ask for a name, a task and whether to register it on chain; create it (a chain transaction is confirmed
        first, as anything that leaves the machine for the first time)."""
        from client.datanet import TASKS
        from tui.dialogs import Form

        answer = await self.push_screen_wait(
            Form(
                "Create a Datanet: its records stay on this machine; on chain, only its name and task are public.",
                [
                    ("form-name", "name", ()),
                    ("form-task", "task", tuple(TASKS)),
                    ("form-chain", "register on chain too?", ("no", "yes")),
                ],
                ok="Create",
            )
        )
        if answer is None or not answer["form-name"]:
            return
        name, on_chain = answer["form-name"], answer["form-chain"] == "yes"
        if on_chain and not await self.confirm(f"Register Datanet {name!r} on chain? This sends a transaction."):
            self.note(f"create {name}: not confirmed")
            return
        created = await self.try_call("create", datanet=name, task=answer["form-task"], on_chain=on_chain)
        if created is not None:
            self.notify(f"Datanet {name!r} created" + (" and registered on chain." if on_chain else "."))
            self._names_at = -NAMES_EVERY  # read the names again at the next refresh
            self.datanet = name
            self._refresh_soon()

    async def join_datanet(self) -> None:
        """Pick an on-chain Datanet this account is not a member of and join it (after a confirmation)."""
        from tui.dialogs import Form

        listed = await self.try_call("chain.datanets")
        if listed is None:
            return
        open_ones = [d["name"] for d in listed if not d["member"]]
        if not open_ones:
            self.notify("There is no Datanet on chain that you are not a member of already.", severity="warning")
            return
        answer = await self.push_screen_wait(
            Form(
                "Join a Datanet on chain (a private one needs its owner's allow-list).",
                [("form-join", "Datanet", tuple(open_ones))],
                ok="Join",
            )
        )
        if answer is None or not answer["form-join"]:
            return
        name = answer["form-join"]
        stake = next((d["join_stake"] for d in listed if d["name"] == name and d["policy"] == "stake"), 0)
        question = f"Join Datanet {name!r} on chain? This sends a transaction" + (
            f" with a refundable stake of {stake} wei." if stake else "."
        )
        if not await self.confirm(question, yes="Join"):
            self.note(f"join {name}: not confirmed")
            return
        joined = await self.try_call("join", datanet=name, pay_stake=bool(stake))
        if joined is not None:
            self.notify(f"Joined {name!r} (id {joined['id']}); its shard is here and bound to it.")
            self._names_at = -NAMES_EVERY
            self.datanet = name
            self._refresh_soon()

    def action_toggle_help(self) -> None:
        """F1: Textual's help panel (the focused widget's help and every key it takes here), or hide it."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def _take(self, event: dict[str, Any]) -> None:
        """Keep what the screens show from an event: losses, syncs, transactions; notify what needs a look."""
        kind = event.get("type")
        if kind == "train.progress":
            self.training[event["id"]] = {**self.training.get(event["id"], {}), **event}
            if isinstance(event.get("loss"), int | float):
                self.losses.setdefault(event["id"], deque(maxlen=KEPT)).append(float(event["loss"]))
            spent, target = event.get("dp_epsilon_spent"), event.get("dp_epsilon_target")
            if (
                isinstance(spent, int | float)
                and isinstance(target, int | float)
                and 0 < DP_WARN_AT * target <= spent
                and event["id"] not in self._dp_warned
            ):
                self._dp_warned.add(event["id"])
                self.notify(
                    f"Training job {event['id']} has spent ε {spent:.2f} of its privacy budget of {target:g}; "
                    "its data gets no more differential-privacy room after this run.",
                    severity="warning",
                    timeout=15,
                )
        elif kind in ("prove.progress", "submit.progress"):
            self.work[event["id"]] = event
        elif kind == "sync.progress":
            self.syncs[(str(event.get("datanet")), str(event.get("peer")))] = event
        elif kind == "chain.tx":
            self.txs.append(event)
            self._chain = None
            self.note(f"tx {event['method']} {event['datanet']}: {event['tx']}")
        elif kind == "peer.up" and event.get("peer") not in self.peers_seen:
            self.peers_seen.add(str(event.get("peer")))
            self.notify(f"New peer connected: {event.get('peer')} (found by {event.get('how', 'dialling')}).")
        elif kind == "missed":
            self.note(f"fell behind the node's events: {event.get('count')} missed (the screens ask again)")
        elif kind == "job":
            self._job_event(event)

    def _job_event(self, event: dict[str, Any]) -> None:
        state, job_kind = event.get("state"), event.get("kind", "job")
        if state in ("done", "failed", "cancelled"):
            summary = progress_text({"progress": event}) if state == "done" else ""
            self.note(f"job {event['id']} ({job_kind}) {state}" + (f": {summary}" if summary else ""))
        if state == "failed":
            self.notify(f"Job {event['id']} ({job_kind}) failed: {event.get('error')}", severity="error", timeout=15)

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


_QUIET = frozenset(  # reads, asked on every refresh: the activity pane lists what changes something
    {"status", "identity", "datanets", "jobs", "job", "log.tail", "records.list", "peers", "chain.status"}
    | {"adapters.list", "batches", "records.show"}
)


def bindings() -> list[tuple[str, str, str]]:
    """Every key binding with an id, on every screen: (id, keys, what it does), for `datanet tui --keys`."""
    from tui.dialogs import Confirm

    found: dict[str, tuple[str, str, str]] = {}
    for owner in (DatanetApp, *DatanetApp.MODES.values(), Confirm):
        for binding in owner.BINDINGS:
            if isinstance(binding, Binding) and binding.id is not None:
                found.setdefault(binding.id, (binding.id, binding.key, binding.description))
    return sorted(found.values())


def run(
    client: AsyncControlClient,
    where: Path | str,
    config_dir: Path | None = None,
    unlock: Callable[[str], None] | None = None,
    files_from: Path | None = None,
) -> int:
    """Run the app until the user quits; its exit code. With `unlock`, it first asks for the vault's passphrase.
    `files_from`: where the import picker starts (None for a node on another machine)."""
    app = DatanetApp(client, where=str(where), config_dir=config_dir, unlock=unlock, files_from=files_from)
    return app.run() or 0
