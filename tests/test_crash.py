"""The node (the one writer) killed (SIGKILL) in the middle of an import leaves all or none of that file and a sound
vault; the command that followed the import says in one sentence that the node went away; the next command starts
a new node, which marks the interrupted import failed, and importing again adds the file."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from client.node import instance
from storage.vault import Vault
from tests.conftest import REPO, Cli

RECORDS = 200_000


def _wait_for_line(proc: subprocess.Popen[bytes], needle: bytes, deadline_s: float) -> bytes:
    """Read the child's stderr until a line contains `needle`; fail after the deadline."""
    assert proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    seen = b""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if not selector.select(timeout=end - time.monotonic()):
            break
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if needle in line:
            return line
    raise AssertionError(f"no {needle!r} from the importer within {deadline_s}s; it said: {seen[-500:]!r}")


def test_sigkill_mid_import_keeps_all_or_nothing(headless_cli: Cli, tmp_path: Path) -> None:
    headless_cli.env["DATANET_PASSPHRASE"] = "crash test passphrase"
    headless_cli.ok("create", "big")
    headless_cli.ok("import", "big", str(REPO / "client" / "sample" / "clinic_intents.jsonl"))
    big = tmp_path / "big.jsonl"
    with big.open("w") as handle:
        for i in range(RECORDS):
            handle.write(json.dumps({"text": f"record {i} " + "lorem ipsum " * 8, "label": str(i % 8)}) + "\n")

    proc = subprocess.Popen(
        [sys.executable, "-m", "client.cli.main", "import", "big", str(big), "--progress"],
        env=headless_cli.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    node = instance.recorded_pid(headless_cli.data_dir)
    assert node is not None
    try:
        _wait_for_line(proc, b"importing big.jsonl: 20%", deadline_s=120)
        os.kill(node, signal.SIGKILL)  # the writer, not its client
        proc.wait(timeout=60)
    finally:
        proc.kill()
        assert proc.stderr is not None
        said = proc.stderr.read().decode()
        proc.stderr.close()
    assert proc.returncode == 7, said
    assert said.strip().splitlines()[-1].startswith("datanet: The node stopped while job ")
    assert instance.wait_exit(node, 30)

    vault = Vault.unlock(headless_cli.data_dir, keystore=None, passphrase=lambda: "crash test passphrase")
    with vault.open_shard("big") as shard:
        assert shard.count() == 480  # the earlier import is intact, none of the killed one is there
        report = shard.check()
    assert report.ok, report.problems

    interrupted = headless_cli.ok("--json", "jobs").json()[0]  # a new node started, and says what happened
    assert (interrupted["kind"], interrupted["state"]) == ("import", "failed")
    assert interrupted["error"] == "interrupted by a node restart; start it again"
    finished = headless_cli.ok("--json", "import", "big", str(big)).json()
    assert finished["imported"][0]["added"] == RECORDS and finished["records"] == RECORDS + 480
    assert headless_cli.ok("--json", "vault", "check").json()["ok"] is True
