"""The TUI in a real terminal: tmux runs `datanet tui` (send-keys, capture-pane), every screen is visited by its
number, q quits with exit code 0 and the terminal is left clean (the alternate screen gone, the shell's prompt
back, no stray escape sequences)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli

SCREENS = [  # key, and text only that screen shows
    ("2", "records, 5 own"),
    ("3", "peers seen"),
    ("4", "Adapters on this machine"),
    ("5", "Transactions sent"),
    ("6", "What leaves this machine"),
    ("7", "[level INFO"),
    ("8", "Cancel job"),
    ("1", "Datanets"),
]


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A private tmux server (its own socket) with one 100x30 session; killed afterwards."""
    assert shutil.which("tmux"), "tmux is installed by tests/install-system-deps (make check)"
    server, session = f"datanet-{uuid.uuid4().hex[:8]}", "tui"
    subprocess.run(
        ["tmux", "-L", server, "new-session", "-d", "-s", session, "-x", "100", "-y", "30", "bash --norc --noprofile"],
        check=True,
        timeout=30,
    )
    try:
        yield server, session
    finally:
        subprocess.run(["tmux", "-L", server, "kill-server"], check=False, timeout=30)


def pane(tmux: tuple[str, str]) -> str:
    server, session = tmux
    return subprocess.run(
        ["tmux", "-L", server, "capture-pane", "-p", "-t", session], capture_output=True, text=True, timeout=30
    ).stdout


def keys(tmux: tuple[str, str], *sent: str) -> None:
    server, session = tmux
    subprocess.run(["tmux", "-L", server, "send-keys", "-t", session, *sent], check=True, timeout=30)


def shows(tmux: tuple[str, str], text: str, within: float = 60.0) -> str:
    deadline = time.monotonic() + within
    while text not in (screen := pane(tmux)):
        assert time.monotonic() < deadline, f"the terminal never showed {text!r}; it shows:\n{screen}"
        time.sleep(0.2)
    return screen


def launch(tmux: tuple[str, str], cli: Cli, home: Path, *, passphrase: bool = True) -> None:
    """`datanet tui` in the tmux pane with the CLI's environment (without the passphrase if asked), then its exit
    code printed by the shell."""
    env = " ".join(
        f"{k}={shlex.quote(v)}"
        for k, v in cli.env.items()
        if (k.startswith("DATANET_") and (passphrase or k != "DATANET_PASSPHRASE")) or k == "PATH"
    )
    command = f"env -i HOME={shlex.quote(str(home))} TERM=xterm-256color {env} {shlex.quote(sys.executable)}"
    keys(tmux, f"{command} -m client.cli.main tui; echo tui-exit=$?", "Enter")


def test_every_screen_in_a_real_terminal_and_a_clean_exit(
    headless_cli: Cli, tmp_path: Path, tmux: tuple[str, str]
) -> None:
    cli = headless_cli
    cli.env["DATANET_PASSPHRASE"] = "tui terminal passphrase"
    cli.ok("create", "ward", "--task", "intent-classification")
    records = tmp_path / "ward.jsonl"
    records.write_text("".join(f'{{"text": "visit {i}", "label": "L{i % 2}"}}\n' for i in range(5)))
    cli.ok("import", "ward", str(records))

    launch(tmux, cli, tmp_path)
    shows(tmux, "Datanets")
    for key, text in SCREENS:
        keys(tmux, key)
        shows(tmux, text)
    keys(tmux, "q")
    after = shows(tmux, "tui-exit=0")
    assert "Datanets" not in after  # the alternate screen is gone: the shell's own lines are back
    assert "\x1b" not in after and "[?" not in after  # no escape sequences left printed


def test_a_locked_vault_is_unlocked_from_the_passphrase_dialog(
    headless_cli: Cli, tmp_path: Path, tmux: tuple[str, str]
) -> None:
    cli = headless_cli  # no keyring on this machine: without DATANET_PASSPHRASE nothing has the vault's key
    cli.env["DATANET_PASSPHRASE"] = "the right passphrase here"
    cli.ok("create", "ward", "--task", "intent-classification")
    cli.ok("node", "stop")

    launch(tmux, cli, tmp_path, passphrase=False)
    shows(tmux, "is locked")
    keys(tmux, "not the passphrase", "Enter")
    refused = shows(tmux, "The passphrase is wrong", within=60)  # asked again, with the node's sentence
    assert "not the passphrase" not in refused  # typed hidden, and never repeated back
    keys(tmux, "the right passphrase here", "Enter")
    shows(tmux, "ward", within=60)
    assert "the right passphrase here" not in pane(tmux)
    keys(tmux, "q")
    shows(tmux, "tui-exit=0")

    cli.ok("node", "stop")
    keys(tmux, "clear", "Enter")
    launch(tmux, cli, tmp_path, passphrase=False)
    shows(tmux, "is locked")
    keys(tmux, "Escape")
    shows(tmux, "tui-exit=3")  # given up: the vault stays locked, exit code 3
