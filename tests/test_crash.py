"""A process killed (SIGKILL) in the middle of an import leaves all or none of that file, and a sound vault."""

from __future__ import annotations

import json
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    try:
        _wait_for_line(proc, b"importing big.jsonl: 20%", deadline_s=120)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    vault = Vault.unlock(headless_cli.data_dir, keystore=None, passphrase=lambda: "crash test passphrase")
    with vault.open_shard("big") as shard:
        assert shard.count() == 480  # the earlier import is intact, none of the killed one is there
        report = shard.check()
    assert report.ok, report.problems

    finished = headless_cli.ok("--json", "import", "big", str(big)).json()
    assert finished["imported"][0]["added"] == RECORDS and finished["records"] == RECORDS + 480
    assert headless_cli.ok("--json", "vault", "check").json()["ok"] is True
