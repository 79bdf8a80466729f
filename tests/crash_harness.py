"""Crash consistency: the node SIGKILLed (with its children: its process group) at random moments of an import, a
sync, proving, a submission to the embedded devnet and a training run, restarted, and checked each time.

After every kill and restart:
- `datanet vault check` passes (every page authenticated, every record against its id, counts consistent);
- no committed record is lost or changed: the record ids held only grow, and the bodies seen before are the same;
- every job the kill interrupted ends resumed (done) or failed, never left "running";
- the audit log's hash chain is unbroken (`datanet audit verify`).
At the end a last submission must find every batch the shard marked submitted already on the chain (a batch is
marked only once its receipt is confirmed, so none is sent twice), and every record's body still hashes to its id.

    python -m tests.crash_harness --kills 200     # `make crash`; tests/test_crash_consistency.py runs a few
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.node.control import ControlClient
from storage.vault import Vault
from tests.test_node import PASSPHRASE, jsonl, make_node

STEPS = ("import", "sync", "prove", "submit", "train")
SETTLE_S = 300.0
IMPORT = 2_000  # records an import (and a sync) adds: an import of that many takes about a second


@dataclass
class Report:
    kills: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STEPS, 0))
    problems: list[str] = field(default_factory=list)
    records: int = 0
    batches_submitted: int = 0

    @property
    def total(self) -> int:
        return sum(self.kills.values())


class Harness:
    def __init__(self, base: Path, seed: int, out: Callable[[str], None]) -> None:
        self.rng = random.Random(seed)
        self.base = base
        self.out = out
        self.node = make_node(base, "victim")
        self.peer = make_node(base, "peer")
        self.node.cli.ok("members", "ward", "add", self.peer.peer_id)
        self.peer.cli.ok("members", "ward", "add", self.node.peer_id)
        self.node.cli.env["DATANET_CACHE_DIR"] = str(base / "cache")
        self.node.cli.ok("create", "ward", "--on-chain")  # binds the shard to the devnet's registry
        # Training runs on a small Datanet of its own, so a run takes as long at the 200th kill as at the first.
        self.node.cli.ok("create", "small", "--task", "intent-classification")
        self.node.cli.ok("import", "small", str(jsonl(base / "small.jsonl", range(400))))
        self.node.cli.ok("node", "stop")  # the background node `create` started: the harness runs its own
        self.seen: set[str] = set()  # record ids seen committed
        self.files = 0
        self.report = Report()

    # --- the nodes ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.node.start(session=True)

    def kill(self) -> None:
        """SIGKILL the node and every process it started, at once (its process group)."""
        assert self.node.proc is not None
        os.killpg(self.node.proc.pid, signal.SIGKILL)
        self.node.proc.communicate(timeout=30)
        self.node.proc = None

    def control(self) -> ControlClient:
        return ControlClient(self.node.cli.data_dir, timeout=120)

    # --- the work ----------------------------------------------------------------------------------------------

    def records_file(self, count: int) -> Path:
        self.files += 1
        start = self.files * 10_000
        return jsonl(self.base / f"records-{self.files}.jsonl", range(start, start + count))

    def queue(self, step: str) -> None:
        control = self.control()
        if step == "import":
            control.call("records.import", datanet="ward", paths=[str(self.records_file(IMPORT))])
        elif step == "sync":  # the peer has something new each time
            more = str(self.records_file(IMPORT))
            self.peer.control().call("records.import", datanet="ward", paths=[more], wait=True)
            control.call("sync", datanet="ward", peer=self.peer.address)
        elif step == "prove":
            control.call("prove", datanet="ward", workers=1, limit=16 * 12)
        elif step == "submit":
            control.call("submit", datanet="ward", workers=1, limit=16 * 6)
        else:
            control.call("train", datanet="small", base="tiny-classifier", epochs=2, threads=1, seed=self.files)

    def settle(self) -> None:
        """Until no job is queued or running: each one the kill interrupted resumed and finished, or failed."""
        control = self.control()
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            if all(j["state"] in ("done", "failed", "cancelled") for j in control.jobs(limit=1000)):
                return
            control.wait(lambda _: False, timeout=1.0, on=("job",))
        states = sorted({j["state"] for j in control.jobs(limit=1000)})
        self.problem(f"jobs still not ended after {SETTLE_S:.0f} s (states {states})")

    # --- the checks --------------------------------------------------------------------------------------------

    def problem(self, text: str) -> None:
        self.report.problems.append(text)
        self.out(f"  PROBLEM: {text}")

    def check(self, what: str) -> None:
        cli = self.node.cli
        checked = cli.run("--json", "vault", "check")
        if checked.code != 0:
            self.problem(f"after {what}: vault check failed: {checked.stderr.strip()}")
        audit = cli.run("audit", "verify")
        if audit.code != 0:
            self.problem(f"after {what}: the audit chain is broken: {(audit.stderr or audit.stdout).strip()}")
        vault = Vault.unlock(cli.data_dir, keystore=None, passphrase=lambda: PASSPHRASE)
        with vault.open_shard("ward") as shard:
            now = {record_id.hex() for record_id, _ in shard.iter_bodies()}  # bodies checked by `vault check`
        lost = self.seen - now
        if lost:
            self.problem(f"after {what}: {len(lost)} committed record(s) lost")
        self.seen |= now
        self.report.records = len(now)
        left = [j["id"] for j in self.control().jobs(limit=1000) if j["state"] in ("queued", "running")]
        if left:
            self.problem(f"after {what}: job(s) not ended: {left}")

    def batches(self) -> list[dict[str, Any]]:
        return list(self.node.cli.ok("--json", "batches", "ward").json()["batches"])

    def finish(self) -> None:
        """A last submission of the batches proven so far, and one more at most (proving all of the harness's records
        would take an hour): every batch the shard marked submitted must already be on the chain, none sent again."""
        self.settle()
        before = {b["root"] for b in self.batches() if b.get("status") == "submitted"}
        control = self.control()
        job = control.call("submit", datanet="ward", workers=1, limit=16)  # one batch more at most
        ended = control.wait_job(str(job["id"]), timeout=SETTLE_S)
        if ended["state"] != "done":
            self.problem(f"the final submission ended {ended['state']}: {ended['error']}")
            return
        resent = {b["root"] for b in ended["progress"].get("submitted", [])} & before
        if resent:
            self.problem(f"{len(resent)} batch(es) marked submitted were not on the chain and were sent again")
        after = self.batches()
        self.report.batches_submitted = sum(1 for b in after if b.get("status") == "submitted")
        if self.report.batches_submitted != len(after):
            self.problem(f"{len(after) - self.report.batches_submitted} batch(es) not submitted after the last submit")
        self.check("the final submission")

    # --- the run -----------------------------------------------------------------------------------------------

    def run(self, kills: int) -> Report:
        self.peer.start()
        self.start()
        try:
            self.check("the start")
            for i in range(kills):
                step = STEPS[i % len(STEPS)] if i < len(STEPS) else self.rng.choice(STEPS)
                self.queue(step)
                time.sleep(self.rng.uniform(0.05, 1.5 if step in ("import", "sync") else 4.0))
                self.kill()
                self.report.kills[step] += 1
                self.start()
                self.settle()
                self.check(f"kill {i + 1} ({step})")
                self.out(f"kill {i + 1:3d}/{kills} during {step:<6}: {self.report.records} records held")
            self.finish()
        finally:
            for node in (self.node, self.peer):
                if node.proc is not None:
                    node.stop()
        return self.report


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datanet-crash-") as folder:
        harness = Harness(Path(folder), args.seed, say)
        report = harness.run(args.kills)
        say(json.dumps({"kills": report.kills, "records": report.records, "problems": report.problems}))
        say(f"kills survived: {report.total}, problems: {len(report.problems)}")
        sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
