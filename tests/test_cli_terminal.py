"""The CLI at a real terminal (a pseudo-terminal): passphrases are asked for, twice when new, never echoed."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

from storage.vault import Vault
from tests.conftest import REPO, Cli


def _expect(fd: int, needle: bytes, seen: bytearray, start: int, deadline_s: float = 60) -> int:
    """Read the terminal until `needle` appears after position `start`; returns the position after it."""
    end = time.monotonic() + deadline_s
    while needle not in seen[start:]:
        remaining = end - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(remaining, 0))
        if not ready:
            raise AssertionError(f"no {needle!r} on the terminal within {deadline_s}s; it shows {bytes(seen)!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            raise AssertionError(f"the terminal closed before {needle!r}; it showed {bytes(seen)!r}")
        seen += chunk
    return seen.index(needle, start) + len(needle)


def _run_at_terminal(cli: Cli, args: list[str], answers: list[tuple[bytes, bytes | None]]) -> tuple[int, bytes]:
    """Run datanet on a pseudo-terminal; for each (prompt, answer), wait for the prompt and type the answer
    (None: only wait)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become datanet, with the pseudo-terminal as its terminal
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, "-m", "client.cli.main", *args], cli.env)  # noqa: S606
    seen = bytearray()
    position = 0
    try:
        for prompt, answer in answers:
            position = _expect(fd, prompt, seen, position)
            if answer is not None:
                os.write(fd, answer + b"\n")
        while True:  # the rest of what it shows, until it exits
            ready, _, _ = select.select([fd], [], [], 60)
            if not ready:  # it hangs: stop it, the exit code will say so
                os.kill(pid, signal.SIGKILL)
                break
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        raise
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), bytes(seen)


def test_a_new_vault_asks_for_a_passphrase_twice_and_does_not_echo_it(headless_cli: Cli, tmp_path: Path) -> None:
    code, screen = _run_at_terminal(
        headless_cli,
        ["init"],
        [
            (b"Choose a vault passphrase", b"short"),
            (b"Too short", None),
            (b"Choose a vault passphrase", b"terminal passphrase 1"),
            (b"Type it again", b"terminal passphrase 2"),
            (b"differ", None),
            (b"Choose a vault passphrase", b"terminal passphrase 1"),
            (b"Type it again", b"terminal passphrase 1"),
        ],
    )
    assert code == 0, screen
    assert b"RECOVERY CODE" in screen and b"Vault created" in screen
    assert b"terminal passphrase" not in screen  # getpass never echoes
    assert Vault.unlock(headless_cli.data_dir, keystore=None, passphrase=lambda: "terminal passphrase 1")


def test_an_existing_vault_asks_for_its_passphrase(headless_cli: Cli) -> None:
    headless_cli.ok("init", env={"DATANET_PASSPHRASE": "known passphrase"})
    code, screen = _run_at_terminal(headless_cli, ["identity", "show"], [(b"Vault passphrase:", b"known passphrase")])
    assert code == 0 and b"peer id" in screen
    wrong, screen = _run_at_terminal(headless_cli, ["identity", "show"], [(b"Vault passphrase:", b"nope")])
    assert wrong == 3 and b"passphrase is wrong" in screen and b"Traceback" not in screen
