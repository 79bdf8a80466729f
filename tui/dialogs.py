"""The TUI's dialogs: a confirmation before anything destructive or anything that leaves the machine for the first
time, the passphrase, the file picker of an import, and the command palette's list of every action."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Select, Static

if TYPE_CHECKING:
    from tui.app import DatanetApp


class Confirm(ModalScreen[bool]):
    """One question, answered with y (or Enter on Yes) or n (or Escape); the answer is the screen's result."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, *, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(self.question, id="question", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes} (y)", variant="warning", id="yes")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # Enter alone never confirms

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class ImportableTree(DirectoryTree):
    """Folders and the files an import reads (.jsonl, .csv, .txt); hidden ones left out."""

    SUFFIXES = (".jsonl", ".csv", ".txt")

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in self.SUFFIXES)]


class PickFile(ModalScreen[str | None]):
    """What to import: a file chosen in the tree (Enter on it), or any path typed in the field (a file, or a folder
    of text files; Enter). The node reads it, so over `tui --socket` the path is one on the node's machine and the
    tree (this machine's files) is not shown. The result is the absolute path, or None (Escape)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="pick.cancel")]

    def __init__(self, start: Path | None) -> None:
        super().__init__()
        self.start = start

    def compose(self) -> ComposeResult:
        with Vertical(id="pick"):
            where = "this machine" if self.start is not None else "the node's machine"
            yield Static(
                f"Import into the Datanet: a JSONL, CSV or text file, or a folder of text files, on {where}. Enter on "
                "a file in the tree imports it; or type a path and press Enter. Escape cancels.",
                id="pick-help",
                markup=False,
            )
            yield Input(placeholder="a path, then Enter", id="pick-path")
            if self.start is not None:
                yield ImportableTree(self.start, id="pick-tree")

    def on_mount(self) -> None:
        focus = self.query(ImportableTree).first() if self.start is not None else self.query_one(Input)
        focus.focus()

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(str(event.path.absolute()))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        typed = event.value.strip()
        if typed:
            path = Path(typed).expanduser()
            base = self.start if self.start is not None and not path.is_absolute() else Path.cwd()
            self.dismiss(str(path if path.is_absolute() else (base / path).absolute()))

    def action_cancel(self) -> None:
        self.dismiss(None)


class Passphrase(ModalScreen[str | None]):
    """The vault's passphrase, typed hidden; the screen's result (None: the user gave up). `problem` says why it is
    asked again (the node refused the last one)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "give_up", "Quit", id="passphrase.quit")]

    def __init__(self, where: str, problem: str | None = None) -> None:
        super().__init__()
        self.where = where
        self.problem = problem

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(
                f"The vault in {self.where} is locked and no keyring or passphrase source has its key. Its "
                "passphrase unlocks it in the node (it is handed over a pipe, never stored or shown).",
                id="question",
                markup=False,
            )
            yield Static(self.problem or "", id="passphrase-problem", markup=False)
            yield Input(password=True, placeholder="passphrase, then Enter (Escape quits)", id="passphrase")

    def on_mount(self) -> None:
        self.query_one("#passphrase-problem", Static).display = bool(self.problem)
        self.query_one("#passphrase", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value:
            self.dismiss(event.value)

    def action_give_up(self) -> None:
        self.dismiss(None)


class Form(ModalScreen[dict[str, str] | None]):
    """A few fields, then Enter in the last one (or the OK button); the result maps each field's id to its text
    (None: Escape). A field with choices is a Select of them."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", id="form.cancel")]

    def __init__(self, title: str, fields: list[tuple[str, str, tuple[str, ...]]], ok: str = "OK") -> None:
        super().__init__()
        self.title_text = title
        self.fields = fields  # (id, placeholder or prompt, choices: empty for free text)
        self.ok = ok

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Static(self.title_text, id="question", markup=False)
            for field_id, prompt, choices in self.fields:
                if choices:
                    yield Select([(c, c) for c in choices], prompt=prompt, value=choices[0], id=field_id)
                else:
                    yield Input(placeholder=prompt, id=field_id)
            with Horizontal(id="confirm-buttons"):
                yield Button(self.ok, variant="primary", id="ok")
                yield Button("Cancel (Escape)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(f"#{self.fields[0][0]}").focus()

    def _answer(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for field_id, _prompt, _choices in self.fields:
            widget = self.query_one(f"#{field_id}")
            value = widget.value if isinstance(widget, Input | Select) else ""
            found[field_id] = "" if value is Select.BLANK else str(value).strip()
        return found

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(self._answer())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self._answer() if event.button.id == "ok" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


# (title, help, the DatanetApp method that runs it, its arguments): every action the UI has, for Ctrl+P.
ACTIONS: tuple[tuple[str, str, str, tuple[Any, ...]], ...] = (
    ("Go to Home", "identity, node, chain, Datanets, jobs (1)", "switch_mode", ("home",)),
    ("Go to Datanet", "records, provenance, import, delete (2)", "switch_mode", ("datanet",)),
    ("Go to Peers and sync", "peers, syncs, start a sync (3)", "switch_mode", ("peers",)),
    ("Go to Training", "start or cancel a LoRA run, loss, adapters (4)", "switch_mode", ("training",)),
    ("Go to Proofs and chain", "prove, submit, transactions (5)", "switch_mode", ("chain",)),
    ("Go to What leaves this machine", "records sent, proofs, transactions (6)", "switch_mode", ("leaves",)),
    ("Go to Log", "the node's log, filtered (7)", "switch_mode", ("log",)),
    ("Go to Jobs", "every job, cancel one (8)", "switch_mode", ("jobs",)),
    ("Next Datanet", "the Datanet the screens act on", "next_datanet", ()),
    ("Prove pending records", "batches of the current Datanet's own records", "prove", ()),
    ("Submit batches", "prove what is pending, then submit to the chain", "submit", ()),
    ("Start training", "a LoRA run on the current Datanet", "start_training", ()),
    ("Cancel training", "the running training job stops at its next step", "cancel_training", ()),
    ("Sync with every connected member", "the current Datanet", "sync", (None,)),
    ("Create a Datanet", "in the vault, and on chain if asked (2, c)", "create_datanet", ()),
    ("Join a Datanet on chain", "become a member, bind a local shard (2, j)", "join_datanet", ()),
    ("Show or hide the activity pane", "every control call, transaction and proof (a)", "toggle_activity", ()),
    ("Quit", "the node keeps running (q)", "exit", ()),
)


class Actions(Provider):
    """The command palette's source: every action of ACTIONS, matched on its title."""

    @property
    def node_app(self) -> DatanetApp:
        from tui.app import DatanetApp

        assert isinstance(self.app, DatanetApp)
        return self.app

    def _runner(self, method: str, args: tuple[Any, ...]) -> Callable[[], Any]:
        return partial(self.node_app.run_action_named, method, args)

    async def discover(self) -> Hits:
        for title, help_text, method, args in ACTIONS:
            yield DiscoveryHit(title, self._runner(method, args), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, method, args in ACTIONS:
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), self._runner(method, args), help=help_text)
